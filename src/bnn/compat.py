"""The original BNN-PYNQ API (``bnn.LfcClassifier``), as the LFC notebook used it.

    >>> import bnn
    >>> clf = bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "mnist", bnn.RUNTIME_HW)
    >>> clf.classes
    ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']
    >>> result = clf.classify_mnists("t10k-images-idx3-ubyte")
    Inference took 13540.12 microseconds, 1.35 usec per image
    Classification rate: 738545.37 images per second
    >>> clf.usecPerImage
    1.3540

This module is the only library code that prints: the two timing lines of
each classify call, as the original did (``verbose=False`` silences them).
"""

from __future__ import annotations

import os

import numpy as np

from .classifier import Classifier, as_images
from .errors import ImageError
from .params import available_params as _available_params

__all__ = [
    "NETWORK_LFCW1A1",
    "NETWORK_LFCW1A2",
    "RUNTIME_HW",
    "RUNTIME_SW",
    "RUNTIME_TORCH",
    "LfcClassifier",
    "available_params",
]

NETWORK_LFCW1A1 = "lfcW1A1"
NETWORK_LFCW1A2 = "lfcW1A2"
#: The native runtime (the original: the FPGA).
RUNTIME_HW = "python_hw"
#: The numpy reference runtime (the original: software on the ARM core).
RUNTIME_SW = "python_sw"
#: Not in the original: the same arithmetic through PyTorch on its best device (pass device= to choose).
RUNTIME_TORCH = "torch"


def available_params(network: str, params_path=None) -> list[str]:
    """Names of the parameter sets available for `network` (e.g. ["mnist"])."""
    return _available_params(network, params_path)


class LfcClassifier(Classifier):
    """The original's LFC classifier: `Classifier` plus the camelCase API and timing prints."""

    def __init__(self, network: str, params="mnist", runtime: str = RUNTIME_HW, *, verbose: bool = True, **kwargs):
        super().__init__(network, params, runtime, **kwargs)
        self.verbose = verbose

    @property
    def usecPerImage(self) -> float | None:  # noqa: N802 - the original's name
        """Inference time per image of the last classify call, in microseconds."""
        return self.usec_per_image

    def classify_mnist(self, source) -> int:
        """Class of the one image in an IDX3 file (or a (28, 28) / (784,) / (1, ...) uint8 array)."""
        if isinstance(source, (str, os.PathLike)):
            classes = self.predict_file(source)
            if len(classes) != 1:
                raise ImageError(
                    f"{source}: holds {len(classes)} images; classify_mnist takes one (see classify_mnists)"
                )
        else:
            arr = np.asarray(source)
            if arr.shape in ((28, 28), (784,)):
                arr = arr.reshape(1, 784)
            images = as_images(arr)
            if images.shape[0] != 1:
                raise ImageError(f"images: {images.shape[0]} images; classify_mnist takes one (see classify_mnists)")
            classes = self.predict(images)
        self._print_timing(1)
        return int(classes[0])

    def classify_mnists(self, source) -> np.ndarray:
        """Classes of all images of an IDX3 file (or an (N, 28, 28) / (N, 784) uint8 array).

        An int32 array of shape (N,), as the original returns."""
        if isinstance(source, (str, os.PathLike)):
            classes = self.predict_file(source)
        else:
            classes = self.predict(source)
        self._print_timing(len(classes))
        return np.asarray(classes, dtype=np.int32)

    def _print_timing(self, n: int) -> None:
        if not self.verbose:
            return
        usec = self.usec_per_image or 0.0
        rate = 1e6 / usec if usec > 0 else float("inf")
        print(f"Inference took {usec * n:.2f} microseconds, {usec:.2f} usec per image")  # noqa: T201
        print(f"Classification rate: {rate:.2f} images per second")  # noqa: T201
