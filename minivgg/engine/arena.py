"""Memory reused across evaluations: one buffer, with every large array's place planned from the first run.

An optimiser evaluates the same objective at the same image size hundreds of times, and each
evaluation allocates the same large arrays in the same order: conv outputs, pool outputs and
gradients, ReLU masks. Arrays above malloc's mmap threshold (32 MiB) come from the kernel fresh
every time, so every evaluation faults all of their pages in again: at 1024² on this project's
2-core VM that was 2 s of system time in a 5 s evaluation (bench/results.md, "Memory reused").

An ``Arena`` does what a compiler's memory planner does, at run time:

1. **record** — the first evaluation under a ``session`` hands out fresh arrays and notes each
   one's size and the moment it was allocated and freed (a weak reference to its owner);
2. **plan** — the arrays freed inside the evaluation are placed in one buffer, largest first, each
   at the lowest offset where it overlaps no array alive at the same time (the "greedy by size"
   offset planner of TFLite); arrays that outlive the evaluation stay out of the plan;
3. **replay** — later evaluations get views of that buffer at the planned offsets, so after the
   first replay no page is faulted again. The buffer is held between evaluations; the peak is the
   plan's size, a few percent over the arrays' own peak (``tests/test_arena.py``).

Safety does not depend on the evaluation behaving as recorded. Every array handed out is owned by
a ``_Block``; a block is placed only where every block that shares its bytes is already dead, and
otherwise comes fresh. A request that differs from the record (another size, more requests) is
served fresh and the next session records anew; a block still alive when its session ends (a caller
kept it) makes the next session record anew in a new buffer. Plans larger than ``max_bytes`` are
not replayed (the memory would be held between evaluations): those sizes run as before.

The allocation sites call ``empty``; with no session active it is ``np.empty``. NumPy only.
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref

import numpy as np

MIN_BYTES = 1 << 20  # smaller arrays come from malloc's heap, which reuses them already
MAX_BYTES = 2 << 30  # largest plan held between evaluations (2 GiB: untiled images up to ~1700²)
_ALIGN = 4096  # every block starts on a page
_MAX_PLANS = 64  # plans kept per arena, the oldest going first (a tile grid has ~9 per pass)
_local = threading.local()
# (request sizes, per request (offset or None, earlier requests sharing bytes), bytes spanned)
_Plan = tuple[list[int], list[tuple[int | None, tuple[int, ...]]], int]


class _Block:
    """The owner of one handed-out array: views of it keep it alive, so its weak reference dies
    only when no array reads its bytes any more."""

    __slots__ = ("__array_interface__", "_buffer", "__weakref__")

    def __init__(self, buffer, offset: int, shape, dtype):
        self._buffer = buffer
        self.__array_interface__ = {
            "shape": shape,
            "typestr": dtype.str,
            "version": 3,
            "data": (buffer.ctypes.data + offset, False),
        }


def empty(shape, dtype=np.float32, xp=np):
    """``xp.empty(shape, dtype)``; a NumPy array of at least ``MIN_BYTES`` comes from the active
    session's arena, if any."""
    arena = getattr(_local, "arena", None)
    if arena is None or xp is not np:
        return xp.empty(shape, dtype=dtype)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    return arena._empty(shape, dtype, nbytes)


def _place(items):
    """Offsets for ``items`` [(nbytes, t_alloc, t_free)] so that any two alive at once are disjoint:
    largest first, each at the lowest aligned gap among the placed items it overlaps in time."""
    offsets = [None] * len(items)
    placed = []
    for k in sorted(range(len(items)), key=lambda k: (-items[k][0], items[k][1])):
        size, a, f = items[k]
        busy = sorted(
            (offsets[j], offsets[j] + items[j][0])
            for j in placed
            if a < items[j][2] and items[j][1] < f
        )
        at = 0
        for lo, hi in busy:
            if at + size <= lo:
                break
            at = max(at, -(-hi // _ALIGN) * _ALIGN)
        offsets[k] = at
        placed.append(k)
    return offsets


class Arena:
    """Planned memory for repeated evaluations; ``with arena.session(key):`` around each one.

    Each ``key`` (the evaluation's shape: an image size, or a tile window's and its pass) has its own
    plan; all plans share one buffer, as large as the largest, since sessions never overlap.
    """

    def __init__(self, max_bytes: int | None = None):
        self.max_bytes = MAX_BYTES if max_bytes is None else int(max_bytes)
        self.key = None  # key of the last session
        self.nbytes = 0  # size of the held buffer (0: none)
        self.replays = 0  # sessions served from a plan
        self._plans: dict[object, _Plan] = {}  # key -> its plan
        self._buffer = None
        # weak references to this session's blocks, by request index (None: served fresh)
        self._blocks: list[weakref.ref[_Block] | None] = []
        self._i = 0
        self._clock = [0]
        self._fresh = False  # this session left its plan: drop the plan, record again next time
        self._recording = None

    def release(self) -> None:
        """Drop every plan and the buffer (arrays still using it keep their part alive)."""
        self._plans, self._buffer, self.nbytes = {}, None, 0

    def drop_buffer(self) -> None:
        """Give the buffer back, keeping the plans: the next replay allocates it again and faults it in
        once. The tiled evaluation does this after each evaluation, so that between evaluations (when
        the optimiser's whole-image temporaries live) nothing window-sized is held."""
        self._buffer = None

    @contextlib.contextmanager
    def session(self, key=None):
        """Allocations of ``empty`` inside the block come from this arena: recorded when ``key`` has no
        plan yet, else served from it. Nested sessions join the outer one."""
        if getattr(_local, "arena", None) is not None:
            yield self
            return
        self.key = key
        self._blocks, self._i, self._clock, self._fresh = [], 0, [0], False
        self._recording = [] if key not in self._plans else None
        if self._recording is not None:  # a recording allocates afresh: hold no buffer beside it
            self._buffer = None
        elif self._buffer is None:
            self._buffer = np.empty(self.nbytes, dtype=np.uint8)
        _local.arena = self
        try:
            yield self
        finally:
            _local.arena = None
            self._finish(key, self._recording)
            self._recording = None

    def _finish(self, key, record) -> None:
        if record is not None:  # recorded: plan the arrays that died inside the session
            items = [r for r in record if r[2] is not None]
            offsets = iter(_place(items))
            spans = [(next(offsets), r[0]) if r[2] is not None else None for r in record]
            total = max([o + n for o, n in filter(None, spans)], default=0)
            if 0 < total <= self.max_bytes:
                plan = [
                    (None, ())
                    if s is None
                    else (
                        s[0],
                        tuple(
                            j
                            for j, t in enumerate(spans[:k])
                            if t is not None and t[0] < s[0] + s[1] and s[0] < t[0] + t[1]
                        ),
                    )
                    for k, s in enumerate(spans)
                ]
                if len(self._plans) >= _MAX_PLANS:
                    self._plans.pop(next(iter(self._plans)))
                self._plans[key] = ([r[0] for r in record], plan, total)
            # one buffer for every plan, allocated by the next replay (which faults its pages in)
            self.nbytes = max([p[2] for p in self._plans.values()], default=0)
            return
        self.replays += 1
        if any(ref is not None and ref() is not None for ref in self._blocks):
            self.release()  # live blocks keep the old buffer; every key records anew, in a new one
        elif self._fresh or self._i != len(self._plans[key][0]):
            self._plans.pop(key)

    def _empty(self, shape, dtype, nbytes):
        i = self._i
        self._i += 1
        if self._recording is not None:
            block = _Block(np.empty(nbytes, dtype=np.uint8), 0, shape, dtype)
            entry = [nbytes, self._clock[0], None]
            self._clock[0] += 1
            clock = self._clock
            self._blocks.append(weakref.ref(block, lambda _, e=entry, c=clock: _died(e, c)))
            self._recording.append(entry)
            return np.asarray(block)
        sizes, plan, _ = self._plans[self.key]
        if i >= len(sizes) or sizes[i] != nbytes:
            self._fresh = True
        offset, shares = (None, ()) if self._fresh else plan[i]
        if offset is None or any(
            self._blocks[j] is not None and self._blocks[j]() is not None for j in shares
        ):
            self._fresh = self._fresh or offset is not None
            self._blocks.append(None)
            return np.empty(shape, dtype=dtype)
        block = _Block(self._buffer, offset, shape, dtype)
        self._blocks.append(weakref.ref(block))
        return np.asarray(block)


def _died(entry, clock) -> None:
    entry[2] = clock[0]
    clock[0] += 1
