"""The documentation site's sources (``docs/``), checked without building it: the generated CLI
reference names every option of every (sub)command, the API reference documents every public name,
and every page a toctree lists exists. One ``slow`` test runs the real ``sphinx-build -W``."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import minivgg
import minivgg.tools.inspection
import minivgg.tools.reconstruct
from minivgg.cli import build_parser

DOCS = Path(__file__).resolve().parent.parent / "docs"
GENERATED = {"reference/cli"}  # written by docs/_ext/cliref.py at every build, not committed

# Every public name the API reference must document, as Sphinx names it.
PUBLIC_NAMES = sorted(
    {
        "minivgg.stylize",
        "minivgg.Objective",
        "minivgg.load_vgg",
        "minivgg.VGG",
        "minivgg.PRESETS",
        "minivgg.style.presets.Preset",
        "minivgg.network.vgg.random_vgg",
        "minivgg.errors.UserError",
        *(f"minivgg.ops.{n}" for n in minivgg.ops.__all__),
        *(f"minivgg.gradcheck.{n}" for n in minivgg.gradcheck.__all__),
        *(f"minivgg.tools.reconstruct.{n}" for n in minivgg.tools.reconstruct.__all__),
        *(
            f"minivgg.tools.inspection.{n}"
            for n in ("inspect_objective", "Inspection", "term_objective", "inspect_files")
        ),
    }
)


def _cliref():
    spec = importlib.util.spec_from_file_location("cliref", DOCS / "_ext" / "cliref.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parsers(parser, path=("minivgg",)):
    """``(path, parser)`` for the parser and every nested subcommand (walked here, not by cliref)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _sources():
    """Every page source of the site, as docnames (``guide/transfer``) -> path."""
    out = {}
    for path in sorted(DOCS.rglob("*")):
        rel = path.relative_to(DOCS)
        if rel.parts[0] in ("_build", "_ext") or path.suffix not in (".md", ".ipynb"):
            continue
        if ".ipynb_checkpoints" in rel.parts:
            continue
        out[rel.with_suffix("").as_posix()] = path
    return out


def _toctree_entries(text: str):
    """The document names listed in the ```{toctree} blocks of a MyST page."""
    for block in re.findall(r"```\{toctree\}[^\n]*\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith(":"):
                continue
            explicit = re.fullmatch(r".*<(.+)>", line)  # "Title <target>"
            yield (explicit.group(1) if explicit else line).strip()


def _resolve(docname: str, entry: str) -> str:
    parts = list(Path(docname).parent.parts)
    for piece in entry.split("/"):
        if piece == "..":
            parts.pop()
        elif piece not in ("", "."):
            parts.append(piece)
    return "/".join(parts)


def _documented_names() -> set[str]:
    """The full names that the API pages' directives document, with ``currentmodule`` applied."""
    names = set()
    for page in sorted((DOCS / "api").glob("*.md")):
        module = None
        for line in page.read_text(encoding="utf-8").splitlines():
            if m := re.match(r"\s*\.\. (?:py:)?(?:current|auto)?module:: (\S+)", line):
                module = m.group(1)
                continue
            m = re.match(
                r"\s*\.\. (?:py:)?(?:auto)?(?:function|class|exception|data|method|attribute)"
                r":: ([\w.]+)",
                line,
            )
            if m:
                target = m.group(1)
                names.add(
                    target if target.startswith("minivgg.") or not module else f"{module}.{target}"
                )
    return names


# ------------------------------------------------------------------------------ CLI reference


def test_cli_reference_shows_every_option_of_every_command():
    text = _cliref().render_cli_markdown()
    missing = []
    for path, parser in _parsers(build_parser()):
        title = " ".join(path)
        if f"## `{title}`" not in text:
            missing.append(f"section {title}")
        for action in parser._actions:
            if action.help is argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text):
                    missing.append(f"{title} {option}")
    assert not missing, f"missing from the generated CLI reference: {missing}"


def test_cli_reference_shows_choices_and_defaults():
    text = _cliref().render_cli_markdown()
    transfer = text.split("## `minivgg transfer`", 1)[1].split("\n## ", 1)[0]
    assert "--conv {auto,im2col,winograd}" in transfer
    assert "default: `simple`" in transfer  # --mask-mode
    assert "without a value: `pca`" in transfer  # --match-color-histogram
    assert "## `minivgg weights fetch`" in text and "{vgg16,vgg19}" in text


def test_cli_reference_writes_only_when_changed(tmp_path):
    cliref = _cliref()
    out = tmp_path / "reference" / "cli.md"
    assert cliref.write_cli_reference(out) is True
    assert cliref.write_cli_reference(out) is False
    assert out.read_text(encoding="utf-8") == cliref.render_cli_markdown()


# ------------------------------------------------------------------------------ API reference


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_api_reference_documents_public_name(name):
    assert name in _documented_names(), f"no autodoc directive for {name} in docs/api/*.md"


# ------------------------------------------------------------------------------ pages


def test_every_toctree_entry_exists():
    sources = _sources()
    missing = []
    for docname, path in sources.items():
        if path.suffix != ".md":
            continue
        for entry in _toctree_entries(path.read_text(encoding="utf-8")):
            target = _resolve(docname, entry)
            if target not in sources and target not in GENERATED:
                missing.append(f"{docname} -> {entry}")
    assert not missing, f"toctree entries without a page: {missing}"


def test_every_page_is_in_a_toctree():
    sources = _sources()
    listed = {"index"}
    for docname, path in sources.items():
        if path.suffix == ".md":
            listed |= {
                _resolve(docname, e) for e in _toctree_entries(path.read_text(encoding="utf-8"))
            }
    assert not set(sources) - listed, f"pages no toctree lists: {sorted(set(sources) - listed)}"


# ------------------------------------------------------------------------------ the real build


@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path):
    for module in ("sphinx", "myst_nb", "furo"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-q",
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "html" / "reference" / "cli.html").is_file()
    assert (tmp_path / "html" / "api" / "ops.html").is_file()
