"""The engine's gradient-check suite (``minivgg.tools.checks``, what ``minivgg gradcheck`` prints), one test
id per case and dtype: every op, every loss term, a VGG16 slice and every preset's objective pass
through ``minivgg.gradcheck`` with the tolerance it derives, in float64 (relative error at most 1e-6)
and end to end in float32. The objective cases (a full network forward and backward, a dozen times
each) are marked slow."""

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

from minivgg.gradcheck import CheckResult
from minivgg.tools.checks import (
    Case,
    all_cases,
    loss_cases,
    objective_cases,
    op_cases,
    run_cases,
    vgg_cases,
)

CASES = all_cases()


def _params():
    for case in CASES:
        for dtype in case.dtypes:
            yield pytest.param(
                case,
                dtype,
                id=case.id if dtype == "float64" else f"{case.id} {dtype}",
                marks=[pytest.mark.slow] if case.name.startswith("objective") else [],
            )


@pytest.mark.parametrize("case, dtype", list(_params()))
def test_case(case, dtype):
    res = case.check(dtype)
    assert res.passed, res.report()
    assert res.dtype == dtype and res.derived and res.error <= res.tolerance
    if dtype == "float64":
        assert res.error <= 1e-6, res.report()


def test_suite_covers_every_op_and_term_with_unique_ids():
    names = {c.name.split()[0] for c in CASES}
    assert {
        "conv2d",
        "relu",
        "avg_pool2d",
        "max_pool2d",
        "content_loss",
        "style_loss",
        "gram_backward",
        "tv_loss",
        "objective",
        "vgg16",
    } <= names
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    listed = {c.id for c in op_cases() + loss_cases() + vgg_cases() + objective_cases()}
    assert listed <= set(ids)
    assert all(c.dtypes == ("float64", "float32") for c in CASES)


def test_filter_is_a_glob_on_the_name():
    relu = all_cases("relu*")
    assert relu and all(c.name.startswith("relu") for c in relu)
    assert all_cases("zzz*") == []
    assert {c.id for c in all_cases("objective preset=*")} >= {c.id for c in objective_cases()}
    assert [c.id for c in all_cases("relu*", dtype="float32")] == [c.id for c in relu]


def test_a_case_without_a_dtype_runs_in_float64_only():
    legacy = Case("legacy", "(1,)", lambda: CheckResult("legacy", (1,), "pass"))
    assert legacy.dtypes == ("float64",) and legacy.check().passed
    with pytest.raises(ValueError, match="runs only in float64"):
        legacy.check("float32")
    seen = []
    typed = Case(
        "typed",
        "(1,)",
        lambda dtype=np.float64: seen.append(dtype) or CheckResult("typed", (1,), "pass"),
    )
    typed.check("float32")
    assert seen == [np.float32]


def test_run_cases_prints_verdict_error_tolerance_eps_and_reports_failures():
    def stub(name, verdict, error, **kw):
        return Case(
            name,
            "(2,)",
            lambda dtype=np.float64: CheckResult(
                name,
                (2,),
                verdict,
                error=error,
                tolerance=1e-9,
                eps=1e-5,
                dtype=np.dtype(dtype).name,
                **kw,
            ),
        )

    good, kink = stub("good", "pass", 1e-12), stub("kink", "kink", 0.1)
    bad = stub("bad", "fail", 0.5, suspects=np.array([True, False]))

    def crash(dtype=np.float64):
        raise RuntimeError("boom")

    lines = []
    assert run_cases([good], out=lines.append)
    assert lines[0].split()[:6] == ["check", "shape", "error", "tolerance", "eps", "verdict"]
    assert lines[2].split()[-4:] == ["1.00e-12", "1.00e-09", "1.00e-05", "pass"]
    lines = []
    assert not run_cases(
        [good, bad, kink, Case("crash", "(3,)", crash)], out=lines.append, dtype="float32"
    )
    assert "(float32)" in lines[0] and lines[3].split()[-2:] == ["1.00e-05", "FAIL"]
    assert any("suspects: 1 of 2 elements: [0]" in line for line in lines)
    assert any(line.split()[-1] == "KINK" for line in lines)
    assert "ERROR: RuntimeError: boom" in lines[-1]
    buf = io.StringIO()
    with redirect_stdout(buf):  # prints by default
        run_cases([good])
    assert "good" in buf.getvalue()


def test_cli_dtype_and_json(capsys):
    from minivgg.cli import main

    assert main(["gradcheck", "-k", "avg_pool2d", "--dtype", "float32", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (
        doc["dtype"] == "float32" and doc["all_passed"] and doc["total"] == len(doc["checks"]) == 2
    )
    rec = doc["checks"][0]
    assert (
        rec["verdict"] == "pass"
        and rec["dtype"] == "float32"
        and rec["tolerance"] > 1e-6
        and rec["eps"] > 0
    )
    assert main(["gradcheck", "-k", "relu", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "verdict (float32)" in out[0] and out[-1] == "2 checks, all passed"
