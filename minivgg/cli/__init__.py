"""The ``minivgg`` command line. Each subcommand's parser and glue live in a module of this package
(``transfer``, ``video``, ``sweep`` (sweep and batch), ``reconstruct``, ``inspection``, ``weights``, ``gradcheck``,
``doctor``; the demo registers its own from ``minivgg.tools.demo``) with an ``add_cli(subparsers)``
function; this module only dispatches and turns errors into exit codes: 0 success, 2 bad input (one line on stderr), 130 interrupted, 1 internal
error (traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .. import __version__
from ..errors import UserError

# Modules that contribute subcommands, in the order ``minivgg --help`` lists them.
_COMMAND_MODULES = (
    "minivgg.cli.transfer",
    "minivgg.cli.video",
    "minivgg.cli.sweep",
    "minivgg.cli.reconstruct",
    "minivgg.cli.inspection",
    "minivgg.cli.weights",
    "minivgg.cli.gradcheck",
    "minivgg.cli.doctor",
    "minivgg.tools.demo",
    "minivgg.cli.serve",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 2
        self.exit(2, f"minivgg: error: {message} (see 'minivgg --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="minivgg", description="Neural style transfer on a from-scratch NumPy/CuPy engine."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.add_argument("--version", action="version", version=f"minivgg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for modname in _COMMAND_MODULES:
        importlib.import_module(modname).add_cli(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        print("minivgg: error: choose a command (see 'minivgg --help')", file=sys.stderr)
        return 2
    try:
        # Warnings (how an input image was read, ...) are held back: after a success they become
        # one "note" line each (none with --quiet); after an error only the error line is printed.
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("default")
            code = int(args.func(args) or 0)
        if not getattr(args, "quiet", False):
            for message in dict.fromkeys(str(w.message) for w in notes):
                print(f"minivgg: note: {message}", file=sys.stderr)
        return code
    except UserError as exc:
        print(f"minivgg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minivgg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # internal error
        if args.debug:
            raise
        print(
            f"minivgg: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
