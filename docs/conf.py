"""Sphinx configuration of the minivgg documentation site.

Build it with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (the ``docs`` extra).
Pages are MyST Markdown; the notebook is rendered without running it; the API reference comes
from the docstrings (autodoc, numpydoc style through napoleon) and the command-line reference is
generated from the argparse parsers by ``_ext/cliref.py`` into ``reference/cli.md`` at every build.
"""

import inspect
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
try:
    import minivgg
except ImportError:  # a checkout that is not installed: document it in place
    sys.path.insert(0, str(DOCS.parent))
    import minivgg

project = "minivgg"
author = "the minivgg authors"
copyright = "the minivgg authors"
release = minivgg.__version__
version = release

extensions = [
    "myst_nb",  # MyST Markdown pages and notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "cliref",  # reference/cli.md from minivgg.cli.build_parser()
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "_ext"]
templates_path: list[str] = []

# MyST: ::: fences, $…$ off (prices and $MINIVGG_HOME are not math), heading anchors for #links.
myst_enable_extensions = ["colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3

# Notebooks are shown as they are stored; tests/test_notebook.py is what executes them.
nb_execution_mode = "off"

# API reference: numpydoc docstrings, members in source order, signatures without type clutter.
autosummary_generate = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" sections as fields: no duplicates of autodoc's members

# No network while building: no intersphinx.
html_theme = "furo"
html_title = f"minivgg {release}"
html_static_path: list[str] = []


def _drop_builtin_type_docstrings(app, what, name, obj, options, lines):
    """A module constant without a ``#:`` comment would show its type's docstring
    (``tuple``'s, ``dict``'s): show none instead; the page says what the constant is."""
    if what not in ("data", "attribute") or not lines:
        return
    type_doc = inspect.getdoc(type(obj))
    if type_doc and "\n".join(lines).strip() == type_doc.strip():
        lines[:] = []


def setup(app):
    app.connect("autodoc-process-docstring", _drop_builtin_type_docstrings)
