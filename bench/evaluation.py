"""One objective evaluation as every study measures it, shared by the drivers and the workers.

The images (``load_images``; ``square_content`` for a whole transfer) and the start point, the
network, each engine's objective (``build``), the agreement check between two engines' outputs,
and one evaluation's time and peak RSS in this process (``measure_one``) or in a fresh one
(``run_child``: ``python -m bench.compare --size-only``). Everything here sits below ``compare``,
``peers`` and ``workers``, so those import it and it imports none of them.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import REPO, environment
from .timing import peak_rss_mib, reset_peak_rss, rss_mib

RESULT_TAG = "BENCH_RESULT "
CONTENT_IMAGE, STYLE_IMAGE = "tubingen.jpg", "starry_night.jpg"
PRESET = "gatys"
# Float32 rounding through 13 conv layers stays far below these; above them one side has a bug.
# A pixel "differs" when its gradient differs by more than LOCAL_DIFF of the largest gradient: a
# ReLU whose pre-activation is within rounding of 0 flips in one side only and moves a patch the
# size of its receptive field; a wrong formula or a border bug moves far more pixels.
TOL_LOSS, TOL_GRAD, LOCAL_DIFF, TOL_PIXELS = 1e-4, 1e-3, 1e-3, 1e-3
# Evaluations behind each fresh-process peak RSS: minivgg's first records its arrays and its second
# is the first served from the planned buffer (minivgg/engine/arena.py), so one evaluation would
# not show that peak.
PEAK_EVALS = 3


def default_images_dir() -> Path:
    """``$MINIVGG_BENCH_IMAGES``, else ``../shared/images`` beside the checkout, else
    ``shared/images`` in it."""
    if os.environ.get("MINIVGG_BENCH_IMAGES"):
        return Path(os.environ["MINIVGG_BENCH_IMAGES"])
    for cand in (REPO.parent / "shared" / "images", REPO / "shared" / "images"):
        if cand.is_dir():
            return cand
    return REPO.parent / "shared" / "images"


def load_images(size: int, images_dir: Path):
    """Content and style as (size, size, 3) uint8 RGB, resized with Pillow (aspect not kept)."""
    from PIL import Image

    out = []
    for name in (CONTENT_IMAGE, STYLE_IMAGE):
        with Image.open(images_dir / name) as im:
            resized = im.convert("RGB").resize((size, size), Image.LANCZOS)
            out.append(np.asarray(resized, dtype=np.uint8))
    return tuple(out)


def square_content(images: Path, size: int, folder: Path) -> Path:
    """tubingen.jpg, centre-cropped to a square and resized to size×size (Pillow LANCZOS), as PNG
    in ``folder`` (the content of the whole-transfer studies)."""
    from PIL import Image

    with Image.open(images / CONTENT_IMAGE) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        path = folder / f"content_{size}.png"
        im.resize((size, size), Image.LANCZOS).save(path)
    return path


def start_point(content, noise: float, seed: int):
    """The evaluation point: content pixels plus uniform noise (so every loss term is non-zero)."""
    rng = np.random.default_rng(seed)
    return np.clip(content.astype(np.float64) + rng.uniform(-noise, noise, content.shape), 0, 255)


def load_network(choice: str):
    """``(net, description, resolved choice)``: 'cached' = verified VGG16 from the cache, 'random' =
    He-random weights (seed 0, identical shapes), 'auto' = cached when available, a path = that
    weights file."""
    from minivgg.network.vgg import load_vgg, random_vgg

    random_desc = "random He-initialised VGG16 (random_vgg seed 0)"
    if choice == "random":
        return random_vgg("vgg16", seed=0), random_desc, "random"
    if choice not in ("auto", "cached"):
        net = load_vgg("vgg16", weights=choice)
        return net, f"VGG16 from {choice} ({net.provenance})", choice
    try:
        net = load_vgg("vgg16")
        prov = net.provenance
        facts = [f"{k} {prov[k]}" for k in ("verified", "source", "path") if prov.get(k)]
        return net, "cached VGG16 (" + ("; ".join(facts) or str(prov)) + ")", "cached"
    except Exception as exc:
        if choice == "cached":
            raise
        reason = str(exc).splitlines()[0]
        return (
            random_vgg("vgg16", seed=0),
            f"{random_desc}: the cached weights are not available ({type(exc).__name__}: {reason})",
            "random",
        )


def build(engine: str, net, content, style):
    """The objective of ``engine`` on one network and image pair: 'minivgg' (its default convs),
    'minivgg:ALGORITHM' (every conv with ``ops.conv2d_forward(algorithm=ALGORITHM)``),
    'minivgg:numpy-first' (the default objective; the process imported numpy before minivgg, see
    ``bench/__init__``), 'torch' (eager NCHW) or 'torch:CONFIG' (``torch_objective.CONFIGS``:
    channels_last, compile)."""
    name, _, variant = engine.partition(":")
    if name == "minivgg":
        from minivgg.style.objective import Objective

        conv = variant if variant and variant != "numpy-first" else None
        net = dataclasses.replace(net, conv=conv) if conv else net
        return Objective(net, content, style, preset=PRESET)
    from .torch_objective import TorchObjective

    return TorchObjective(net, content, style, preset=PRESET, config=variant or "eager")


def _rel(a, b) -> float:
    return float(a / max(b, 1e-300))


def agreement(a, b, terms_a, terms_b, reference=None) -> dict:
    """Relative differences between minivgg's ``a = (loss, grad)`` and torch's ``b`` (torch is the
    reference), and, given ``reference`` (a float64 minivgg evaluation), each side's distance to
    it."""
    (la, ga), (lb, gb) = a, b
    diff = ga - gb
    local = np.abs(diff).max(axis=-1) > LOCAL_DIFF * np.abs(gb).max()
    out = {
        "loss_minivgg": la,
        "loss_torch": lb,
        "loss_rel": abs(la - lb) / max(abs(lb), 1e-300),
        "grad_rel_l2": _rel(np.linalg.norm(diff), np.linalg.norm(gb)),
        "grad_rel_max": _rel(np.abs(diff).max(), np.abs(gb).max()),
        "pixels_differing": float(local.mean()),
        "cosine": _rel(np.vdot(ga, gb), np.linalg.norm(ga) * np.linalg.norm(gb)),
        "terms": {
            k: abs(terms_a[k] - terms_b[k]) / abs(terms_b[k]) if terms_b[k] else abs(terms_a[k])
            for k in ("content", "style", "tv")
        },
    }
    if reference is not None:
        l64, g64 = reference
        out["vs_float64"] = {
            eng: (abs(loss - l64) / abs(l64), float(np.linalg.norm(g - g64) / np.linalg.norm(g64)))
            for eng, (loss, g) in (("minivgg", a), ("torch", b))
        }
    ok = (
        out["loss_rel"] <= TOL_LOSS
        and out["grad_rel_l2"] <= TOL_GRAD
        and out["pixels_differing"] <= TOL_PIXELS
    )
    out["verdict"] = "agree" if ok else "**DISAGREE**"
    return out


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- one size, one process


def measure_one(
    size: int, engine: str, weights: str, images_dir: Path, evals: int, noise: float, seed: int
) -> dict:
    """The first evaluation's time and peak RSS in this (fresh) process; more evaluations add a
    steady-state time, and ``process_peak_mib`` is the peak over setup and all of them."""
    net, weights_desc, _ = load_network(weights)
    content, style = load_images(size, images_dir)
    x = start_point(content, noise, seed)
    t0 = time.perf_counter()
    objective = build(engine, net, content, style)
    setup_s = time.perf_counter() - t0
    del content, style
    gc.collect()
    out = {
        "size": size,
        "engine": engine,
        "weights": weights_desc,
        "setup_s": setup_s,
        "setup_peak_mib": peak_rss_mib(),
        "rss_after_setup_mib": rss_mib(),
    }
    out["peak_reset"] = reset_peak_rss()
    t0 = time.perf_counter()
    loss, grad = objective.value_and_grad(x)
    out["eval_s"] = time.perf_counter() - t0
    out["eval_peak_mib"] = peak_rss_mib()
    out["process_peak_mib"] = max(out["setup_peak_mib"], out["eval_peak_mib"])
    out["loss"] = loss
    del grad
    steady = []
    for _ in range(evals - 1):
        t0 = time.perf_counter()
        objective.value_and_grad(x)
        steady.append(time.perf_counter() - t0)
    if steady:
        out["steady_eval_s"] = float(np.median(steady))
        out["peak_after_all_evals_mib"] = peak_rss_mib()
        out["process_peak_mib"] = max(out["process_peak_mib"], out["peak_after_all_evals_mib"])
    out["threads"] = environment.thread_report()
    return out


def run_child(
    size: int, engine: str, args, weights: str, timeout: float, evals: int = PEAK_EVALS
) -> dict:
    """``measure_one`` of ``evals`` evaluations in a fresh interpreter (``python -m bench.compare
    --size-only``) with the same thread settings; errors come back as ``{"error"}``. ``engine``
    may name a conv algorithm (``minivgg:im2col``)."""
    name, _, variant = engine.partition(":")
    cmd = [
        sys.executable,
        "-m",
        "bench.compare",
        "--size-only",
        str(size),
        "--engine",
        name,
        "--threads",
        str(args.threads),
        "--weights",
        weights,
        "--images",
        str(args.images),
        "--repeats",
        str(evals),
        "--noise",
        str(args.noise),
        "--seed",
        str(args.seed),
        "--json",
    ]
    if variant in ("channels_last", "compile"):
        cmd += ["--torch-config", variant]
    elif variant and variant != "numpy-first":
        cmd += ["--conv", variant]
    env = environment.thread_env(args.threads)
    if variant == "numpy-first":
        env["MINIVGG_BENCH_NUMPY_FIRST"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"size": size, "engine": engine, "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    why = (
        "killed by SIGKILL (out of memory?)"
        if proc.returncode == -9
        else f"exit status {proc.returncode}"
    )
    tail = (proc.stderr.strip().splitlines() or [""])[-1][:200]
    return {"size": size, "engine": engine, "error": f"{why}: {tail}"}
