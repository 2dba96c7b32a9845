"""Contact sheets of a sweep or a batch, drawn with Pillow alone: ``sweep_sheets`` lays the grid out
(first axis as rows, second as columns, every further axis a page: ``sheet.png``, ``sheet_2.png``, …)
with each axis value written beside its row or above its column; ``batch_sheets`` puts one job per
cell, captioned with its name and inputs. A job without a picture (failed, cancelled) gets a grey
cell saying why. Pages are written atomically.
"""

from __future__ import annotations

import io
import itertools
import re
import textwrap
from pathlib import Path

TILE = 256  # longest side of a result in its cell
BATCH_COLUMNS = 4
BATCH_ROWS = 4  # per page
_PAD, _LINE = 8, 16


def _font(size=13):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _thumbnail(path, tile: int):
    """The image at ``path`` fitted to ``tile`` (shrunk smoothly, or enlarged by whole pixels), or None."""
    from PIL import Image

    try:
        with Image.open(path) as opened:
            im = opened.convert("RGB")
    except (OSError, ValueError, TypeError):
        return None
    side = max(im.size)
    if side > tile:
        im.thumbnail((tile, tile), Image.Resampling.LANCZOS)
    elif 2 * side <= tile:
        k = tile // side
        im = im.resize((im.width * k, im.height * k), Image.Resampling.NEAREST)
    return im


def _caption(record) -> tuple:
    """Caption lines and colour of one job's cell."""
    if record is None:
        return ["(no job)"], "gray"
    if record["status"] != "ok":
        message = textwrap.wrap(record.get("message") or "", 34)[:3]
        return [record["status"], *message], "firebrick"
    terms, seconds = record.get("terms") or {}, record.get("seconds")
    line = f"loss {terms['total']:.4g}" if terms.get("total") is not None else "done"
    if seconds is not None:
        line += f", {seconds:.0f} s" + (" (earlier run)" if record.get("skipped") else "")
    return [line], "black"


def _page(title_lines, row_labels, col_labels, cells, tile: int):
    """One sheet: ``cells[r][c]`` = ``(record, [extra caption lines])``, labels beside rows and above columns."""
    from PIL import Image, ImageDraw

    font, bold = _font(13), _font(15)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    images = [
        [
            _thumbnail(rec["image"], tile) if rec and rec["status"] == "ok" else None
            for rec, _ in row
        ]
        for row in cells
    ]
    captions = [[extra + _caption(rec)[0] for rec, extra in row] for row in cells]
    cell_w = max([tile] + [im.width for row in images for im in row if im is not None])
    cell_h = max([tile // 2] + [im.height for row in images for im in row if im is not None])
    text_h = _LINE * max(len(c) for row in captions for c in row)
    label_w = max([0] + [int(measure.textlength(t, font=bold)) + 2 * _PAD for t in row_labels if t])
    head_h = _LINE * len(title_lines) + _PAD + (_LINE + _PAD if any(col_labels) else 0)
    columns = max(len(row) for row in cells)
    width = label_w + columns * (cell_w + _PAD) + _PAD
    height = head_h + len(cells) * (cell_h + text_h + 2 * _PAD) + _PAD
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    for j, line in enumerate(title_lines):
        draw.text((_PAD, _PAD // 2 + j * _LINE), line, fill="black", font=bold)
    for c, label in enumerate(col_labels):
        x = label_w + _PAD + c * (cell_w + _PAD)
        draw.text(
            (
                x + max(0, (cell_w - measure.textlength(label, font=bold)) / 2),
                head_h - _LINE - _PAD // 2,
            ),
            label,
            fill="navy",
            font=bold,
        )
    for r, row in enumerate(cells):
        y0 = head_h + r * (cell_h + text_h + 2 * _PAD) + _PAD
        if r < len(row_labels) and row_labels[r]:
            draw.text((_PAD, y0 + cell_h // 2 - _LINE // 2), row_labels[r], fill="navy", font=bold)
        for c, (rec, extra) in enumerate(row):
            x0 = label_w + _PAD + c * (cell_w + _PAD)
            im = images[r][c]
            if im is not None:
                page.paste(im, (x0 + (cell_w - im.width) // 2, y0 + (cell_h - im.height) // 2))
            else:
                draw.rectangle([x0, y0, x0 + cell_w - 1, y0 + cell_h - 1], fill=(225, 225, 225))
            colour = _caption(rec)[1]
            for j, text in enumerate(captions[r][c]):
                draw.text(
                    (x0, y0 + cell_h + 2 + j * _LINE),
                    text,
                    font=font,
                    fill="black" if j < len(extra) else colour,
                )
    return page


def _save_pages(outdir, pages) -> list:
    """Write ``sheet.png``, ``sheet_2.png``, … atomically; remove numbered pages left by a larger earlier run."""
    from ..run.fsutil import atomic_save_bytes

    outdir, paths = Path(outdir), []
    for k, page in enumerate(pages):
        path = outdir / ("sheet.png" if k == 0 else f"sheet_{k + 1}.png")
        buf = io.BytesIO()
        page.save(buf, format="PNG")
        atomic_save_bytes(path, buf.getvalue())
        paths.append(path)
    for stale in outdir.glob("sheet_*.png"):
        m = re.fullmatch(r"sheet_(\d+)\.png", stale.name)
        if m and int(m.group(1)) > len(pages):
            stale.unlink(missing_ok=True)
    return paths


def _inputs(record) -> str:
    styles = " + ".join(Path(s).name for s in record["styles"])
    return f"{Path(record['content']).name} in the style of {styles}"


def sweep_sheets(outdir, axes, records, tile: int = TILE) -> list:
    """The sweep's sheets: ``axes`` = ``[(setting, [values])]``, ``records`` the summary's jobs (with
    ``values``); returns the paths written."""
    by_point = {tuple(r["values"].get(k) for k, _ in axes): r for r in records if r}
    first = next((r for r in records if r), None)
    row_axis, col_axis = (axes[0], axes[1]) if len(axes) > 1 else ((None, [None]), axes[0])
    page_axes = axes[2:]
    pages = []
    for page_values in itertools.product(*(v for _, v in page_axes)) if page_axes else [()]:
        fixed = ", ".join(f"{k}={v}" for (k, _), v in zip(page_axes, page_values))
        title = [f"minivgg sweep: {_inputs(first)}" if first else "minivgg sweep"]
        if fixed:
            title.append(fixed)
        cells = []
        for rv in row_axis[1]:
            row: list[tuple[dict | None, list[str]]] = []  # (record, extra caption lines)
            for cv in col_axis[1]:
                point = dict(
                    zip(
                        [k for k, _ in axes],
                        ((rv,) if row_axis[0] else ()) + (cv,) + tuple(page_values),
                    )
                )
                row.append((by_point.get(tuple(point[k] for k, _ in axes)), []))
            cells.append(row)
        row_labels = [f"{row_axis[0]}={v}" if row_axis[0] else "" for v in row_axis[1]]
        col_labels = [f"{col_axis[0]}={v}" for v in col_axis[1]]
        pages.append(_page(title, row_labels, col_labels, cells, tile))
    return _save_pages(outdir, pages)


def batch_sheets(
    outdir, records, tile: int = TILE, columns: int = BATCH_COLUMNS, rows: int = BATCH_ROWS
) -> list:
    """The batch's sheets: one cell per job (name, inputs, loss), ``columns`` × ``rows`` per page."""
    jobs = [r for r in records if r]
    per_page = columns * rows
    pages = []
    for start in range(0, max(1, len(jobs)), per_page):
        chunk = jobs[start : start + per_page]
        cells = [
            [(r, [r["name"], *textwrap.wrap(_inputs(r), 34)[:2]]) for r in chunk[i : i + columns]]
            for i in range(0, len(chunk), columns)
        ] or [[(None, [])]]
        page = f", page {start // per_page + 1}" if len(jobs) > per_page else ""
        title = [f"minivgg batch: {len(jobs)} jobs{page}"]
        pages.append(_page(title, [], [], cells, tile))
    return _save_pages(outdir, pages)
