"""``python -m bench.video``: flicker and speed of ``minivgg video`` (issue 27).

The clip is made here: ``--frames`` crops of ``tubingen.jpg`` panning ``--pan`` pixels a frame to the
right and down, with a textured square (a crop of the style-free image itself, flipped) moving
across it faster, so the flow has disocclusions; styled with ``starry_night.jpg``, preset ``gatys``,
``--iters`` L-BFGS iterations a frame with the convergence stop off (every run does the same work).

At every ``--sizes`` it runs, in this process: the frames stylised independently (each from its
content, as ``minivgg transfer``), then ``stylize_video`` with the temporal loss off (warm start only)
and at every ``--weights``. Each gets Lai et al.'s warping error (flow and occlusion from the *input*,
``minivgg.video.flow.warping_error``), the mean style loss of frames 1…, seconds per frame, and the
process's peak RSS during that run (``VmHWM`` after ``/proc/self/clear_refs``). The warm start's
saving: the first iteration at which the warm-started frames (temporal loss off) reach the loss the
cold start ends with. Writes ``bench/results/video_SIZES.md`` (and its ``.json``) and rebuilds the index;
``--strip FILE.jpg`` saves input / independent / video frames side by side for the docs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import REPO, environment
from .evaluation import CONTENT_IMAGE, STYLE_IMAGE, default_images_dir
from .index import RESULTS_DIR, save_page

HEADING = "# Video: warping error of `minivgg video` against independent frames"


def make_clip(content: np.ndarray, n: int, size: int, pan: int) -> list:
    """``n`` frames ``size`` wide (4:3): a pan over ``content`` plus a square moving across it."""
    h, w = round(size * 3 / 4), size
    scale = (w + n * pan + 8) / min(content.shape[1], content.shape[0] * 4 / 3)
    big = np.asarray(
        Image.fromarray(content).resize(
            (round(content.shape[1] * scale), round(content.shape[0] * scale)), Image.LANCZOS
        )
    )
    side = max(8, size // 5)
    square = np.ascontiguousarray(big[-side:, -side:][::-1, ::-1])
    frames = []
    for k in range(n):
        f = big[4 + k * pan // 2 : 4 + k * pan // 2 + h, 4 + k * pan : 4 + k * pan + w].copy()
        y, x = h // 3, (w // 6 + k * 3 * pan) % (w - side)
        f[y : y + side, x : x + side] = square
        frames.append(f)
    return frames


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_gib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def run_size(size, args, style_path, content, net_loader, workdir: Path) -> dict:
    """Every configuration at one size: independent frames, the video at each weight; their numbers."""
    from minivgg.run.transfer import RunOptions, execute
    from minivgg.video import stylize_video
    from minivgg.video.flow import flow_and_mask, warping_error

    frames = make_clip(content, args.frames, size, args.pan)
    folder = workdir / f"in_{size}"
    folder.mkdir()
    for k, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{k:04d}.png")
    t0 = time.perf_counter()
    pairs = [flow_and_mask(frames[t - 1], frames[t]) for t in range(1, len(frames))]
    flow_s = (time.perf_counter() - t0) / (len(frames) - 1)
    flows, masks = [p[0] for p in pairs], [p[1] for p in pairs]
    style = np.asarray(Image.open(style_path).convert("RGB"))
    rows, outputs = [], {}

    _reset_peak()
    t0 = time.perf_counter()
    opts = RunOptions(
        output=None,
        size=size,
        iters=args.iters,
        quiet=True,
        all_iters=True,
        load_network=net_loader,
    )
    cold, cold_logs = [], []
    for f in frames:
        picture, log = execute(f, [style], opts, {})
        cold.append(picture)
        cold_logs.append(log)
    seconds = (time.perf_counter() - t0) / len(frames)
    outputs["independent"] = cold
    rows.append(
        {
            "run": "independent frames",
            "temporal_weight": None,
            "warping_error": warping_error(cold, flows, masks),
            "style": float(np.mean([lg["iterations"][-1]["style"] for lg in cold_logs[1:]])),
            "seconds_per_frame": seconds,
            "peak_gib": _peak_gib(),
        }
    )
    cold_final = [lg["iterations"][-1]["loss"] for lg in cold_logs]
    for w in [0.0, *args.weights]:
        _reset_peak()
        out = workdir / f"out_{size}_{w:g}"
        t0 = time.perf_counter()
        log = stylize_video(
            folder,
            [style_path],
            out,
            size=size,
            iters=args.iters,
            all_iters=True,
            temporal_weight=w,
            workers=args.workers,
            quiet=True,
            load_network=net_loader,
        )
        seconds = (time.perf_counter() - t0) / len(frames)
        video = [np.asarray(Image.open(out / f"frame_{k + 1:05d}.png")) for k in range(len(frames))]
        outputs[w] = video
        row = {
            "run": "video, warm start only" if w == 0 else "video",
            "temporal_weight": w,
            "warping_error": warping_error(video, flows, masks),
            "style": float(np.mean([r["style"] for r in log["records"][1:]])),
            "seconds_per_frame": seconds,
            "peak_gib": _peak_gib(),
        }
        if (
            w == 0
        ):  # the warm start's saving: the iteration where it reaches the cold start's final loss
            reach = []
            for r, final in zip(log["records"][1:], cold_final[1:]):
                hits = [k + 1 for k, v in enumerate(r["curve"]) if v <= final]
                reach.append(hits[0] if hits else None)
            row["reach_cold_final"] = reach
        rows.append(row)
    base = rows[0]
    for r in rows:
        r["error_ratio"] = (
            base["warping_error"] / r["warping_error"] if r["warping_error"] else None
        )
        r["style_ratio"] = r["style"] / base["style"]
    return {
        "size": size,
        "shape": list(frames[0].shape[:2]),
        "flow_seconds_per_frame": flow_s,
        "rows": rows,
        "outputs": outputs,
        "frames": frames,
    }


def strip(result, weight, path: Path) -> None:
    """Four frames of input, independent and video (``weight``) in three rows, as a small JPEG."""
    picks = np.linspace(0, len(result["frames"]) - 1, 4).round().astype(int)
    rows = [result["frames"], result["outputs"]["independent"], result["outputs"][weight]]
    grid = np.concatenate([np.concatenate([r[k] for k in picks], axis=1) for r in rows], axis=0)
    Image.fromarray(grid).save(path, quality=80, optimize=True)


def page(results, args, chosen) -> str:
    cmd = " ".join(sys.argv[1:]) if len(sys.argv) > 1 else ""
    lines = [
        HEADING,
        "",
        f"- command: `python -m bench.video {cmd}`".rstrip(),
        f"- clip: {args.frames} frames panning over {CONTENT_IMAGE} ({args.pan} px a frame right, "
        f"half that down) with a square moving 3× faster; style {STYLE_IMAGE}; preset gatys, "
        f"{args.iters} L-BFGS iterations a frame, convergence stop off; flow DIS",
        f"- machine: {environment.cpu_model()}, {environment.usable_cores()} cores (shared with "
        f"other jobs); minivgg {environment.git_revision(REPO)}; {environment.now()}",
        "- warping error (Lai et al. 2018): frame t−1 of the output warped onto frame t by the flow "
        "of the *input*, mean over non-occluded pixels of the squared RGB distance (0..1), mean over "
        "the pairs; style: the mean style loss of frames 2…; ratios against independent frames",
        "",
        "| size | run | temporal weight | warping error | × lower | style loss | style / independent | s per frame | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        h, w = res["shape"]
        for r in res["rows"]:
            tw = "—" if r["temporal_weight"] is None else f"{r['temporal_weight']:g}"
            peak = "—" if r["peak_gib"] is None else f"{r['peak_gib']:.2f} GiB"
            lines.append(
                f"| {w}×{h} | {r['run']} | {tw} | {r['warping_error']:.5f} | "
                f"{r['error_ratio']:.1f}× | {r['style']:.4g} | {r['style_ratio']:.2f} | "
                f"{r['seconds_per_frame']:.1f} | {peak} |"
            )
    lines += [
        "",
        "Flow (DIS, both directions + the consistency mask), seconds per frame pair: "
        + ", ".join(
            f"{res['shape'][1]}×{res['shape'][0]}: {res['flow_seconds_per_frame']:.3f}"
            for res in results
        ),
    ]
    lines += [
        "",
        "Warm start (temporal loss off): the iteration at which each warm-started frame reaches "
        "the loss its cold start ends with after all its iterations (— : not within them):",
    ]
    for res in results:
        reach = next(
            r["reach_cold_final"] for r in res["rows"] if r.get("reach_cold_final") is not None
        )
        shown = ", ".join("—" if v is None else str(v) for v in reach)
        lines.append(f"- {res['shape'][1]}×{res['shape'][0]}: frames 2…: {shown} of {args.iters}")
    lines += ["", f"At equal style loss (±10 %), the largest temporal weight: {chosen}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--pan", type=int, default=2)
    p.add_argument("--weights", type=float, nargs="+", default=[1e7, 1e8, 1e9])
    p.add_argument(
        "--workers", type=int, default=0, help="Dask workers for the flows (0: in this process)"
    )
    p.add_argument("--images", type=Path, default=None)
    p.add_argument("--strip", type=Path, help="save a JPEG strip of frames (docs)")
    p.add_argument("--out", type=Path, help="the page (default bench/results/video_SIZES.md)")
    args = p.parse_args(argv)
    args.out = args.out or RESULTS_DIR / f"video_{'_'.join(map(str, args.sizes))}.md"
    from minivgg.network.vgg import load_vgg

    images = args.images or default_images_dir()
    content = np.asarray(Image.open(images / CONTENT_IMAGE).convert("RGB"))
    nets: dict = {}

    def net_loader(arch, **kw):
        if arch not in nets:
            nets[arch] = load_vgg(arch, **kw)
        return nets[arch]

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        for size in args.sizes:
            res = run_size(size, args, images / STYLE_IMAGE, content, net_loader, Path(tmp))
            results.append(res)
            for r in res["rows"]:
                print(
                    f"{size}: {r['run']} w={r['temporal_weight']}: warping error {r['warping_error']:.5f} "
                    f"({r['error_ratio']:.1f}x lower), style {r['style']:.4g} ({r['style_ratio']:.2f}), "
                    f"{r['seconds_per_frame']:.1f} s/frame",
                    flush=True,
                )
    ok = {}
    for res in results:
        fits = [r for r in res["rows"][2:] if abs(r["style_ratio"] - 1) <= 0.1]
        ok[res["size"]] = (
            max(fits, key=lambda r: r["error_ratio"])["temporal_weight"] if fits else None
        )
    chosen = ", ".join(
        f"{s}: {'none within ±10 %' if w is None else f'{w:g}'}" for s, w in ok.items()
    )
    if args.strip:
        best = results[0]
        w = ok[best["size"]] if ok[best["size"]] is not None else args.weights[0]
        strip(best, w, args.strip)
    text = page(results, args, chosen)
    print(text)
    for res in results:
        res.pop("outputs"), res.pop("frames")
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
            indent=1,
            default=float,
        )
    )
    save_page(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
