"""The layout of ``bench/``: its modules import one another without a circle, and the index page
embeds every study's page. No benchmark runs and torch is not needed.

``python tests/test_bench_layout.py`` prints the import graph of bench's modules and any circle.
"""

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def _module(path: Path) -> str:
    return "bench" if path.name == "__init__.py" else f"bench.{path.stem}"


def _imported(node, modules: set) -> set:
    """The bench modules one import statement names."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & modules
    if not isinstance(node, ast.ImportFrom) or node.level > 1:
        return set()
    base = ("bench" + (f".{node.module}" if node.module else "")) if node.level else node.module
    if base not in modules:
        return set()
    if base != "bench":
        return {base}
    return {f"bench.{a.name}" if f"bench.{a.name}" in modules else "bench" for a in node.names}


def import_graph(folder: Path = BENCH) -> dict:
    """``{module: {bench modules it imports}}`` from the source of ``folder/*.py``, imports inside
    functions included; ``from . import NAME`` imports ``bench.NAME`` when that is a module, else
    the package ``bench`` itself."""
    modules = {_module(p): p for p in folder.glob("*.py")}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set().union(*(_imported(n, set(modules)) for n in ast.walk(tree))) - {name}
    return graph


def cycles(graph: dict) -> list[list[str]]:
    """Every elementary circle once, as a list of modules starting at its smallest name."""
    found = set()

    def walk(start, node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in path:
                walk(start, nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return [list(c) for c in sorted(found)]


def test_the_checker_finds_a_circle(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .c import g\n")
    (tmp_path / "c.py").write_text("from .a import x\nfrom . import USER_ENV\n")
    graph = import_graph(tmp_path)
    assert graph == {
        "bench": set(),
        "bench.a": {"bench.b"},
        "bench.b": {"bench.c"},
        "bench.c": {"bench", "bench.a"},
    }
    assert cycles(graph) == [["bench.a", "bench.b", "bench.c"]]


def test_no_import_circle_among_bench_modules():
    graph = import_graph()
    assert {"bench.compare", "bench.peers", "bench.workers", "bench.index"} <= set(graph)
    assert cycles(graph) == []


@pytest.fixture
def index(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from bench import index

    return index


def test_the_index_embeds_every_study_page(index, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    pages = {
        "compare.md": "# Two engines\n\nratio 0.76x\n\n## Scaling\n\n![plot](compare.png)\n",
        "tiling.md": "# Tiled evaluation\n\n| size | peak |\n|---|---:|\n| 4096² | 3.05 GiB |\n",
        "transfer_4096.md": "# A whole transfer\n\npeak RSS 16.76 GiB\n",
        "zz_new_study.md": "# Something new\n\n```\n# not a heading\n```\n\nx = 1\n",
    }
    for name, text in pages.items():
        (results / name).write_text(text)
    (results / "compare.json").write_text("{}")  # raw data: not a page
    out = index.write_index(results, tmp_path / "results.md")
    text = out.read_text()
    for name, page in pages.items():
        assert f"[{name}](results/{name})" in text
        for line in page.splitlines():
            if line.startswith("#") and not line.startswith("# not"):
                assert f"\n#{line}\n" in text  # one level down: a section of the index
            elif line.startswith("!["):
                assert "![plot](results/compare.png)" in text
            else:
                assert line in text
    assert "compare.json" not in text
    order = [
        text.index(t)
        for t in (
            "## Two engines",
            "## Tiled evaluation",
            "## A whole transfer",
            "## Something new",
        )
    ]
    assert order == sorted(order)
    assert "\n# not a heading\n" in text  # code stays as it was


def test_a_rewritten_page_keeps_its_notes(index, tmp_path):
    page = tmp_path / "peers.md"
    notes = f"{index.NOTES_START}\nA second run gave 0.79x.\n{index.NOTES_END}"
    page.write_text(f"# Peers\n\n{notes}\n\nold table\n")
    index.save_page(page, "# Peers\n\nnew table\n")
    assert page.read_text() == f"# Peers\n\n{notes}\n\nnew table\n"


def test_the_committed_index_is_up_to_date(index):
    if not index.RESULTS_DIR.is_dir():
        pytest.skip("no bench/results/ in this checkout")
    assert index.INDEX_PAGE.read_text() == index.render_index(), "run python -m bench.index"


if __name__ == "__main__":
    g = import_graph()
    for name in sorted(g):
        print(f"{name:24} -> {', '.join(sorted(g[name])) or '-'}")
    found = cycles(g)
    print("circles:", found or "none")
    sys.exit(1 if found else 0)
