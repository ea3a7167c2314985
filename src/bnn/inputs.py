"""What the user names, expanded into the files to classify and read in pieces (one rule for every path).

A network family reads one kind of dataset file (`DataFiles`): an LFC reads
IDX files of 28x28 images (`IDX`), a CNV reads CIFAR-10 batches of 32x32
RGB images (`CIFAR`). A path is a picture (by its suffix:
`IMAGE_SUFFIXES`), a dataset file (any other file named directly), or a
folder: its pictures and its dataset files (recognised by name: names
holding ``idx3`` as MNIST's do; ``*.bin``, ``data_batch_*``, ``test_batch``
as CIFAR-10's), from it and its subfolders, in sorted order. `bnn
classify` in one process and on a Dask cluster both expand paths here, so
they see the same inputs in the same order and name each image alike: a
picture by its path, a dataset file's image `i` as ``path[i]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np

from .errors import BnnError
from .formats import cifar, idx
from .formats.images import IMAGE_SUFFIXES

__all__ = ["CIFAR", "IDX", "DataFiles", "Source", "data_files", "expand", "runs"]


@dataclass(frozen=True)
class DataFiles:
    """How one family's dataset files are recognised, counted and read.

    `read(path, start, stop, chunk)` yields (n, P) uint8 images, n <= chunk (stop None: to the end);
    `seekable(path)`: a range is read without reading what comes before it.
    """

    what: str
    is_name: Callable[[str], bool]
    count: Callable[[str], int]
    read: Callable[[str, int, int | None, int], Iterator[np.ndarray]]
    seekable: Callable[[str], bool]


def _flat(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.reshape(len(images), int(np.prod(images.shape[1:]))))


IDX = DataFiles(
    "IDX image files (names with 'idx3')",
    idx.is_idx_images_name,
    lambda path: idx.read_header(path).shape[0],
    lambda path, start, stop, chunk: map(_flat, idx.iter_images(path, start=start, stop=stop, chunk_size=chunk)),
    lambda path: not idx.is_gzip(path),
)
CIFAR = DataFiles(
    "CIFAR-10 batches (*.bin, data_batch_*, test_batch)",
    cifar.is_batch_name,
    cifar.count_images,
    lambda path, start, stop, chunk: (
        _flat(images) for images, _ in cifar.iter_batch(path, start=start, stop=stop, chunk_size=chunk)
    ),
    cifar.is_binary,
)


def data_files(convolutional: bool) -> DataFiles:
    """The dataset files a network reads: CIFAR-10 batches for a CNV, IDX files for an LFC."""
    return CIFAR if convolutional else IDX


@dataclass(frozen=True)
class Source:
    """One input file: `path` as the user's names give it, `kind` "picture" or "data"."""

    path: str
    kind: str

    @property
    def is_picture(self) -> bool:
        return self.kind == "picture"


def _is_picture(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def expand(paths: Iterable[str | os.PathLike], files: DataFiles = IDX) -> list[Source]:
    """The files of `paths` in input order; BnnError for a folder with nothing to classify."""
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [
                Source(str(p), "picture" if _is_picture(p) else "data")
                for p in sorted(path.rglob("*"))
                if p.is_file() and (_is_picture(p) or files.is_name(p.name))
            ]
            if not found:
                raise BnnError(
                    f"{path}: nothing to classify in this folder or its subfolders "
                    f"(pictures: {', '.join(sorted(IMAGE_SUFFIXES))}; {files.what})"
                )
            sources += found
        else:
            sources.append(Source(str(path), "picture" if _is_picture(path) else "data"))
    return sources


def runs(paths: Iterable[str | os.PathLike], files: DataFiles = IDX) -> Iterator[tuple[bool, list[str]]]:
    """The files of `paths` in input order as runs: (True, [pictures...]) for consecutive pictures, which
    are decoded together, and (False, [path]) for each dataset file."""
    for pictures, group in groupby(expand(paths, files), key=lambda source: source.is_picture):
        names = [source.path for source in group]
        if pictures:
            yield True, names
        else:
            yield from ((False, [name]) for name in names)
