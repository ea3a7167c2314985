"""Training data: labelled images read once, held-out splits, augmentation."""

from __future__ import annotations

import numpy as np

from ..errors import BnnError
from ..formats import idx

__all__ = ["load_dataset", "shifted", "split_validation"]


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
