"""The gradient checker on the real thing: the ``gatys`` objective at 512x512 on the verified VGG16
weights (float32, as it runs), tubingen + starry_night from ``../shared/images``. Checks the true
gradient, then one with its last row zeroed, and prints the verdict, the forward evaluations, the
seconds and what the localisation blamed.

    python scripts/gradcheck_512.py [--size 512] [--dtype float32] [--network float32] [--probes 1]

``--network float64`` runs a float64 copy of the weights (``VGG.astype``): the same function without
float32 rounding, so the localisation is not limited by noise.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import minivgg  # noqa: F401  (thread defaults before numpy's BLAS starts)
from minivgg.gradcheck import check_grad
from minivgg.network.vgg import load_vgg
from minivgg.run.image import load_image, resize_to
from minivgg.style.objective import Objective

IMAGES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "images")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--network", default="float32", choices=["float32", "float64"])
    ap.add_argument("--probes", type=int, default=1)
    args = ap.parse_args()
    shape = (args.size, args.size)
    content = resize_to(load_image(os.path.join(IMAGES, "tubingen.jpg")), shape)
    style = resize_to(load_image(os.path.join(IMAGES, "starry_night.jpg")), shape)
    obj = Objective(
        load_vgg("vgg16").astype(np.dtype(args.network).type), content, style, preset="gatys"
    )
    x = content + np.random.default_rng(0).uniform(-10, 10, content.shape)
    evals = []

    def timed(z):
        t = time.perf_counter()
        out = obj.value_and_grad(z)
        evals.append(time.perf_counter() - t)
        return out

    def last_row_zeroed(z):
        value, grad = timed(z)
        grad = grad.copy()
        grad[-1] = 0.0
        return value, grad

    for label, fn in (
        ("true gradient", timed),
        ("gradient with its last row zeroed", last_row_zeroed),
    ):
        evals.clear()
        t0 = time.perf_counter()
        res = check_grad(
            fn,
            x,
            dtype=np.dtype(args.dtype).type,
            probes=args.probes,
            name=f"gatys {args.size}² ({args.network} network)",
        )
        wall = time.perf_counter() - t0
        print(
            f"== {label}: {res.verdict}, {res.forwards} evaluations ({res.localization_forwards} for the "
            f"localisation), {wall:.0f} s ({np.median(evals):.2f} s per evaluation)"
        )
        print(res.report())
        if res.suspects is not None:
            rows = np.nonzero(res.suspects.any(axis=(1, 2)))[0]
            print(
                f"blamed rows: {rows.min()}..{rows.max()} ({len(rows)} rows), {int(res.suspects.sum())} elements"
            )
        print(flush=True)


if __name__ == "__main__":
    main()
