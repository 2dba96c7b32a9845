"""The ``--report`` picture: content, style(s) and result side by side, with the loss curves below
when matplotlib (the ``report`` extra) is installed; the images alone otherwise."""
from __future__ import annotations

import io

import numpy as np


def make_report(path, content, styles, result, log) -> None:
    """Write the report image to ``path`` (atomically); images are (H, W, 3) 0..255 arrays."""
    from .fsutil import atomic_save_bytes
    panels = [("content", content)] + [(f"style {k + 1}" if len(styles) > 1 else "style", s)
                                       for k, s in enumerate(styles)] + [("result", result)]
    fmt = str(path).rsplit(".", 1)[-1].lower()
    fmt = {"jpg": "jpeg"}.get(fmt, fmt)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        atomic_save_bytes(path, _strip(panels, fmt))
        return
    fig = plt.figure(figsize=(3.2 * len(panels), 6.4), dpi=100)
    grid = fig.add_gridspec(2, len(panels), height_ratios=[1.2, 1])
    for k, (title, img) in enumerate(panels):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(np.clip(img, 0, 255).astype(np.uint8))
        ax.set_title(title)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    its = [r["iteration"] for r in log["iterations"]]
    for key in ("loss", "content", "style", "tv"):
        vals = [r.get(key) for r in log["iterations"]]
        if any(v for v in vals):
            ax.plot(its, [v if v and v > 0 else np.nan for v in vals], label="total" if key == "loss" else key)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (weighted)")
    s = log["settings"]
    ax.set_title(f"preset {s['preset']}, {s['optimizer']}, {s['width']}x{s['height']}, "
                 f"{len(its)} iterations, {log.get('seconds', 0):.0f} s")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt if fmt in ("png", "jpeg", "pdf", "svg") else "png")
    plt.close(fig)
    atomic_save_bytes(path, buf.getvalue())


def _strip(panels, fmt) -> bytes:
    """The images alone, side by side at a common height (no matplotlib)."""
    from PIL import Image
    h = max(img.shape[0] for _, img in panels)
    tiles = []
    for _, img in panels:
        im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        tiles.append(im.resize((max(1, round(im.width * h / im.height)), h)))
    canvas = Image.new("RGB", (sum(t.width for t in tiles), h), "white")
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width
    buf = io.BytesIO()
    canvas.save(buf, format={"png": "PNG", "jpeg": "JPEG"}.get(fmt, "PNG"))
    return buf.getvalue()
