"""Generate the command-line reference (``reference/cli.md``) from the argparse parsers.

Nothing about the CLI is copied by hand: :func:`render_cli_markdown` walks
``minivgg.cli.build_parser()`` and every subcommand under it (nested ones such as
``weights fetch`` included) and writes, per command, its usage, description and every argument
with its help, default and choices. As a Sphinx extension it rewrites the page at
``builder-inited`` (only when the text changed, so an unchanged CLI does not force a re-read).

``python docs/_ext/cliref.py [OUT]`` prints the page (or writes OUT) without Sphinx.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

#: Where the page goes, relative to the Sphinx source folder.
OUTPUT = Path("reference") / "cli.md"
#: Line width of the usage blocks (fixed, so the page does not depend on the terminal).
USAGE_WIDTH = 88

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|{}#])")


def _escape(text: str) -> str:
    """Plain help text as Markdown that renders literally."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _code(text: str) -> str:
    """``text`` as inline code, whatever backticks it holds."""
    text = str(text)
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)


def _usage(parser: argparse.ArgumentParser) -> str:
    fmt = _formatter(parser)
    fmt.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return fmt.format_help().strip()


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    fmt = _formatter(parser)
    return fmt._expand_help(action) if "%" in action.help else action.help


def _shown_default(action: argparse.Action):
    """The default worth printing, or None (flags off by default, no default, suppressed)."""
    default = action.default
    if default is None or default is argparse.SUPPRESS:
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return None
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
        return None
    if isinstance(default, (list, tuple)) and not default:
        return None
    return default


def _subcommands(parser: argparse.ArgumentParser):
    """``(name, summary, subparser)`` for each subcommand, in the order ``--help`` lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help or "" for a in action._choices_actions}
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias of a command already listed
                    continue
                seen.add(id(sub))
                yield name, summaries.get(name, ""), sub


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Yield ``(path, summary, parser)`` for ``parser`` and every (nested) subcommand, depth first."""
    yield path, parser.description or "", parser
    for name, summary, sub in _subcommands(parser):
        for sub_path, sub_summary, subsub in walk(sub, (*path, name)):
            yield sub_path, (summary if sub_path == (*path, name) else sub_summary), subsub


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of every (sub)command, as the page must show them (for the tests)."""
    out = []
    for _, _, p in walk(parser):
        for action in p._actions:
            if action.help is not argparse.SUPPRESS:
                out.extend(action.option_strings)
    return out


def _anchor(path: tuple[str, ...]) -> str:
    return "cli-" + "-".join(("minivgg", *path))


def _argument(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    fmt = _formatter(parser)
    invocation = fmt._format_action_invocation(action)
    parts = [f"- {_code(invocation)}"]
    text = _help(parser, action)
    if text:
        parts.append(f" — {_escape(text)}")
    extras = []
    if action.choices is not None and action.metavar is not None:  # else the invocation shows them
        extras.append("choices: " + ", ".join(_code(c) for c in action.choices))
    default = _shown_default(action)
    if default is not None:
        extras.append(f"default: {_code(default)}")
    if action.nargs == argparse.OPTIONAL and action.option_strings and action.const is not None:
        extras.append(f"without a value: {_code(action.const)}")
    if isinstance(action, argparse._AppendAction):
        extras.append("may be repeated")
    if extras:
        parts.append(" (" + "; ".join(extras) + ")")
    return "".join(parts)


def _command(path: tuple[str, ...], summary: str, parser: argparse.ArgumentParser) -> list[str]:
    title = " ".join(("minivgg", *path))
    lines = [f"({_anchor(path)})=", f"## `{title}`", ""]
    description = parser.description or ""
    for text in dict.fromkeys(t for t in (summary, description) if t):
        lines += [_escape(text), ""]
    lines += ["```text", _usage(parser), "```", ""]
    subs = list(_subcommands(parser))
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
        ]
        if not actions:
            continue
        lines += [f"**{_escape(group.title or 'arguments').capitalize()}**", ""]
        lines += [_argument(parser, a) for a in actions]
        lines.append("")
    if subs:
        lines += ["**Commands**", ""]
        lines += [
            f"- {{ref}}`{' '.join(('minivgg', *path, name))} <{_anchor((*path, name))}>`"
            + (f" — {_escape(text)}" if text else "")
            for name, text, _ in subs
        ]
        lines.append("")
    return lines


def render_cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole command-line reference as MyST Markdown (``minivgg.cli.build_parser()`` by default)."""
    if parser is None:
        from minivgg.cli import build_parser

        parser = build_parser()
    lines = [
        "<!-- Generated by docs/_ext/cliref.py from minivgg.cli.build_parser() at every build; "
        "do not edit. -->",
        "",
        "# Command-line reference",
        "",
        "Every command, its usage, and every argument with its help, default and choices, "
        "generated from the parsers themselves (so it says exactly what `minivgg COMMAND --help` "
        "says). Bad input exits with status 2 and one sentence on stderr; an interrupted run exits "
        "130; an internal error exits 1 (`minivgg --debug …` shows its traceback). See "
        "{doc}`../troubleshooting` for the messages.",
        "",
    ]
    for path, summary, sub in walk(parser):
        lines += _command(path, summary, sub)
    return "\n".join(lines).rstrip() + "\n"


def write_cli_reference(path: str | Path, parser: argparse.ArgumentParser | None = None) -> bool:
    """Write the page to ``path`` when its text changed; True when it wrote."""
    path = Path(path)
    text = render_cli_markdown(parser)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _on_builder_inited(app) -> None:
    write_cli_reference(Path(app.srcdir) / OUTPUT)


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        write_cli_reference(sys.argv[1])
    else:
        sys.stdout.write(render_cli_markdown())
