"""Test cases for the native kernels' driver (tests/native/check_kernels.cpp), used by tools/check_arm.sh
and tools/check_avx512.sh: parameter sets, images and the numpy reference's classes, scores and bits.

    python tools/kernel_cases.py OUT_DIR     (run from the repository root, with bnn installed)

Cases: random geometries (hidden widths 16-256, 1 to 5 hidden layers, inputs not a multiple of 64,
both activations and decision rules, 1-bit and 3-level pixels, batches from 1 to 600 images, so that
whole bit-sliced blocks are reached) and, when ../shared is there, the MNIST test set with both
original sets.
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "tests")
from conftest import MNIST, ORIGINAL, random_params  # noqa: E402

import bnn  # noqa: E402
from bnn.runtimes.reference import ReferenceRuntime  # noqa: E402

work = Path(sys.argv[1])


def write_case(name, params, images, rule):
    out = ReferenceRuntime(params).run(images, rule)
    with open(work / f"{name}.case", "wb") as f:
        head = [len(params.layers), params.activation_bits, len(params.classes), 784, len(images), rule == "argmax"]
        f.write(np.array(head + [len(params.pixel_thresholds), *params.pixel_thresholds], "<i4").tobytes())
        for layer in params.layers:
            f.write(np.array([layer.mh, layer.mw, layer.n_thresholds], "<i4").tobytes())
            f.write(np.ascontiguousarray(layer.weights, np.uint8).tobytes())
            f.write(np.ascontiguousarray(layer.effective_thresholds(), "<i4").tobytes())
        f.write(np.ascontiguousarray(images, np.uint8).tobytes())
        f.write(out.classes.astype("<i4").tobytes() + out.scores.astype("<i4").tobytes())
        f.write(out.bits.astype(np.uint8).tobytes())


rng = np.random.default_rng(16)
for i, (network, hidden, classes, mw0, n, pixels) in enumerate(
    [
        ("lfcW1A1", (64, 64, 64), 10, 832, 257, (128,)),
        ("lfcW1A2", (256, 256, 256), 10, 784, 130, (128,)),
        ("lfcW1A1", (48, 200, 16), 3, 790, 67, (200,)),
        ("lfcW1A2", (96, 64, 128), 40, 800, 1, (128,)),
        ("lfcW1A2", (64, 256, 64), 10, 784, 600, (64, 191)),
        ("lfcW1A2", (256, 64, 64), 7, 800, 66, (0, 128)),
        ("lfcW1A1", (128,), 10, 784, 70, (128,)),
        ("lfcW1A2", (64, 32, 64, 128, 64), 12, 832, 555, (90, 170)),
    ]
):
    images = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    params = dataclasses.replace(random_params(rng, network, hidden, classes, mw0), pixel_thresholds=pixels)
    write_case(f"random{i}", params, images, ("argmax", "highest_bit")[i % 2])
if (MNIST / "t10k-images-idx3-ubyte.gz").exists():
    images = bnn.idx.read_images(MNIST / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
    for network in ("lfcW1A1", "lfcW1A2"):
        write_case(f"mnist-{network}", bnn.params.read_params(ORIGINAL / network), images, "highest_bit")
