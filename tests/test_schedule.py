"""Coarse to fine: scale sizes, per-scale iterations, content weighting; the convergence stop."""

import pytest

from minivgg.errors import UserError
from minivgg.run.controls import STOP_WINDOW, ConvergenceStop
from minivgg.run.schedule import content_scale, scale_iters, scale_sizes


def test_scale_sizes():
    assert scale_sizes(512) == [512]
    assert scale_sizes(512, scales=(256, 362, 512)) == [256, 362, 512]
    assert scale_sizes(512, scales=384) == [384]
    assert scale_sizes(512, min_scale=256) == [256, 362, 512]
    assert scale_sizes(100, min_scale=100) == [100]
    for kwargs, match in [
        ({"scales": (256, 0)}, "must be a positive number"),
        ({"scales": ()}, "at least one"),
        ({"min_scale": 600}, "larger than --size"),
        ({"scales": (1,), "min_scale": 2}, "choose one"),
        ({"scales": (2.5,)}, "must be a positive number"),
    ]:
        with pytest.raises(UserError, match=match):
            scale_sizes(512, **kwargs)


def test_scale_iters():
    assert scale_iters(None, 500, 3) == [500, 500, 500]
    assert scale_iters(100, 500, 2) == [100, 100]
    assert scale_iters((300, 100, 50), 500, 3) == [300, 100, 50]
    with pytest.raises(UserError, match="3 values for 2 scales"):
        scale_iters((1, 2, 3), 500, 2)
    with pytest.raises(UserError, match="must be a positive number"):
        scale_iters(0, 500, 1)


def test_content_scale_keeps_the_balance_of_sum_norms_only():
    assert content_scale("half_sum", 256, 512) == 4.0
    assert content_scale("sum", 512, 512) == 1.0
    assert content_scale("mean", 256, 512) == 1.0


def test_convergence_stop():
    stop = ConvergenceStop(0.02)
    losses = [100.0 / (1 + i) for i in range(STOP_WINDOW + 1)]  # falling fast: no stop
    assert not any(stop.update(i, v) for i, v in enumerate(losses))
    flat = ConvergenceStop(0.02)
    assert not any(flat.update(i, 10.0 - 1e-4 * i) for i in range(STOP_WINDOW))
    assert flat.update(STOP_WINDOW, 10.0 - 1e-4 * STOP_WINDOW) and flat.stopped_at == STOP_WINDOW
    never = ConvergenceStop(None)
    assert not any(never.update(i, 1.0) for i in range(3 * STOP_WINDOW))
