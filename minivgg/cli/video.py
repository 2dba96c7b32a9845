"""``minivgg video``: a video (file or folder of frames) stylised without flicker — transfer's flags,
plus the temporal loss's weight, the frame range and rate, the optical flow and where the flows run
(``minivgg.video``)."""

from __future__ import annotations

import math
import sys

from ..errors import UserError
from ..video.run import DEFAULT_TEMPORAL_WEIGHT, VideoOptions, parse_frames, run_video
from .transfer import add_objective_arguments, add_run_arguments, options_from_args


def _fps(text):
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--fps must be a number of frames per second, got {text!r}") from None
    if not math.isfinite(value):
        raise UserError(f"--fps must be a finite number, got {text!r}")
    return value


def add_cli(sub) -> None:
    p = sub.add_parser(
        "video",
        help="stylize a video without flicker (temporal loss on optical flow)",
        description="Stylize INPUT (a video file or a folder of frames) frame by frame, each frame "
        "started from the previous one warped by the optical flow and held to it where the flow is "
        "reliable (Ruder et al. 2016). The frame rate and sound are kept; finished frames wait in "
        "OUTPUT.work, so the same command continues an interrupted run.",
    )
    p.add_argument("input", help="video file (mp4, mov, webm, gif, …) or a folder of frames")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output video (.mp4 .mov .mkv .webm .gif) or a new folder of PNG frames (no suffix)",
    )
    add_objective_arguments(p)
    add_run_arguments(p)
    p.add_argument(
        "--temporal-weight",
        type=float,
        default=DEFAULT_TEMPORAL_WEIGHT,
        metavar="W",
        help=f"weight of the temporal loss (default {DEFAULT_TEMPORAL_WEIGHT:g}; 0: no temporal loss)",
    )
    p.add_argument("--frames", metavar="A:B", help="only input frames A <= k < B (A: or :B too)")
    p.add_argument(
        "--fps",
        metavar="F",
        help="stylise at F frames per second (a video is resampled, its sound kept in step); "
        "the frame rate of a folder of frames (default 24)",
    )
    p.add_argument(
        "--flow",
        choices=["dis", "farneback"],
        default="dis",
        help="optical flow: OpenCV's DIS (default) or Farneback",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="Dask worker processes computing the flows (default 1; 0: in this process)",
    )
    p.add_argument(
        "--scheduler",
        help="compute the flows on this Dask scheduler (default: a local cluster)",
    )
    p.add_argument("--log", help="write a JSON log of settings and per-frame losses")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_video)


def _cmd_video(args) -> int:
    opts, overrides = options_from_args(args, None, log=args.log)
    video = VideoOptions(
        temporal_weight=args.temporal_weight,
        frames=parse_frames(args.frames) if args.frames is not None else (None, None),
        fps=_fps(args.fps) if args.fps is not None else None,
        flow=args.flow,
        workers=1 if args.workers is None and not args.scheduler else args.workers,
        scheduler=args.scheduler,
    )
    log = run_video(args.input, args.styles, args.output, opts, overrides, video, argv=sys.argv[1:])
    print(
        f"wrote {args.output} ({log['frames']} frames at {log['fps']:g} fps"
        f"{', with sound' if log['audio'] else ''}; {log['seconds']:.1f} s)"
    )
    return 0
