"""The engine's gradient-check suite (``minivgg.checks``, what ``minivgg gradcheck`` prints), one test
id per case: every op, every loss term, a VGG16 slice and every preset's objective pass at a relative
error of at most 1e-6. The objective cases (a full network forward and backward, three times each)
are marked slow."""
import io
from contextlib import redirect_stdout

import pytest

from minivgg.checks import Case, all_cases, loss_cases, objective_cases, op_cases, run_cases, vgg_cases

CASES = all_cases()


def _param(case):
    return pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.name.startswith("objective") else [])


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case):
    res = case.run()
    assert res.passed, res.report()
    assert res.error <= 1e-6, res.report()


def test_suite_covers_every_op_and_term_with_unique_ids():
    names = {c.name.split()[0] for c in CASES}
    assert {"conv2d", "relu", "avg_pool2d", "max_pool2d", "content_loss", "style_loss", "gram_backward",
            "tv_loss", "objective", "vgg16"} <= names
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert [c.id for c in CASES] == [c.id for c in op_cases() + loss_cases() + vgg_cases() + objective_cases()]


def test_filter_is_a_glob_on_the_name():
    relu = all_cases("relu*")
    assert relu and all(c.name.startswith("relu") for c in relu)
    assert all_cases("zzz*") == []
    assert {c.id for c in all_cases("objective*")} == {c.id for c in objective_cases()}


def test_run_cases_prints_the_table_and_reports_failures():
    from minivgg.gradcheck import CheckResult
    good = Case("good", "(1,)", lambda: CheckResult("good", (1,), 1.0, 1.0, 0.0, True))
    bad = Case("bad", "(2,)", lambda: CheckResult("bad", (2,), 1.0, 2.0, 0.5, False))

    def crash():
        raise RuntimeError("boom")
    lines = []
    assert run_cases([good], out=lines.append)
    assert lines[0].split()[:2] == ["check", "shape"] and lines[2].split()[-2:] == ["0.00e+00", "pass"]
    lines = []
    assert not run_cases([good, bad, Case("crash", "(3,)", crash)], out=lines.append)
    assert lines[3].split()[-2:] == ["5.00e-01", "FAIL"] and "ERROR: boom" in lines[4]
    buf = io.StringIO()
    with redirect_stdout(buf):  # prints by default
        run_cases([good])
    assert "good" in buf.getvalue()
