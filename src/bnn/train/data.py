"""Training data: labelled images read once (IDX files or folders of pictures), held-out splits, augmentation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BnnError
from ..formats import idx
from ..formats.folders import class_folders, decode

__all__ = [
    "MAX_CLASSES",
    "FolderDataset",
    "load_dataset",
    "load_folder_dataset",
    "shifted",
    "split_validation",
]


def load_dataset(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) int64 labels from two IDX files, checked to match."""
    images = idx.read_images(images_path)
    labels = idx.read_labels(labels_path).astype(np.int64)
    if len(images) != len(labels):
        raise BnnError(f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels")
    return images, labels


def shifted(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by a random whole number of pixels in -max_shift..max_shift (both axes)."""
    if max_shift == 0:
        return images
    n = len(images)
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    oy = rng.integers(0, 2 * max_shift + 1, n)
    ox = rng.integers(0, 2 * max_shift + 1, n)
    rows = (oy[:, None] + np.arange(28))[:, :, None]
    cols = (ox[:, None] + np.arange(28))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols]


def split_validation(labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): `count` images held out, each class in proportion to its size."""
    if count <= 0:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    if count >= len(labels):
        raise BnnError(f"a validation split of {count} images leaves none of the {len(labels)} to train on")
    rng = np.random.default_rng([seed, 7919])
    held = []
    classes, sizes = np.unique(labels, return_counts=True)
    # Largest-remainder apportionment: exactly `count` images in all.
    quota = sizes * count / len(labels)
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(take - quota)[: count - int(take.sum())]] += 1
    for c, k in zip(classes, take):
        members = np.flatnonzero(labels == c)
        held.append(rng.choice(members, size=int(k), replace=False))
    validation = np.sort(np.concatenate(held))
    mask = np.ones(len(labels), dtype=bool)
    mask[validation] = False
    return np.flatnonzero(mask), validation


#: Most classes a trained set may have: the width of the original LFC's last layer (64 outputs),
#: so that a set trained here keeps the hardware's geometry.
MAX_CLASSES = 64


@dataclass
class FolderDataset:
    """Pictures in class folders, decoded to (N, 28, 28) uint8 by the inference preprocessing."""

    classes: list[str]
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    #: "test/ folder", or how the held-out test split was made.
    test_source: str
    test_files: list[str]


def load_folder_dataset(
    folder: str | os.PathLike, *, test_fraction: float = 0.2, seed: int = 0, progress: bool = True
) -> FolderDataset:
    """Read a folder of class subfolders (or train/ and test/ organised so) once, decoded for training.

    Without test/, a stratified `test_fraction` of each class is held out
    (the same split for the same seed). Class names are the folder names,
    sorted; 2 to `MAX_CLASSES` of them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BnnError(f"{folder}: dataset folder not found")
    split = (folder / "train").is_dir()
    train = class_folders(folder / "train" if split else folder)
    classes = list(train)
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise BnnError(f"{folder}: {len(classes)} class folder(s); a set has 2 to {MAX_CLASSES} classes")
    files = [f for c in classes for f in train[c]]
    labels = np.array([i for i, c in enumerate(classes) for _ in train[c]], dtype=np.int64)
    images = decode(files, progress=progress, desc=f"decode {folder.name}")
    if split:
        if not (folder / "test").is_dir():
            raise BnnError(f"{folder}: has train/ but no test/ (organise both alike, or neither)")
        test = class_folders(folder / "test")
        unknown = sorted(set(test) - set(classes))
        if unknown:
            raise BnnError(
                f"{folder / 'test'}: class folder {unknown[0]!r} is not among train/'s: {', '.join(classes)}"
            )
        test_files = [f for c in classes for f in test.get(c, [])]
        test_y = np.array([i for i, c in enumerate(classes) for _ in test.get(c, [])], dtype=np.int64)
        test_x = decode(test_files, progress=progress, desc="decode test")
        source = "test/ folder"
    else:
        count = round(test_fraction * len(labels))
        if not 0 < count < len(labels) - len(classes):
            raise BnnError(f"{folder}: {len(labels)} pictures are too few to hold out {test_fraction:.0%} for testing")
        kept, held = split_validation(labels, count, seed)
        test_x, test_y, test_files = images[held], labels[held], [files[i] for i in held]
        images, labels = images[kept], labels[kept]
        source = f"stratified {test_fraction:.0%} of each class held out (seed {seed})"
    return FolderDataset(classes, images, labels, test_x, test_y, source, [str(f) for f in test_files])
