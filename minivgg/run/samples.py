"""The sample paintings shipped with the package, usable by name wherever an image is asked for.

``minivgg transfer photo.jpg starry-night -o out.png``, ``minivgg.stylize(photo, "starry-night")``,
``minivgg demo`` and the studio's picker all read them from here. The files (at most 512 px, JPEG)
and their sources (``sample_images/SOURCES.md``) are package data of ``minivgg.run``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import UserError

_FOLDER = Path(__file__).with_name("sample_images")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One shipped painting: its name on the command line, file, title, author and year."""

    name: str
    file: str
    title: str
    author: str
    year: int
    licence: str = "public domain"

    @property
    def path(self) -> Path:
        """Where the JPEG file is installed."""
        return _FOLDER / self.file


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in (
        Sample("starry-night", "starry-night.jpg", "The Starry Night", "Vincent van Gogh", 1889),
        Sample(
            "woman-with-hat",
            "woman-with-hat.jpg",
            "Woman with a Hat",
            "Henri Matisse",
            1905,
            "public domain (US; EU since 2025)",
        ),
    )
}


def sample_path(name: str) -> Path:
    """The installed file of sample ``name``.

    Parameters
    ----------
    name : str
        A key of ``SAMPLES`` (``starry-night``, ``woman-with-hat``).

    Returns
    -------
    Path
        The JPEG file (longest side at most 512 px).

    Raises
    ------
    UserError
        For a name that is not a sample (the sentence lists the samples).

    Examples
    --------
    >>> sample_path("starry-night").name
    'starry-night.jpg'
    """
    if name not in SAMPLES:
        raise UserError(f"unknown sample {name!r}; the samples are {', '.join(SAMPLES)}")
    return SAMPLES[name].path


def resolve(source):
    """An image argument with sample names replaced by their files; anything else unchanged.

    A string that names an existing file is that file, even when it is also a sample's name; a
    string that is a sample's name otherwise is the sample's path; a bare word that is neither is a
    UserError (a misspelt sample). Arrays, PIL images and other
    paths pass through (the image loader judges them).

    Examples
    --------
    >>> resolve("woman-with-hat").name
    'woman-with-hat.jpg'
    >>> resolve("photo.jpg")
    'photo.jpg'
    """
    if not isinstance(source, str) or os.path.exists(source):
        return source
    if source in SAMPLES:
        return SAMPLES[source].path
    if source and not os.path.splitext(source)[1] and os.sep not in source and "/" not in source:
        raise UserError(
            f"'{source}' is neither an image file nor a sample painting; "
            f"the samples are {', '.join(SAMPLES)} (minivgg samples)"
        )
    return source


def describe() -> list[str]:
    """One line per sample: name, title, author, year, licence (``minivgg samples``).

    Examples
    --------
    >>> describe()[0].split()[0]
    'starry-night'
    """
    width = max(len(n) for n in SAMPLES)
    return [
        f"{s.name:<{width}}  {s.title}, {s.author}, {s.year} ({s.licence}; {s.path})"
        for s in SAMPLES.values()
    ]
