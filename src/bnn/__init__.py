"""bnn: the BNN-PYNQ LFC classifier (MNIST, W1A1 and W1A2) on any CPU, bit-exact with the FPGA.

    >>> import bnn
    >>> clf = bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "mnist", bnn.RUNTIME_HW)
    >>> clf.classify_mnists("t10k-images-idx3-ubyte.gz")

The layout, bottom up (imports only point down; tests/test_layout.py checks):

- `bnn.bits` (bit conventions and the arithmetic's rules), `bnn.errors`,
  `bnn.paramset` (the data model of a parameter set), `bnn.metrics`;
- `bnn.formats`: `idx` (IDX files), `images` (pictures), `folders`
  (labelled picture folders), `pynq` (BNN-PYNQ parameter folders);
  `bnn.params` finds sets by name; `bnn.datasets` fetches MNIST;
- `bnn.runtimes`: `reference` (numpy, the specification), `native` (C++
  kernels), `torch` (any torch device), one `Runtime` protocol and one factory;
- `bnn.classifier` (`Classifier`), `bnn.compat` (the original's API),
  `bnn.train` (PyTorch training and exact export);
- applications: `bnn.cli`, `bnn.bench`, `bnn.plot`, `bnn.distributed`
  (Dask), `bnn.serve` (the HTTP service).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import errors, params
from .classifier import Classifier
from .compat import (
    NETWORK_LFCW1A1,
    NETWORK_LFCW1A2,
    RUNTIME_HW,
    RUNTIME_SW,
    RUNTIME_TORCH,
    LfcClassifier,
    available_params,
)
from .formats import idx
from .info import runtime_info

try:
    __version__ = version("bitexact-bnn")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "NETWORK_LFCW1A1",
    "NETWORK_LFCW1A2",
    "RUNTIME_HW",
    "RUNTIME_SW",
    "RUNTIME_TORCH",
    "Classifier",
    "LfcClassifier",
    "available_params",
    "errors",
    "idx",
    "params",
    "runtime_info",
]
