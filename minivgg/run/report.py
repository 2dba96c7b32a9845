"""Pictures: the ``--report`` picture (content, style(s) and result side by side, with the loss curves
below when matplotlib, the ``report`` extra, is installed; the images alone otherwise), the labelled
contact sheet of ``minivgg reconstruct`` (Pillow only), and the matplotlib plumbing that
``inspection`` draws with (``pyplot``, ``save_figure``)."""

from __future__ import annotations

import io

import numpy as np


def make_report(path, content, styles, result, log) -> None:
    """Write the report image to ``path`` (atomically); images are (H, W, 3) 0..255 arrays."""
    from .fsutil import atomic_save_bytes

    panels = (
        [("content", content)]
        + [(f"style {k + 1}" if len(styles) > 1 else "style", s) for k, s in enumerate(styles)]
        + [("result", result)]
    )
    plt = pyplot()
    if plt is None:
        atomic_save_bytes(path, _strip(panels, _format(path)))
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
            ax.plot(
                its,
                [v if v and v > 0 else np.nan for v in vals],
                label="total" if key == "loss" else key,
            )
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (weighted)")
    s = log["settings"]
    ax.set_title(
        f"preset {s['preset']}, {s['optimizer']}, {s['width']}x{s['height']}, "
        f"{len(its)} iterations, {log.get('seconds', 0):.0f} s"
    )
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend, or None without matplotlib (the ``report`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _format(path) -> str:
    """The picture format named by ``path``'s extension (``jpg`` -> ``jpeg``)."""
    fmt = str(path).rsplit(".", 1)[-1].lower()
    return {"jpg": "jpeg"}.get(fmt, fmt)


def save_figure(fig, path, dpi=None) -> None:
    """Render a matplotlib figure in the format of ``path``'s extension (PNG otherwise), write it
    atomically and close the figure."""
    import matplotlib.pyplot as plt

    from .fsutil import atomic_save_bytes

    fmt = _format(path)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt if fmt in ("png", "jpeg", "pdf", "svg") else "png", dpi=dpi)
    finally:
        plt.close(fig)
    atomic_save_bytes(path, buf.getvalue())


def contact_sheet(path, tiles, columns: int = 6, min_side: int = 128) -> None:
    """A labelled grid of images, written atomically: ``tiles`` is ``[(image (H, W, 3) 0..255, [caption lines])]``.

    Tiles keep their order (row by row, ``columns`` per row); images smaller than ``min_side`` on
    their longest side are enlarged (nearest neighbour, so pixels stay visible); the captions go
    under each image. Pillow only, so it works without the ``report`` extra.
    """
    from PIL import Image, ImageDraw, ImageFont

    from .fsutil import atomic_save_bytes

    try:
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    images = []
    for img, _ in tiles:
        im = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        scale = max(1, -(-min_side // max(im.size)))
        images.append(
            im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
            if scale > 1
            else im
        )
    pad, line = 6, 15
    cell_w = max(im.width for im in images)
    text_h = line * max(len(caption) for _, caption in tiles)
    cell_h = max(im.height for im in images) + text_h
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    sheet = Image.new(
        "RGB", (columns * (cell_w + pad) + pad, rows * (cell_h + 2 * pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for k, (im, (_, caption)) in enumerate(zip(images, tiles)):
        x0 = pad + (k % columns) * (cell_w + pad)
        y0 = pad + (k // columns) * (cell_h + 2 * pad)
        sheet.paste(im, (x0 + (cell_w - im.width) // 2, y0))
        for j, text in enumerate(caption):
            draw.text((x0, y0 + im.height + 2 + j * line), text, fill="black", font=font)
    buf = io.BytesIO()
    sheet.save(buf, format={"jpeg": "JPEG"}.get(_format(path), "PNG"))
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
