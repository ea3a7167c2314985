"""Ordinary pictures -> the networks' input images: MNIST-style 28x28 digits (LFC), 32x32 RGB (CNV).

CNV (`load_cnv_image`): the original's ``image_to_cifar``: a thumbnail of
at most 32x32 pixels keeping the aspect ratio (Pillow's LANCZOS), centred
on white. Pillow versions resample differently, so the same picture can
give slightly different pixels under another Pillow (the original's own
``deer.bin`` differs from Pillow 10+ by up to 4 in half its values); the
class rarely changes.

LFC (`load_image`):

MNIST digits are light on dark, fitted into a 20x20 box keeping their
aspect ratio, and centred by their centre of mass in a 28x28 field. A photo
or drawing of a digit gets the same treatment: grayscale, inverted when it
is dark on light, cropped to the digit, scaled to 20 pixels on its longer
side, centred by mass. Needs Pillow (``pip install 'bitexact-bnn[images]'``).

    >>> from bnn.formats.images import load_image
    >>> digit = load_image("seven.png")          # (28, 28) uint8
    >>> clf.predict(digit[None])
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..errors import ImageError, MissingExtraError

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "PREPROCESSING", "load_cnv_image", "load_image", "to_cifar", "to_mnist"]

#: Names the preprocessing `load_image` applies; recorded in sets trained on pictures, so that
#: whoever classifies with them knows what their inputs went through.
PREPROCESSING = "bnn.formats.images.load_image: grayscale, light on dark, cropped, 20x20 box, centred by mass in 28x28"

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
# Pixels brighter than this fraction of the brightest one belong to the digit's box.
_INK = 0.25
#: Pixels of the largest picture `load_image` decodes (larger ones are refused: decompression bombs).
MAX_PIXELS = 50_000_000
# Pictures with a longer side above this are decoded reduced to a side between _REDUCED and 2 * _REDUCED - 1.
_REDUCED = 1024


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("reading pictures needs Pillow: pip install 'bitexact-bnn[images]'") from None
    return Image


def load_image(image, *, preprocess: bool = True, name: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A picture (path, encoded bytes, PIL image or 2-D array) as a (28, 28) uint8 MNIST-style digit.

    `name` is what error messages call the picture (default: its path, or
    "image"). A file or bytes of more than `max_pixels` pixels is refused
    before it is decoded; one with a side over 2,048 pixels is decoded
    reduced (JPEG by DCT scaling, others by integer box reduction) to a
    longer side of 1,024 to 2,047 pixels before any float array exists, so
    memory stays near the decoded picture itself (1 byte a pixel in
    grayscale, 3-4 in colour) whatever its size.
    """
    if isinstance(image, (str, os.PathLike, bytes)):
        img, path = _open(image, name, max_pixels)
        try:
            with img:
                gray = np.asarray(_reduced(img).convert("L"), dtype=np.float64)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{path}: not a readable image: {exc}") from None
    elif hasattr(image, "convert"):
        gray = np.asarray(image.convert("L"), dtype=np.float64)
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            arr = arr[..., :3].mean(axis=2)
        if arr.ndim != 2 or arr.size == 0:
            raise ImageError(f"image: expected a 2-D grayscale or (H, W, 3|4) colour array, got shape {arr.shape}")
        gray = arr.astype(np.float64)
        if arr.dtype != np.uint8 and gray.max() <= 1.0:
            gray = gray * 255
    return to_mnist(gray) if preprocess else _exact_28(gray)


def _reduced(img):
    """`img` decoded at a longer side under 2 * _REDUCED: the digit ends 20 pixels tall, so detail is not lost."""
    factor = max(img.size) // _REDUCED
    if factor < 2:
        return img
    img.draft(None, (img.width // factor, img.height // factor))  # JPEG: decoded at 1/2, 1/4 or 1/8 scale
    factor = max(img.size) // _REDUCED
    if img.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):  # what reduce() takes; palettes, 1-bit, CMYK are not
        img = img.convert("L")  # what load_image makes of it anyway
    return img.reduce(factor) if factor >= 2 else img


def _open(image, name: str | None, max_pixels: int):
    """(PIL image, what errors call it) of a path or encoded bytes, its size checked before decoding."""
    Image = _pil()
    path = Path(image) if not isinstance(image, bytes) else name or "image"
    source = io.BytesIO(image) if isinstance(image, bytes) else path
    try:
        img = Image.open(source)
        if img.width * img.height > max_pixels:
            img.close()
            raise ImageError(
                f"{path}: {img.width}x{img.height} pixels is too large a picture (limit {max_pixels} pixels)"
            )
        return img, path
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, (FileNotFoundError, ImageError)):
            raise
        raise ImageError(f"{path}: not a readable image: {exc}") from None


def load_cnv_image(image, *, name: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A picture (path, encoded bytes, PIL image, or (H, W, 3|4) / (H, W) uint8 array) as a CNV input:
    (32, 32, 3) uint8 RGB, by `to_cifar`. A PIL image given is not changed."""
    Image = _pil()
    if isinstance(image, (str, os.PathLike, bytes)):
        img, path = _open(image, name, max_pixels)
        try:
            with img:
                return to_cifar(img)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{path}: not a readable image: {exc}") from None
    if hasattr(image, "convert"):
        return to_cifar(image.copy())
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"image: expected a uint8 (H, W), (H, W, 3) or (H, W, 4) array, got {arr.dtype} {arr.shape}")
    return to_cifar(Image.fromarray(arr))


def to_cifar(img) -> np.ndarray:
    """The original's image_to_cifar: `img` (a PIL image, changed in place) thumbnailed to at most 32x32
    (LANCZOS, aspect kept), pasted without a mask at the centre of a white 32x32 field; (32, 32, 3) RGB."""
    Image = _pil()
    img.thumbnail((32, 32), Image.LANCZOS)
    background = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    background.paste(img, (int((32 - img.size[0]) / 2), int((32 - img.size[1]) / 2)))
    return np.ascontiguousarray(np.asarray(background)[:, :, :3])


def _exact_28(gray: np.ndarray) -> np.ndarray:
    if gray.shape != (28, 28):
        raise ImageError(f"image: expected 28x28 pixels without preprocessing, got {gray.shape}")
    return np.clip(gray, 0, 255).astype(np.uint8)


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """(H, W) grayscale 0..255 -> (28, 28) uint8, light digit on black, 20x20 box centred by mass."""
    Image = _pil()
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:  # dark ink on light paper
        gray = 255 - gray
    gray = gray - np.median(border if np.median(border) <= 127 else 255 - border)
    gray = np.clip(gray, 0, None)
    if gray.max() <= 0:
        return np.zeros((28, 28), dtype=np.uint8)
    gray = gray * (255 / gray.max())
    rows = np.flatnonzero((gray > _INK * 255).any(axis=1))
    cols = np.flatnonzero((gray > _INK * 255).any(axis=0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = 20 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.LANCZOS))
    small = np.clip(small, 0, 255)
    canvas = np.zeros((28, 28))
    top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = small
    # Shift so that the centre of mass sits at the centre, as MNIST did.
    mass = canvas.sum()
    cy = (canvas.sum(axis=1) * np.arange(28)).sum() / mass
    cx = (canvas.sum(axis=0) * np.arange(28)).sum() / mass
    dy, dx = int(round(13.5 - cy)), int(round(13.5 - cx))
    dy = int(np.clip(dy, -top, 28 - top - size[1]))
    dx = int(np.clip(dx, -left, 28 - left - size[0]))
    canvas = np.roll(canvas, (dy, dx), axis=(0, 1))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
