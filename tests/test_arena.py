"""``minivgg.engine.arena``: planned memory for repeated evaluations. The planner never lets two arrays alive
at once share bytes; a session records, the next ones replay from one buffer; an array a caller keeps,
a view of it, or a changed sequence of requests is never overwritten; an ``Objective`` gives the same
numbers on every evaluation with its large arrays served from the plan."""

import threading

import numpy as np
import pytest

from minivgg.engine import arena
from minivgg.network.vgg import random_vgg
from minivgg.style.objective import Objective


@pytest.fixture
def small_blocks(monkeypatch):
    """Route arrays of any size through the arena, so tests can use small ones."""
    monkeypatch.setattr(arena, "MIN_BYTES", 1)


def evaluation(seed, sizes=(3000, 5000, 2000, 7000)):
    """A toy evaluation: allocate in order, each array filled from the last; returns a checksum."""
    r = np.random.default_rng(seed)
    prev = r.standard_normal(10)
    total = 0.0
    for n in sizes:
        a = arena.empty((n,), np.float64)
        a[:] = np.resize(prev, n) * 0.5 + 1.0
        total += float(a.sum())
        prev = a
    return total


@pytest.mark.parametrize("seed", range(20))
def test_the_plan_never_overlaps_two_arrays_alive_at_once(seed):
    r = np.random.default_rng(seed)
    items = []
    for _ in range(int(r.integers(1, 40))):
        a = int(r.integers(0, 100))
        items.append((int(r.integers(1, 10**6)), a, a + int(r.integers(1, 30))))
    offsets = arena._place(items)
    for i, (ni, ai, fi) in enumerate(items):
        assert offsets[i] % arena._ALIGN == 0
        for j, (nj, aj, fj) in enumerate(items[:i]):
            if ai < fj and aj < fi:  # alive together: disjoint bytes
                assert offsets[i] + ni <= offsets[j] or offsets[j] + nj <= offsets[i], (i, j)
    peak_alive = max(sum(n for n, a, f in items if a <= t < f) for t in range(140))
    total = max(o + n for o, (n, _, _) in zip(offsets, items))
    assert peak_alive <= total <= sum(-(-n // arena._ALIGN) * arena._ALIGN for n, _, _ in items)


def test_a_session_records_and_the_next_replay_from_one_buffer(small_blocks):
    a = arena.Arena()
    with a.session("k"):
        first = evaluation(0)
    assert a.nbytes > 0 and a.replays == 0
    for _ in range(3):
        with a.session("k"):
            x = arena.empty((3000,), np.float64)
            assert np.shares_memory(x, a._buffer)
            del x
            again = evaluation(0, sizes=(5000, 2000, 7000))
    assert a.replays == 3 and "k" in a._plans
    b = arena.Arena()
    with b.session():
        assert evaluation(0) == first
    with b.session():
        assert evaluation(0) == first  # replayed: the same numbers
    assert np.isfinite(again)


def test_outside_a_session_empty_is_plain_numpy(small_blocks):
    x = arena.empty((4, 5), np.float32)
    assert x.shape == (4, 5) and x.dtype == np.float32 and x.flags.owndata


def test_an_array_kept_past_its_session_is_never_overwritten(small_blocks):
    a = arena.Arena()
    for _ in range(2):  # record, then replay
        with a.session():
            evaluation(1)
    with a.session():
        kept = arena.empty((3000,), np.float64)
        kept[:] = 7.0
        view = kept[10:20]  # a view outlives the array it came from
        del kept
        evaluation(1, sizes=(5000, 2000, 7000))
    assert not a._plans and a._buffer is None  # dropped: the next session records in fresh memory
    with a.session():
        evaluation(1)
    with a.session():
        evaluation(1)
    assert np.all(view == 7.0)


def test_a_live_block_is_not_reused_inside_a_session(small_blocks):
    a = arena.Arena()

    def run(keep):
        held = []
        for n in (4000, 4000, 4000):
            x = arena.empty((n,), np.float64)
            x[:] = n + len(held)
            if keep:
                held.append(x)
            del x
        return held

    with a.session():
        run(keep=False)  # recorded: each array dies before the next, so all three share one place
    with a.session():
        held = run(keep=True)  # now they are kept: none may share bytes with another
        assert [float(h[0]) for h in held] == [4000.0, 4001.0, 4002.0]
        assert not np.shares_memory(held[0], held[1]) and not np.shares_memory(held[1], held[2])


def test_a_different_sequence_is_served_fresh_and_recorded_again(small_blocks):
    a = arena.Arena()
    with a.session():
        evaluation(2)
    with a.session():
        assert evaluation(2, sizes=(3000, 9999, 2000)) == evaluation(2, sizes=(3000, 9999, 2000))
    assert not a._plans  # recorded anew at the next session
    with a.session():
        evaluation(2, sizes=(3000, 9999, 2000))
    assert len(a._plans[None][0]) == 3


def test_each_key_has_its_plan_in_one_shared_buffer_and_max_bytes_bounds_it(small_blocks):
    a = arena.Arena()
    with a.session("small"):
        evaluation(3)
    small = a.nbytes
    with a.session("large"):
        evaluation(3, sizes=(9000, 9000, 9000))
    assert (
        a.nbytes > small and a.replays == 0 and a._buffer is None
    )  # allocated by the first replay
    buffers = []
    for key, sizes in (("small", (3000, 5000, 2000, 7000)), ("large", (9000, 9000, 9000))) * 2:
        expected = evaluation(3, sizes)  # outside any session: plain NumPy arrays
        with a.session(key):
            assert evaluation(3, sizes) == expected
        buffers.append(a._buffer)
    assert (
        a.replays == 4
        and all(b is buffers[0] for b in buffers)
        and set(a._plans) == {"small", "large"}
    )
    a.drop_buffer()  # plans kept: the next replay allocates the buffer again
    with a.session("large"):
        assert evaluation(3, (9000, 9000, 9000)) == expected
    assert a.replays == 5 and a._buffer is not buffers[0] and a._buffer.nbytes == a.nbytes
    tiny = arena.Arena(max_bytes=1000)
    for _ in range(3):
        with tiny.session():
            evaluation(3)
    assert tiny.nbytes == 0 and tiny.replays == 0 and not tiny._plans


def test_sessions_are_per_thread_and_nest(small_blocks):
    a = arena.Arena()
    seen = []
    with a.session():
        with a.session():  # nested: joins the outer one
            arena.empty((100,), np.float64)
        t = threading.Thread(
            target=lambda: seen.append(arena.empty((100,), np.float64).flags.owndata)
        )
        t.start()
        t.join()
    assert seen == [True] and len(a._plans[None][0]) == 1


def test_objective_evaluations_replay_the_plan_with_the_same_numbers(small_blocks, rng):
    net = random_vgg("vgg16", seed=3)
    content = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    style = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    obj = Objective(net, content, style, "gatys")
    x = content + rng.uniform(-16, 16, content.shape)
    v0, g0 = obj.value_and_grad(x)
    kept = g0.copy()
    for _ in range(3):
        v, g = obj.value_and_grad(x)
        assert v == v0 and np.array_equal(g, g0)  # bitwise: the same arithmetic in other memory
    assert obj.arena.replays == 3 and obj.arena.nbytes > 0
    assert not np.shares_memory(g, obj.arena._buffer)  # the gradient is the caller's
    obj.value_and_grad(x + 1.0)
    assert np.array_equal(g0, kept)  # a kept gradient is never written over


def test_tiled_evaluations_replay_one_plan_per_pass_and_window_shape(small_blocks, rng):
    net = random_vgg("vgg16", seed=4)
    content = rng.integers(0, 256, (70, 90, 3)).astype(np.uint8)
    style = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    obj = Objective(net, content, style, "gatys", tile_size=48)
    x = content + rng.uniform(-16, 16, content.shape)
    v0, g0 = obj.value_and_grad(x)
    for _ in range(2):
        v, g = obj.value_and_grad(x)
        assert v == v0 and np.array_equal(g, g0)
    keys = set(obj.arena._plans)
    assert {k[0] for k in keys} == {"sums", "grad"} and len(
        keys
    ) >= 4  # corner windows differ in shape
    assert obj.arena.replays > 0 and obj.arena._buffer is None  # not held between evaluations
