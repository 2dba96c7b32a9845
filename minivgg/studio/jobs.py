"""From the page's form to a run: settings parsed into ``RunOptions`` and the objective's overrides,
checked by ``transfer``'s own validation (``check_options``), inputs decoded by the CLI's hardened
image loader and saved into the run's folder under fixed names.

Every refusal is a ``FieldError``: one sentence and the form field it belongs to, which the page
shows next to that field.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..run.controls import load_mask
from ..run.image import load_image, save_image
from ..run.samples import SAMPLES, sample_path
from ..run.transfer import RunOptions, check_options
from . import runs

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one uploaded file
MAX_REQUEST_BYTES = 6 * MAX_UPLOAD_BYTES  # a whole form: content, four styles, masks
MAX_PIXELS = 40_000_000  # an upload's decoded size (the CLI's --max-pixels)
MAX_STYLES = 4
COLOR_MODES = ("none", "original-colors", "luminance-only", "match-chol", "match-pca", "match-sym")

# Which form field a sentence of transfer's validation is about (first match wins).
_FIELD_OF = (
    ("blend", "blend"),
    ("--min-scale", "scales"),
    ("--scales", "scales"),
    ("--iters", "iters"),
    ("tile size", "tile_size"),
    ("--tile-size", "tile_size"),
    ("stop_tol", "stop_tol"),
    ("--stop-tol", "stop_tol"),
    ("preset", "preset"),
    ("--size", "size"),
    ("colour", "color"),
    ("--original-colors", "color"),
    ("--luminance-only", "color"),
    ("mask", "regions"),
    ("--seed", "seed"),
    ("style", "styles"),
    ("content", "content"),
    ("memory", "size"),
)


class FieldError(UserError):
    """A refused form: ``field`` (the form field it is about) and one sentence."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def field_of(message: str) -> str:
    """The form field a one-sentence error is about (``form`` when none fits).

    Examples
    --------
    >>> field_of("--size must be a positive number, got -1")
    'size'
    >>> field_of("something else")
    'form'
    """
    for needle, field in _FIELD_OF:
        if needle in message:
            return field
    return "form"


def _text(form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _whole(form, name: str, what: str):
    text = _text(form, name)
    if not text:
        return None
    values = []
    for part in text.split(","):
        try:
            values.append(int(part.strip()))
        except ValueError:
            raise FieldError(
                name, f"{what} must be a whole number (or several, comma-separated), got {text!r}"
            ) from None
    return values


def _number(form, name: str, what: str):
    text = _text(form, name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FieldError(name, f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise FieldError(name, f"{what} must be a finite number, got {text!r}")
    return value


def _one(values, name: str, what: str):
    if values is not None and len(values) != 1:
        raise FieldError(name, f"{what} takes one whole number")
    return None if values is None else values[0]


def _source(form, name: str) -> str:
    """``upload``, ``sample:NAME`` or ``run:ID`` (a past run's input): a refusal for anything else."""
    text = _text(form, f"{name}_source") or "upload"
    kind, _, value = text.partition(":")
    if (
        text == "upload"
        or (kind == "sample" and value in SAMPLES)
        or (kind == "run" and runs.is_run_id(value))
    ):
        return text
    raise FieldError(name, f"unknown image source {text!r}: upload a file or pick a sample")


def parse_settings(form) -> dict:
    """The run's settings from the form's text fields (what ``settings.json`` keeps); FieldError on
    a value of the wrong type. The values themselves are judged by ``check``.

    Examples
    --------
    >>> s = parse_settings({"style1_source": "sample:starry-night", "size": "48", "iters": "5"})
    >>> s["size"], s["iters"], s["styles"]
    (48, 5, ['sample:starry-night'])
    """
    n = sum(1 for k in range(1, MAX_STYLES + 1) if f"style{k}_source" in form)
    if n == 0:
        raise FieldError("styles", "pick or upload at least one style image")
    color = _text(form, "color") or "none"
    if color not in COLOR_MODES:
        raise FieldError(
            "color", f"unknown colour mode {color!r}: expected {', '.join(COLOR_MODES)}"
        )
    iters = _whole(form, "iters", "iterations")
    blend = [_number(form, f"blend{k}", f"blend weight {k}") for k in range(1, n + 1)]
    blend = [1.0 if b is None else b for b in blend]
    if any(b < 0 for b in blend) or sum(blend) <= 0:
        raise FieldError("blend", f"blend weights must be >= 0 and not all 0, got {blend}")
    return {
        "content": _source(form, "content"),
        "styles": [_source(form, f"style{k}") for k in range(1, n + 1)],
        "blend": blend,
        "preset": _text(form, "preset") or "gatys",
        "size": _one(_whole(form, "size", "size"), "size", "size"),
        "iters": None if iters is None else (iters[0] if len(iters) == 1 else iters),
        "all_iters": _text(form, "all_iters") in ("on", "1", "true", "yes"),
        "stop_tol": _number(form, "stop_tol", "the stop tolerance"),
        "color": color,
        "scales": _whole(form, "scales", "scales"),
        "tile_size": _one(_whole(form, "tile_size", "tile size"), "tile_size", "tile size"),
        "seed": _one(_whole(form, "seed", "seed"), "seed", "seed") or 0,
        "masks": False,
    }


def options(settings: dict, folder: Path, resume: bool = False):
    """``(content path, style paths, RunOptions, overrides)`` of the run in ``folder``: results,
    log and checkpoint go into it, inputs come from it.

    Examples
    --------
    >>> s = parse_settings({"style1_source": "sample:starry-night", "style2_source": "upload",
    ...                     "blend2": "3", "color": "match-pca"})
    >>> content, styles, opts, overrides = options(s, Path("runs/r"))
    >>> content, styles, opts.match_color, overrides
    ('runs/r/content.png', ['runs/r/style1.png', 'runs/r/style2.png'], 'pca', {'style_blend_weights': [1.0, 3.0]})
    """
    n = len(settings["styles"])
    color = settings["color"]
    opts = RunOptions(
        output=str(folder / runs.RESULT),
        preset=settings["preset"],
        size=settings["size"],
        iters=tuple(settings["iters"])
        if isinstance(settings["iters"], list)
        else settings["iters"],
        scales=None if not settings["scales"] else tuple(settings["scales"]),
        all_iters=settings["all_iters"],
        original_colors=color == "original-colors",
        luminance_only=color == "luminance-only",
        match_color=color[len("match-") :] if color.startswith("match-") else None,
        content_masks=[str(folder / runs.mask_file(k)) for k in range(1, n + 1)]
        if settings["masks"]
        else None,
        tile_size=settings["tile_size"],
        seed=settings["seed"],
        log=str(folder / runs.LOG),
        quiet=True,
        max_pixels=MAX_PIXELS,
        resume=str(folder / runs.checkpoint_file()) if resume else None,
    )
    overrides: dict = {}
    if n > 1:
        overrides["style_blend_weights"] = list(settings["blend"])
    if settings["stop_tol"] is not None:
        overrides["stop_tol"] = settings["stop_tol"]
    content = str(folder / runs.CONTENT)
    styles = [str(folder / runs.style_file(k)) for k in range(1, n + 1)]
    return content, styles, opts, overrides


def check(settings: dict, folder: Path) -> None:
    """``transfer``'s validation of the settings (nothing loaded): FieldError naming the field.

    Examples
    --------
    >>> import tempfile
    >>> s = parse_settings({"style1_source": "sample:starry-night", "size": "0"})
    >>> try:
    ...     check(s, Path(tempfile.mkdtemp()))
    ... except FieldError as exc:
    ...     print(exc.field, "|", exc)
    size | --size must be a positive number, got 0
    """
    content, styles, opts, overrides = options(settings, folder)
    opts.content_masks = None  # the painted masks are checked when saved
    try:
        check_options(content, styles, opts, overrides)
    except FieldError:
        raise
    except UserError as exc:
        raise FieldError(field_of(str(exc)), str(exc)) from None


def _decode(path: Path, field: str, what: str) -> np.ndarray:
    """An uploaded file through the CLI's hardened loader; its sentence without the temporary name."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_image(path, max_pixels=MAX_PIXELS, what=what)
    except UserError as exc:
        raise FieldError(field, re.sub(r" '[^']*\.upload'", "", str(exc))) from None


def store_input(folder: Path, field: str, source: str, data: bytes | None, runs_root: Path, k=0):
    """Save one input of the run into ``folder`` under its fixed name (``content.png``,
    ``styleK.png``), decoded from an upload (``data``), a sample or a past run's input."""
    what = "content" if field == "content" else "style"
    target = folder / (runs.CONTENT if field == "content" else runs.style_file(k))
    if source == "upload":
        if not data:
            raise FieldError(field, f"choose a {what} image to upload, or pick a sample")
        if len(data) > MAX_UPLOAD_BYTES:
            raise FieldError(
                field,
                f"the {what} image is larger than {MAX_UPLOAD_BYTES // 2**20} MB; use a smaller file",
            )
        temp = folder / f"{field}.upload"
        temp.write_bytes(data)
        try:
            image = _decode(temp, field, what)
        finally:
            temp.unlink(missing_ok=True)
    elif source.startswith("sample:"):
        image = load_image(sample_path(source[len("sample:") :]), what=what)
    else:
        past = runs.run_dir(runs_root, source[len("run:") :])
        name = runs.CONTENT if field == "content" else runs.style_file(k)
        if not (past / name).is_file():
            raise FieldError(field, f"the run {source[4:]} has no {what} image {k or ''} to reuse")
        image = _decode(past / name, field, what)
    save_image(target, image)


def store_mask(folder: Path, k: int, data: bytes, shape) -> None:
    """Save the painted region of style ``k`` (a PNG from the page's canvas) as ``maskK.png``; the
    same checks as ``--content-masks`` (readable, not all black)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise FieldError("regions", f"the painted region of style {k} is too large")
    target = folder / runs.mask_file(k)
    target.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_mask(target, shape, f"the painted region of style {k}")
    except UserError as exc:
        target.unlink(missing_ok=True)
        message = re.sub(r" '[^']*mask\d\.png'", "", str(exc))
        raise FieldError(
            "regions", message.replace("content mask image", "painted region")
        ) from None
