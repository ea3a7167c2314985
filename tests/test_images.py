"""Pictures of digits: MNIST-style preprocessing keeps the accuracy; font-drawn digits are recognised."""

from __future__ import annotations

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

import bnn  # noqa: E402
from bnn.errors import ImageError  # noqa: E402
from bnn.formats.images import load_image  # noqa: E402


@pytest.fixture(scope="module")
def clf(original_dir):
    return bnn.Classifier("lfcW1A1", original_dir / "lfcW1A1")


def _as_photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Dark ink on light paper, rescaled and placed off-centre in a larger picture."""
    scale = rng.uniform(1.5, 4.0)
    size = int(28 * scale)
    img = Image.fromarray(255 - digit).resize((size, size), Image.BILINEAR)
    canvas = Image.new("L", (size + 60, size + 40), 255)
    canvas.paste(img, (int(rng.integers(0, 60)), int(rng.integers(0, 40))))
    return canvas


def test_mnist_digits_as_png_keep_accuracy(clf, mnist_test, tmp_path):
    images, labels = mnist_test
    rng = np.random.default_rng(0)
    n = 500
    correct = 0
    for i in range(n):
        path = tmp_path / f"{i}.png"
        _as_photo(images[i], rng).save(path)
        correct += clf.classify_image(path) == labels[i]
    assert correct / n >= 0.97


def test_font_digits_are_recognised(clf):
    font = ImageFont.load_default(size=64)
    correct = []
    for digit in range(10):
        img = Image.new("L", (120, 120), 255)
        ImageDraw.Draw(img).text((30, 10), str(digit), fill=0, font=font)
        correct.append(clf.classify_image(img) == digit)
    assert sum(correct) >= 8, correct


def test_preprocessing_of_an_mnist_digit_is_near_identity(mnist_test):
    digit = mnist_test[0][0]
    again = load_image(digit)
    assert again.shape == (28, 28) and again.dtype == np.uint8
    assert np.mean((again >= 128) == (digit >= 128)) > 0.9


def test_blank_and_bad_pictures(tmp_path):
    assert not load_image(np.full((40, 40), 255, np.uint8)).any()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageError, match="bad.png: not a readable image"):
        load_image(bad)
    with pytest.raises(ImageError, match="expected a 2-D grayscale"):
        load_image(np.zeros((2, 3, 4, 5)))
