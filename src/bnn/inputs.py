"""What the user names on the command line, expanded into the files to classify (one rule for every path).

A path is a picture (by its suffix: `IMAGE_SUFFIXES`), an IDX file of
images (any other file named directly), or a folder: its pictures and its
IDX image files (names holding ``idx3``, as MNIST's do), from it and its
subfolders, in sorted order. `bnn classify` in one process and on a Dask
cluster both expand paths here, so they see the same inputs in the same
order and name each image alike: a picture by its path, an IDX file's image
`i` as ``path[i]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import BnnError
from .formats.idx import is_idx_images_name
from .formats.images import IMAGE_SUFFIXES

__all__ = ["Source", "expand"]


@dataclass(frozen=True)
class Source:
    """One input file: `path` as the user's names give it, `kind` "picture" or "idx"."""

    path: str
    kind: str

    @property
    def is_picture(self) -> bool:
        return self.kind == "picture"


def _is_picture(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def expand(paths: Iterable[str | os.PathLike]) -> list[Source]:
    """The files of `paths` in input order; BnnError for a folder with nothing to classify."""
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [
                Source(str(p), "picture" if _is_picture(p) else "idx")
                for p in sorted(path.rglob("*"))
                if p.is_file() and (_is_picture(p) or is_idx_images_name(p.name))
            ]
            if not found:
                raise BnnError(
                    f"{path}: nothing to classify in this folder or its subfolders "
                    f"(pictures: {', '.join(sorted(IMAGE_SUFFIXES))}; IDX image files: names with 'idx3')"
                )
            sources += found
        else:
            sources.append(Source(str(path), "picture" if _is_picture(path) else "idx"))
    return sources
