"""bnn: the BNN-PYNQ classifiers on any CPU, bit-exact with the FPGA: LFC (MNIST, W1A1 and W1A2) and
CNV (CIFAR-10, road signs, house numbers; W1A1, W1A2, W2A2).

    >>> import bnn
    >>> clf = bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "mnist", bnn.RUNTIME_HW)
    >>> clf.classify_mnists("t10k-images-idx3-ubyte.gz")
    >>> cnv = bnn.CnvClassifier(bnn.NETWORK_CNVW1A1, "cifar10", bnn.RUNTIME_SW)
    >>> cnv.classify_cifars("test_batch.bin")

The layout, bottom up: a module imports only modules of its own level or
below (tests/test_layout.py checks the levels, and that there is no cycle):

0. leaves: `bnn.bits` (bit conventions and the arithmetic's rules),
   `bnn.errors`, `bnn.metrics`, `bnn.original` (the original's figures),
   `bnn.results` (result rows and files), `bnn.runtimes.base`;
1. the model: `bnn.paramset` (a parameter set), `bnn.thresholding`;
2. files: `bnn.formats` (`idx`, `images`, `folders`, `pynq`, `qonnx`),
   `bnn.params` (sets by name), `bnn.datasets` (MNIST), `bnn.inputs`;
3. `bnn.runtimes`: `reference` (numpy, the specification), `native` (C++
   kernels), `torch` (any torch device), one protocol and one factory;
4. the library: `bnn.classifier` (`Classifier`), `bnn.compat` (the
   original's API), `bnn.info`, `bnn.plot`, `bnn.train`;
5. applications: `bnn.cli`, `bnn.bench`, `bnn.distributed` (Dask),
   `bnn.serve` (the HTTP service).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

from . import errors, params
from .classifier import Classifier
from .compat import (
    NETWORK_CNVW1A1,
    NETWORK_CNVW1A2,
    NETWORK_CNVW2A2,
    NETWORK_LFCW1A1,
    NETWORK_LFCW1A2,
    RUNTIME_HW,
    RUNTIME_SW,
    RUNTIME_TORCH,
    CnvClassifier,
    LfcClassifier,
    available_params,
)
from .formats import idx, images
from .info import runtime_info
from .runtimes import native, reference

# Where these modules were before they moved into bnn.formats and bnn.runtimes: `import bnn.idx`,
# `from bnn.native import ...` keep working, as the same module objects (no copies).
for _old, _module in {"idx": idx, "images": images, "native": native, "reference": reference}.items():
    sys.modules[f"{__name__}.{_old}"] = _module
del _old, _module

try:
    __version__ = version("bitexact-bnn")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "NETWORK_CNVW1A1",
    "NETWORK_CNVW1A2",
    "NETWORK_CNVW2A2",
    "NETWORK_LFCW1A1",
    "NETWORK_LFCW1A2",
    "RUNTIME_HW",
    "RUNTIME_SW",
    "RUNTIME_TORCH",
    "Classifier",
    "CnvClassifier",
    "LfcClassifier",
    "available_params",
    "errors",
    "idx",
    "params",
    "runtime_info",
]
