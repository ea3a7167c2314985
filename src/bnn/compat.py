"""The original BNN-PYNQ API (``bnn.LfcClassifier``, ``bnn.CnvClassifier``), as its notebooks used it.

    >>> import bnn
    >>> clf = bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "mnist", bnn.RUNTIME_HW)
    >>> clf.classes
    ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']
    >>> result = clf.classify_mnists("t10k-images-idx3-ubyte")
    Inference took 13540.12 microseconds, 1.35 usec per image
    Classification rate: 738545.37 images per second
    >>> clf.usecPerImage
    1.3540

    >>> cnv = bnn.CnvClassifier(bnn.NETWORK_CNVW1A1, "cifar10", bnn.RUNTIME_HW)
    >>> cnv.classify_cifars("test_batch.bin")         # an int32 array of classes
    >>> cnv.classify_image(Image.open("deer.jpg"))     # 4

This module is the only library code that prints: the two timing lines of
each classify call, as the original did (``verbose=False`` silences them).
"""

from __future__ import annotations

import os

import numpy as np

from .bits import decide
from .classifier import Classifier, as_images
from .errors import ImageError, UnknownNameError
from .params import available_params as _available_params
from .runtimes import Outputs

__all__ = [
    "NETWORK_CNVW1A1",
    "NETWORK_CNVW1A2",
    "NETWORK_CNVW2A2",
    "NETWORK_LFCW1A1",
    "NETWORK_LFCW1A2",
    "RUNTIME_HW",
    "RUNTIME_SW",
    "RUNTIME_TORCH",
    "CnvClassifier",
    "LfcClassifier",
    "available_params",
]

NETWORK_LFCW1A1 = "lfcW1A1"
NETWORK_LFCW1A2 = "lfcW1A2"
NETWORK_CNVW1A1 = "cnvW1A1"
NETWORK_CNVW1A2 = "cnvW1A2"
NETWORK_CNVW2A2 = "cnvW2A2"
#: The native runtime (the original: the FPGA).
RUNTIME_HW = "python_hw"
#: The numpy reference runtime (the original: software on the ARM core).
RUNTIME_SW = "python_sw"
#: Not in the original: the same arithmetic through PyTorch on its best device (pass device= to choose).
RUNTIME_TORCH = "torch"


def available_params(network: str, params_path=None) -> list[str]:
    """Names of the parameter sets available for `network` (e.g. ["mnist"])."""
    return _available_params(network, params_path)


class _Original(Classifier):
    """What both of the original's classifiers share: the camelCase timing and the timing prints."""

    def __init__(self, network: str, params, runtime: str = RUNTIME_HW, *, verbose: bool = True, **kwargs):
        super().__init__(network, params, runtime, **kwargs)
        self.verbose = verbose

    @property
    def usecPerImage(self) -> float | None:  # noqa: N802 - the original's name
        """Inference time per image of the last classify call, in microseconds."""
        return self.usec_per_image

    def _print_timing(self, n: int) -> None:
        """The original's two lines: the whole call's time and rate (one image: its time alone)."""
        if not self.verbose:
            return
        usec = self.usec_per_image or 0.0
        rate = 1e6 / usec if usec > 0 else float("inf")
        if n == 1:
            print(f"Inference took {usec:.2f} microseconds")  # noqa: T201
        else:
            print(f"Inference took {usec * n:.2f} microseconds, {usec:.2f} usec per image")  # noqa: T201
        print(f"Classification rate: {rate:.2f} images per second")  # noqa: T201


class LfcClassifier(_Original):
    """The original's LFC classifier: `Classifier` plus the camelCase API and timing prints."""

    def __init__(self, network: str, params="mnist", runtime: str = RUNTIME_HW, *, verbose: bool = True, **kwargs):
        super().__init__(network, params, runtime, verbose=verbose, **kwargs)

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


class CnvClassifier(_Original):
    """The original's CNV classifier (CIFAR-10, road signs, house numbers): `Classifier` plus its API.

    Batch calls (`classify_cifars`, `classify_images`) decide as the original's did: the highest score
    if it is above 0, else class 0 ("positive_max"); single-image calls take the first highest score
    ("argmax"), negative scores included. The `_details` calls return the scores: (C,) for one image,
    (N * C,) flattened for several, as the original did.
    """

    def __init__(self, network: str, params="cifar10", runtime: str = RUNTIME_HW, *, verbose: bool = True, **kwargs):
        super().__init__(network, params, runtime, verbose=verbose, **kwargs)
        if not self.params.spec.convolutional:
            raise UnknownNameError(f"{network} is not a CNV network: use LfcClassifier")

    def _one(self, images: np.ndarray, where: str) -> Outputs:
        if len(images) != 1:
            raise ImageError(f"{where}: holds {len(images)} images; this call takes one (see the plural call)")
        out = self._timed(images.reshape(1, -1), scores=True)
        self._print_timing(1)
        return out

    def _read_one(self, path) -> np.ndarray:
        from .formats import cifar

        return cifar.read_batch(path)[0]

    def classify_cifar(self, path) -> int:
        """Class of the one CIFAR-10 record in `path` (first highest score)."""
        out = self._one(self._read_one(path), str(path))
        return int(decide(out.scores, out.bits, "argmax")[0])

    def classify_cifar_details(self, path) -> np.ndarray:
        """Scores (C,) int32 of the one CIFAR-10 record in `path`."""
        return self._one(self._read_one(path), str(path)).scores[0]

    def classify_cifars(self, path) -> np.ndarray:
        """Classes (N,) int32 of every record of a CIFAR-10 batch file (binary or python)."""
        out = self.infer_file(path)
        self._print_timing(len(out.classes))
        return decide(out.scores, out.bits, "positive_max")

    def classify_cifars_details(self, path) -> np.ndarray:
        """Scores of every record of a CIFAR-10 batch file, flattened image by image: (N * C,) int32."""
        out = self.infer_file(path)
        self._print_timing(len(out.classes))
        return out.scores.reshape(-1)

    def classify_image(self, img) -> int:
        """Class of one picture (a PIL image, a path, bytes or an array), through the original's image_to_cifar."""
        out = self._one(self.preprocess(img)[None], "image")
        return int(decide(out.scores, out.bits, "argmax")[0])

    def classify_image_details(self, img) -> np.ndarray:
        """Scores (C,) int32 of one picture."""
        return self._one(self.preprocess(img)[None], "image").scores[0]

    def _many(self, imgs) -> Outputs:
        images = np.zeros((len(imgs), self.params.image_bytes), np.uint8)
        for row, img in zip(images, imgs):
            row[:] = self.preprocess(img).reshape(-1)
        out = self._timed(images, scores=True)
        self._print_timing(len(images))
        return out

    def classify_images(self, imgs) -> np.ndarray:
        """Classes (N,) int32 of several pictures (the batch rule)."""
        out = self._many(list(imgs))
        return decide(out.scores, out.bits, "positive_max")

    def classify_images_details(self, imgs) -> np.ndarray:
        """Scores of several pictures, flattened image by image: (N * C,) int32."""
        return self._many(list(imgs)).scores.reshape(-1)

    def classify_path(self, path) -> int:
        """Class of the picture file at `path`."""
        return self.classify_image(os.fspath(path))

    def classify_paths(self, paths) -> np.ndarray:
        """Classes of the picture files at `paths` (the batch rule)."""
        return self.classify_images([os.fspath(p) for p in paths])
