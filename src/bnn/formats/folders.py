"""Labelled picture folders: one subfolder per class, its name the class name.

    data/
      cat/  001.png 002.jpg ...
      dog/  ...

or ``train/`` and ``test/`` each organised so. Pictures are decoded by
`bnn.formats.images.load_image`, the preprocessing every prediction uses.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import BnnError
from .idx import is_idx_images_name
from .images import IMAGE_SUFFIXES, load_image

__all__ = ["class_folders", "decode", "is_folder_dataset", "labelled_pictures"]


def is_folder_dataset(folder: str | os.PathLike) -> bool:
    """True when `folder` holds class subfolders (or train/ and test/) rather than IDX files."""
    folder = Path(folder)
    if not folder.is_dir() or any(is_idx_images_name(p.name) for p in folder.iterdir()):
        return False
    return any(p.is_dir() for p in folder.iterdir())


def class_folders(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its picture files, sorted; BnnError naming what is wrong with the layout."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise BnnError(f"{folder}: no class folders (expected one subfolder of PNG/JPEG pictures per class)")
    found = {}
    for c in classes:
        files = sorted(p for p in c.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BnnError(f"{c}: class {c.name!r} has no pictures ({', '.join(sorted(IMAGE_SUFFIXES))})")
        found[c.name] = files
    return found


def decode(
    files: list[Path],
    *,
    progress: bool = True,
    desc: str = "decode",
    workers: int | None = None,
    load=load_image,
    shape: tuple[int, ...] = (28, 28),
) -> np.ndarray:
    """(N, *shape) uint8: each picture through `load` (default `load_image`, the LFC's; `load_cnv_image`
    with shape (32, 32, 3) for a CNV), exactly as `Classifier.classify_image` sees it.

    Decoded in `workers` processes (default: the cores this process may use)
    when there are enough pictures to pay for them: decoding holds the GIL
    for most of its ~1 ms, so threads do not help (measured: 0.69x on 2
    cores) and processes do (2.65x). In order; a progress bar on request.
    """
    out = np.empty((len(files), *shape), dtype=np.uint8)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(files), desc=desc, unit="image", leave=False)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and len(files) >= 64 else None
    try:
        chunk = max(16, len(files) // (8 * workers))
        images = pool.map(load, files, chunksize=chunk) if pool else map(load, files)
        for i, image in enumerate(images):
            out[i] = image
            if bar is not None:
                bar.update(1)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()
    return out


def labelled_pictures(folder: str | os.PathLike, classes: list[str], *, progress: bool = True):
    """(images (N, 28, 28) uint8, labels (N,) int64, files) of a class-folder dataset, for a set with `classes`.

    Uses test/ when the folder has one. A folder whose name is not among
    `classes` is an error naming it.
    """
    folder = Path(folder)
    if (folder / "test").is_dir():
        folder = folder / "test"
    found = class_folders(folder)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise BnnError(f"{folder / unknown[0]}: class {unknown[0]!r} is not one of the set's: {', '.join(classes)}")
    files = [f for name in found for f in found[name]]
    labels = np.array([classes.index(name) for name in found for _ in found[name]], dtype=np.int64)
    return decode(files, progress=progress, desc=f"decode {folder.name}"), labels, files
