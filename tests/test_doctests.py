"""Every docstring's Examples run as doctests, on the installed package (``pytest -q`` covers them;
``pytest tests/test_doctests.py -k ops`` runs one module's). Examples use tiny synthetic data."""

import doctest
import importlib
import pkgutil

import pytest

import minivgg

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
# Modules that need an optional GPU stack at import time.
SKIP = {"minivgg._kernels.cuda_ops"}
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(minivgg.__path__, "minivgg.")
    if m.name not in SKIP and not m.name.endswith("__main__")
)


def _examples(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module) if t.examples]


def test_the_public_api_has_examples():
    """The doctests exist where the users look first: the top-level names and ``minivgg.ops``."""
    for name in ("stylize", "Objective", "load_vgg", "VGG"):
        obj = getattr(minivgg, name)
        assert ">>>" in (obj.__doc__ or ""), f"minivgg.{name} has no Examples"
    for name in minivgg.ops.__all__:
        fn = getattr(minivgg.ops, name)
        if callable(fn):
            assert ">>>" in (fn.__doc__ or ""), f"minivgg.ops.{name} has no Examples"
    for name in minivgg.gradcheck.__all__:
        obj = getattr(minivgg.gradcheck, name)
        if callable(obj):
            assert ">>>" in (obj.__doc__ or ""), f"minivgg.gradcheck.{name} has no Examples"


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    tests = _examples(module)
    if not tests:
        pytest.skip(f"{name} has no examples")
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
