"""``stylize_video``: Ruder et al.'s video style transfer on transfer's code path.

Frame 0 runs as ``minivgg transfer`` does (its ``--init``, coarse-to-fine ``--scales``). Every later
frame t starts from the previous optimised image warped onto it by the backward optical flow, with
the unreliable pixels (``flow.consistency_mask`` = 0) filled from the content frame, and its
objective gains ``temporal_weight · L_t`` (``style/temporal.py``) pulling it towards that warped
image where the flow is reliable. The flows and masks of all frame pairs depend on the input only:
they run as tasks on Dask (``tools/cluster.py``) while the frames are optimised in order.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..run import schedule
from ..run.fsutil import atomic_write, check_output_path, same_file
from ..run.image import to_uint8
from ..run.transfer import RunOptions, _validate, optimize, prepare
from ..style.presets import PRESETS, resolve_settings
from ..style.temporal import TemporalTerm
from . import flow as flows
from . import io, work

DEFAULT_TEMPORAL_WEIGHT = 1e8  # bench/results/video_*.md: gatys, 128-256 px
_RUN_FIELDS = {f.name for f in dataclasses.fields(RunOptions)}


@dataclasses.dataclass
class VideoOptions:
    """The video's own choices (``RunOptions`` holds transfer's)."""

    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT
    frames: tuple = (None, None)  # [A, B) of the input's frames
    fps: float | None = None
    flow: str = "dis"
    workers: int | None = 1  # Dask workers of the local cluster; 0: flows in this process
    scheduler: str | None = None


def parse_frames(text):
    """``"A:B"``, ``"A:"`` or ``":B"`` as ``(A or None, B or None)``; UserError for anything else.

    Examples
    --------
    >>> parse_frames("10:20"), parse_frames(":5"), parse_frames("3:")
    ((10, 20), (None, 5), (3, None))
    """
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise UserError(
            f"--frames must be A:B with whole numbers, e.g. 0:48, got {text!r}"
        ) from None
    if (
        (a is not None and a < 0)
        or (b is not None and b < 1)
        or (a is not None and b is not None and b <= a)
    ):
        raise UserError(f"--frames {text} selects no frames: need 0 <= A < B")
    return a, b


def _check_video_options(v: VideoOptions) -> None:
    w = v.temporal_weight
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
        raise UserError(f"--temporal-weight must be a finite number >= 0, got {w}")
    if v.fps is not None and (not math.isfinite(v.fps) or not 0 < v.fps <= 1000):
        raise UserError(f"--fps must be a frame rate above 0 and at most 1000, got {v.fps}")
    if v.flow not in flows.FLOW_METHODS:
        raise UserError(f"--flow must be one of {', '.join(flows.FLOW_METHODS)}, got {v.flow!r}")
    if v.workers is not None and v.workers < 0:
        raise UserError(f"--workers must be a whole number >= 0, got {v.workers}")
    if v.workers is not None and v.scheduler:
        raise UserError(
            "--workers sizes the local cluster; a --scheduler cluster has its own workers"
        )
    from ..tools.cluster import check_address

    check_address(v.scheduler)
    a, b = v.frames
    if (
        (a is not None and a < 0)
        or (b is not None and a is not None and b <= a)
        or (b is not None and b < 1)
    ):
        raise UserError(f"--frames {a}:{b} selects no frames: need 0 <= A < B")


def stylize_video(
    source,
    styles,
    output,
    *,
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT,
    frames=(None, None),
    fps: float | None = None,
    flow: str = "dis",
    workers: int | None = 1,
    scheduler: str | None = None,
    argv=None,
    **options,
) -> dict:
    """Stylise a video with Ruder et al.'s temporal loss; write it to ``output``; return the log.

    Parameters
    ----------
    source : str or Path
        A video file (mp4, mov, webm, gif, …) or a folder of same-sized frames.
    styles : str, Path or list of them
        The style image(s).
    output : str or Path
        ``.mp4``/``.mov``/``.mkv``/``.webm``/``.gif``, or a name without a suffix: a folder of PNG frames.
        The input's frame rate and sound are kept. Frames wait in ``OUTPUT.work`` (resumable).
    temporal_weight : float
        Weight of the temporal loss (0: frames independent but warm-started).
    frames : (A, B)
        Only input frames ``A <= k < B`` (None: from the start / to the end).
    fps : float or None
        Stylise at this frame rate (ffmpeg resamples; a folder's rate, default 24).
    flow : {"dis", "farneback"}
        OpenCV's optical flow.
    workers, scheduler
        Dask for the flows: a local cluster of ``workers`` processes, the scheduler at ``scheduler``, or
        ``workers=0`` for no Dask (flows computed in this process).
    argv : list of str or None
        The command line, for the "continue with" hint after Ctrl-C.
    **options
        ``RunOptions`` fields (``size``, ``iters``, ``preset``, ``weights``, ``quiet``, ``log``, …) and
        the objective's overrides (``style_weight``, ``content_weight``, …), as for ``transfer``.

    Returns
    -------
    dict
        The log: settings, per-frame iterations, losses and seconds, the flow time.

    Raises
    ------
    UserError
        Bad input (one sentence), before any frame is optimised.
    KeyboardInterrupt
        After keeping every finished frame in the work folder and printing how to continue.

    Examples
    --------
    A whole run needs the VGG weights and minutes (``docs/guide/video.md``); bad input is refused at once:

    >>> stylize_video("missing.mp4", "style.jpg", "out.mp4", size=64)
    Traceback (most recent call last):
    ...
    minivgg.errors.UserError: input video missing.mp4 does not exist
    """
    unknown = [k for k in options if k in ("output", "resume")]
    if unknown:
        raise UserError(f"stylize_video takes no {unknown[0]!r} option")
    opts = RunOptions(output=None, **{k: v for k, v in options.items() if k in _RUN_FIELDS})
    overrides = {k: v for k, v in options.items() if k not in _RUN_FIELDS}
    video = VideoOptions(
        temporal_weight, tuple(frames or (None, None)), fps, flow, workers, scheduler
    )
    return run_video(
        source,
        [styles] if isinstance(styles, (str, Path)) else list(styles),
        output,
        opts,
        overrides,
        video,
        argv,
    )


def _load_network_cache(load) -> Callable[..., Any]:
    """``load_vgg``'s stand-in loading each network once for the whole video."""
    from ..network.vgg import load_vgg

    load = load or load_vgg
    cache: dict = {}

    def cached(arch, **kw):
        key = (arch, *sorted((k, str(v)) for k, v in kw.items()))
        if key not in cache:
            cache[key] = load(arch, **kw)
        return cache[key]

    return cached


def _validate_all(source, styles, output, opts: RunOptions, overrides, video: VideoOptions) -> str:
    """Every flag and path that can be judged before decoding; returns ``io.check_video_output``'s kind."""
    if opts.preset not in PRESETS:
        raise UserError(f"unknown preset {opts.preset!r}; valid presets: {', '.join(PRESETS)}")
    resolve_settings(opts.preset, dict(overrides))
    _check_video_options(video)
    if opts.save_every:
        raise UserError("--save-every is not used by video: every frame is saved as it finishes")
    _validate(dataclasses.replace(opts, output=None, log=None, report=None), None, styles)
    if not Path(source).exists():
        raise UserError(f"input video {source} does not exist")
    kind = io.check_video_output(output, [source, *styles])
    if opts.log:
        check_output_path(Path(opts.log), [source, *styles])
        if same_file(opts.log, output):
            raise UserError(f"--log {opts.log} is the output itself; give the log its own name")
    return kind


def _settings_key(source, styles, opts, overrides, video, clip) -> str:
    run = {
        k: v
        for k, v in dataclasses.asdict(opts).items()
        if k not in ("quiet", "log", "report", "load_network", "output")
    }
    return work.fingerprint(
        source,
        styles,
        {
            "run": run,
            "overrides": overrides,
            "temporal_weight": video.temporal_weight,
            "frames": list(video.frames),
            "fps": clip.fps,
            "flow": video.flow,
        },
    )


def run_video(
    source, styles, output, opts: RunOptions, overrides: dict, video: VideoOptions, argv=None
) -> dict:
    """``stylize_video`` from parsed options (the command line's entry)."""
    output = Path(output)
    kind = _validate_all(source, styles, output, opts, overrides, video)
    preset = PRESETS[opts.preset]
    size = int(opts.size or preset.size)
    clip = io.read_clip(source, size, video.frames, video.fps, preset.square_crop, opts.max_pixels)
    n = len(clip.frames)
    folder = work.WorkFolder(
        work.work_folder(output), _settings_key(source, styles, opts, overrides, video, clip), n
    )
    start, x_prev = folder.resume_point()
    base = dataclasses.replace(
        opts,
        output=None,
        log=None,
        report=None,
        quiet=True,
        resume=None,
        load_network=_load_network_cache(opts.load_network),
    )
    log: dict = {
        "input": str(source),
        "output": str(output),
        "frames": n,
        "first_frame": clip.first,
        "fps": clip.fps,
        "audio": clip.audio,
        "temporal_weight": video.temporal_weight,
        "flow": video.flow,
        "resumed_at": start,
        "settings": {},
        "records": [],
    }
    t0 = time.perf_counter()
    try:
        if start < n:
            _optimize_frames(
                clip, styles, base, overrides, video, folder, start, x_prev, log, opts.quiet, argv
            )
        log["seconds"] = round(time.perf_counter() - t0, 3)
        _write_output(output, kind, folder, clip)
    except KeyboardInterrupt:
        done = folder.done()
        cmd = "minivgg " + shlex.join(argv) if argv else "the same stylize_video call"
        print(
            f"\ninterrupted: {done} of {n} frames are finished and kept in {folder.path}\n"
            f"continue with: {cmd}",
            file=sys.stderr,
        )
        raise
    if opts.log:
        with atomic_write(opts.log, "w") as fh:
            json.dump(log, fh, indent=1, default=float)
    shutil.rmtree(folder.path, ignore_errors=True)
    return log


def _write_output(output: Path, kind: str, folder: work.WorkFolder, clip: io.Clip) -> None:
    """The finished frames as the output video (or folder), written atomically."""
    if kind == "folder":
        staging = output.with_name(f".{output.name}.frames.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for k in range(folder.n):
            shutil.copyfile(work.frame_path(folder.path, k), staging / f"frame_{k + 1:05d}.png")
        io.publish_folder(staging, output)
        return
    audio = None
    if clip.audio:
        audio = (clip.source, clip.first / clip.fps, folder.n / clip.fps)
    io.write_video(output, folder.frames(), clip.fps, audio)


class _Flows:
    """The backward flow and mask of every frame pair from ``first``, computed on Dask (or here)."""

    def __init__(self, frames, first, video: VideoOptions, stack):
        self.frames, self.method = frames, video.flow
        pairs = list(range(max(first, 1), len(frames)))
        self.futures: dict = {}
        self.local = video.workers == 0 or not pairs
        self.seconds = 0.0
        if not self.local:
            from ..tools import cluster

            if not _has_distributed():
                raise UserError(
                    "minivgg video computes optical flow on Dask distributed, which is not installed "
                    "here; pip install 'minivgg[video]' (or --workers 0 for flows in this process)"
                )
            sess = stack.enter_context(
                cluster.session(video.scheduler, video.workers, n_jobs=len(pairs))
            )
            for t in pairs:
                self.futures[t] = sess.client.submit(
                    flows.flow_and_mask,
                    frames[t - 1],
                    frames[t],
                    self.method,
                    key=f"minivgg-video-flow-{t}-{id(self)}",
                    pure=False,
                )

    def get(self, t):
        """``(backward flow, mask)`` of frame ``t`` from frame ``t - 1``."""
        t0 = time.perf_counter()
        if self.local:
            out = flows.flow_and_mask(self.frames[t - 1], self.frames[t], self.method)
        else:
            out = self.futures.pop(t).result()
        self.seconds += time.perf_counter() - t0
        return out


def _has_distributed() -> bool:
    import importlib.util

    return importlib.util.find_spec("distributed") is not None


def _first_frame(frame, styles, opts: RunOptions, overrides, argv):
    """Frame 0 as ``transfer`` runs it (``--init``, every scale): ``(optimised image, last run, iterations)``."""
    preset = PRESETS[opts.preset]
    sizes = schedule.scale_sizes(int(opts.size or preset.size), opts.scales, opts.min_scale)
    iters = schedule.scale_iters(opts.iters, preset.iters, len(sizes))
    content_weight = overrides.get("content_weight", preset.content_weight)
    x, run, used = None, None, 0
    for k, side in enumerate(sizes):
        stage_overrides = dict(overrides)
        if len(sizes) > 1:
            stage_overrides["content_weight"] = content_weight * schedule.content_scale(
                overrides.get("content_norm", preset.content_norm), side, sizes[-1]
            )
        stage = dataclasses.replace(opts, size=side, iters=iters[k], scales=None, min_scale=None)
        run = prepare(frame, styles, stage, stage_overrides, start=x, scale=(k, len(sizes)))
        x, _ = optimize(run, argv)
        used += len(run.log["iterations"])
    return x, run, used


def _optimize_frames(
    clip, styles, base, overrides, video, folder, start, x_prev, log, quiet, argv
) -> None:
    """Optimise frames ``start…`` in order, each warm-started and tied to the one before."""
    import contextlib

    from tqdm import tqdm

    preset = PRESETS[base.preset]
    last_iters = schedule.scale_iters(
        base.iters,
        preset.iters,
        len(schedule.scale_sizes(int(base.size or preset.size), base.scales, base.min_scale)),
    )[-1]
    later = dataclasses.replace(base, iters=last_iters, scales=None, min_scale=None, init="content")
    n = len(clip.frames)
    with contextlib.ExitStack() as stack:
        pending = _Flows(clip.frames, start, video, stack)
        bar = stack.enter_context(
            tqdm(
                total=n,
                initial=start,
                unit="frame",
                disable=quiet,
                file=sys.stderr,
                dynamic_ncols=True,
                desc="video",
            )
        )
        for t in range(start, n):
            t0 = time.perf_counter()
            record: dict = {"frame": t}
            if t == 0:
                x, run, used = _first_frame(clip.frames[0], styles, base, overrides, argv)
            else:
                backward, mask = pending.get(t)
                run = prepare(clip.frames[t], styles, later, overrides)
                target = flows.warp(x_prev, backward)
                run.x0 = np.where(
                    mask[:, :, None] > 0, target, np.asarray(run.obj.content, np.float64)
                )
                if video.temporal_weight:
                    run.obj.extra_terms.append(
                        TemporalTerm(video.temporal_weight, [(target, mask)])
                    )
                x, _ = optimize(run, argv)
                used = len(run.log["iterations"])
                record["reliable"] = round(float(mask.mean()), 4)
            # float32, as the work folder keeps it: a resumed run continues from the same image
            x = np.asarray(x, np.float32).astype(np.float64)
            folder.finished(t, to_uint8(run.picture(x)), x)
            row = run.log["iterations"][-1] if run.log["iterations"] else {}
            if not log["settings"]:
                log["settings"] = {**run.log["settings"], "iters": used if t == 0 else run.iters}
            record["curve"] = [r["loss"] for r in run.log["iterations"]]
            record.update(
                iterations=used,
                seconds=round(time.perf_counter() - t0, 3),
                **{k: row.get(k) for k in ("loss", "content", "style", "tv")},
            )
            if row.get("loss") is not None:
                record["temporal"] = row["loss"] - sum(
                    row.get(k) or 0.0 for k in ("content", "style", "tv")
                )
            log["records"].append(record)
            x_prev = x
            bar.set_postfix(iters=used, refresh=False)
            bar.update(1)
        log["flow_wait_seconds"] = round(pending.seconds, 3)
