"""Test cases for the native kernels' driver (tests/native/check_kernels.cpp), used by tools/check_arm.sh
and tools/check_avx512.sh: parameter sets, images and the numpy reference's classes, scores and bits.

    python tools/kernel_cases.py OUT_DIR     (run from the repository root, with bnn installed)

Cases: random LFC geometries (hidden widths 16-256, 1 to 5 hidden layers, inputs not a multiple of
64, both activations and decision rules, 1-bit and 3-level pixels, batches from 1 to 600 images, so
that whole bit-sliced blocks are reached), random CNV geometries (W1A1, W1A2, W2A2 with every 2-bit
weight, channels that fill one word, two, or part of one, pools, batches that reach whole and partial sliced
blocks) and, when ../shared is there, the MNIST test set with both original LFC sets and 140 CIFAR-10
images with the three original CNV sets.
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "tests")
from conftest import CIFAR, MNIST, ORIGINAL, ORIGINAL_SETS, random_cnv_params, random_params  # noqa: E402

import bnn  # noqa: E402
from bnn.formats import cifar  # noqa: E402
from bnn.runtimes.native import extension_layers  # noqa: E402
from bnn.runtimes.reference import ReferenceRuntime  # noqa: E402

work = Path(sys.argv[1])


def write_case(name, params, images, rule):
    """Little-endian int32 head, layers, images, expected outputs: tests/native/check_kernels.cpp reads it."""
    out = ReferenceRuntime(params).run(images, rule)
    convolutional = params.spec.convolutional
    pixel_thresholds = [] if convolutional else list(params.pixel_thresholds)
    rules = ("highest_bit", "argmax", "positive_max")
    with open(work / f"{name}.case", "wb") as f:
        head = [len(params.layers), params.activation_bits, len(params.classes), params.image_bytes, len(images)]
        head += [rules.index(rule), 16 if convolutional else 0, len(pixel_thresholds), *pixel_thresholds]
        f.write(np.array(head, "<i4").tobytes())
        for weights, thresholds, geometry in extension_layers(params):
            f.write(np.array([*weights.shape, thresholds.shape[1], *geometry], "<i4").tobytes())
            f.write(weights.astype(np.int8).tobytes() + thresholds.astype("<i4").tobytes())
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
for i, (network, size, channels, pools, fc, n) in enumerate(
    [
        ("cnvW1A1", 8, (3, 64, 70), (False, True), (24,), 300),  # sliced: a block of 256 and a rest
        ("cnvW1A2", 10, (3, 13, 64), (True, False), (), 600),  # a block of 512 and a partial one
        ("cnvW2A2", 8, (3, 70, 8), (False, True), (17,), 6),
        ("cnvW2A2", 6, (1, 3), (True,), (65, 8), 1),
        ("cnvW1A2", 5, (70, 8), (False,), (), 3),  # 630 columns into layer 0: int32 sums
    ]
):
    params = random_cnv_params(rng, network, size, channels, pools, fc)
    images = rng.integers(0, 256, (n, params.image_bytes), dtype=np.uint8)
    write_case(f"random-cnv{i}", params, images, ("positive_max", "argmax", "highest_bit")[i % 3])
if (MNIST / "t10k-images-idx3-ubyte.gz").exists():
    images = bnn.idx.read_images(MNIST / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
    for network in ("lfcW1A1", "lfcW1A2"):
        write_case(f"mnist-{network}", bnn.params.read_params(ORIGINAL / network), images, "highest_bit")
if CIFAR.exists():
    images = cifar.read_batch(CIFAR)[0][:140].reshape(140, -1)  # a partial block for every sliced kernel
    for network in ("cnvW1A1", "cnvW1A2", "cnvW2A2"):
        params = bnn.params.read_params(ORIGINAL_SETS / "cifar10" / network)
        write_case(f"cifar10-{network}", params, images, "positive_max")
