"""The package itself: what ``import minivgg`` does (idle-thread defaults, lazy names) and its public surface."""

import os
import subprocess
import sys

import pytest


def test_import_sets_idle_thread_defaults_unless_the_user_did():
    """``import minivgg`` makes idle OpenBLAS/OpenMP threads sleep (set before numpy loads OpenBLAS),
    leaves a user's own values alone, and records when numpy came first (``minivgg doctor`` says so)."""
    code = (
        "import os, sys; first = sys.argv[1] == '1'\n"
        "if first: import numpy\n"
        "import minivgg\n"
        "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), os.environ.get('OMP_WAIT_POLICY'), minivgg.NUMPY_FIRST)"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")
    }
    run = lambda first, extra={}: subprocess.run(
        [sys.executable, "-c", code, first],
        env={**env, **extra},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert run("0") == ["4", "passive", "False"]
    assert run("1") == ["4", "passive", "True"]
    assert run("1", {"OPENBLAS_THREAD_TIMEOUT": "10", "OMP_WAIT_POLICY": "active"}) == [
        "10",
        "active",
        "False",
    ]


def test_this_test_run_got_the_thread_defaults():
    """conftest.py imports minivgg before numpy, so the suite runs with sleeping idle threads too."""
    import minivgg

    assert not minivgg.NUMPY_FIRST, (
        "numpy was imported before minivgg: a pytest plugin or conftest.py loaded it first"
    )
    assert os.environ["OMP_WAIT_POLICY"] and os.environ["OPENBLAS_THREAD_TIMEOUT"]


def test_public_names():
    import minivgg
    from minivgg.style.objective import Objective
    from minivgg.style.presets import PRESETS

    assert minivgg.Objective is Objective and minivgg.PRESETS is PRESETS
    assert set(minivgg.__all__) == {
        "ops",
        "gradcheck",
        "VGG",
        "load_vgg",
        "Objective",
        "PRESETS",
        "stylize",
    }
    from minivgg.api import stylize

    assert minivgg.stylize is stylize
    for name in minivgg.__all__:
        assert getattr(minivgg, name) is not None
    with pytest.raises(AttributeError):
        minivgg.not_a_name  # noqa: B018


def test_every_subpackage_is_declared_for_the_wheel():
    """pyproject lists the packages explicitly (several top-level folders defeat auto-discovery): a
    subpackage left out would be missing from the installed wheel while an editable checkout works."""
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parent.parent
    declared = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(root).parts)
        for p in (root / "minivgg").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found <= declared, f"not in pyproject's packages: {sorted(found - declared)}"
    assert {"minivgg._kernels", "minivgg._weights"} <= declared
