"""A small labelled picture dataset made on the fly: four drawn shapes, PNG and JPEG, unequal class sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHAPES = ("bar", "cross", "dash", "ring")


def draw(shape: str, rng: np.random.Generator) -> np.ndarray:
    """A 48x48 dark-on-light picture of `shape`, jittered in place, size and stroke."""
    img = np.full((48, 48), 235, dtype=np.uint8)
    cy, cx = rng.integers(18, 30, 2)
    half, stroke = int(rng.integers(10, 16)), int(rng.integers(2, 5))
    yy, xx = np.mgrid[:48, :48]
    if shape in ("bar", "cross"):
        img[max(cy - half, 0) : cy + half, cx - stroke : cx + stroke] = 20
    if shape in ("dash", "cross"):
        img[cy - stroke : cy + stroke, max(cx - half, 0) : cx + half] = 20
    if shape == "ring":
        r = np.hypot(yy - cy, xx - cx)
        img[(r > half - stroke) & (r < half + stroke)] = 20
    noise = rng.integers(-15, 16, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def make_dataset(root: Path, sizes: dict[str, int], *, seed: int = 0) -> Path:
    """Write `sizes[shape]` pictures per class folder under `root` (every third one a JPEG); return `root`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for shape, count in sizes.items():
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            suffix = ".jpg" if i % 3 == 2 else ".png"
            Image.fromarray(draw(shape, rng)).save(folder / f"{shape}-{i:03d}{suffix}")
    return root
