"""Shared fixtures: the data in ../shared, random parameter sets, and every runtime/kernel.

Tests that need ../shared fail (not skip) when CI=true and the data is
missing. Under CI a native extension that did not build fails too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

import bnn
from bnn.params import NETWORKS, Layer, ParamSet
from bnn.runtimes import native

SHARED = Path(os.environ.get("BNN_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
MNIST = SHARED / "data" / "mnist"
ORIGINAL = SHARED / "data" / "bnn-pynq-params" / "mnist"
ORIGINAL_SETS = SHARED / "data" / "bnn-pynq-params"
CIFAR = SHARED / "data" / "cifar10" / "test_batch_first932.bin"
PICTURES = SHARED / "data" / "pictures"
#: Correct classes of the original cifar10 CNV sets on the first 932 CIFAR-10 test images (the spec's figures,
#: from an implementation written apart from this project).
CIFAR_CORRECT = {"cnvW1A1": 751, "cnvW1A2": 791, "cnvW2A2": 794}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
try:  # the torch runtime is tested wherever torch is installed (CI installs it)
    import torch as TORCH
except ImportError:
    TORCH = None
#: Correct classes of the shipped "mnist" sets on the 10,000 MNIST test images (the model card's figures).
SHIPPED_CORRECT = {"lfcW1A1": 9891, "lfcW1A2": 9903}

# CI explores the same examples every run (a failure there is reproducible);
# elsewhere hypothesis explores new ones each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    settings.load_profile("ci")


def need(path: Path) -> Path:
    """`path` if it exists; else fail under CI, skip elsewhere."""
    if not path.exists():
        msg = f"test data missing: {path} (../shared beside the repository)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def mnist_test():
    """(images (10000, 28, 28) uint8, labels (10000,) uint8) of the MNIST test set."""
    images = bnn.idx.read_images(need(MNIST / "t10k-images-idx3-ubyte.gz"))
    labels = bnn.idx.read_labels(need(MNIST / "t10k-labels-idx1-ubyte.gz"))
    return images, labels


@pytest.fixture(scope="session")
def original_dir():
    """Folder holding the original lfcW1A1 / lfcW1A2 parameter folders."""
    return need(ORIGINAL)


@pytest.fixture(scope="session", params=["lfcW1A1", "lfcW1A2"])
def original(request, original_dir):
    return bnn.params.read_params(original_dir / request.param)


#: Why a kernel may not run here, by kernel (the CPU lacks its instructions).
_KERNEL_NEEDS = {
    "avx512": "AVX-512 F/BW/VPOPCNTDQ",
    "avx512-bitslice": "AVX-512 F/BW",
    "avx2": "AVX2",
    "avx2-bitslice": "AVX2",
    "neon": "NEON (an aarch64 CPU; tools/check_arm.sh runs it under qemu: test_native_arm.py)",
}


def kernel_param(kernel: str):
    """A pytest param of a native kernel, skipped with the reason where this machine cannot run it."""
    why = None
    if not native.is_available():
        why = "the native extension is not built"
    elif kernel not in native.available_kernels():
        why = f"this CPU lacks {_KERNEL_NEEDS.get(kernel, 'what the kernel needs')}"
    return pytest.param(kernel, id=kernel, marks=[pytest.mark.skip(reason=why)] if why else [])


@pytest.fixture(scope="session")
def cifar_test():
    """(images (932, 32, 32, 3) uint8 HWC, labels (932,) uint8): the CIFAR-10 test images there are."""
    from bnn.formats import cifar

    return cifar.read_batch(need(CIFAR))


def literal_cnv_forward(params: ParamSet, images: np.ndarray) -> np.ndarray:
    """The CNV spec in Python integers and plain loops, written apart from every runtime: (N, C) scores.

    Slow: small geometries and few images only. An oracle for the reference itself.
    """
    wrap = lambda v, bits: (v + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))  # noqa: E731
    out = []
    for image in images.reshape(len(images), *params.image_shape).astype(np.int64):
        p = image
        x = np.minimum((512 * p + 255) // 510 - 128, 127)  # q with q / 128 = ap_fixed<8,1>(2p/255 - 1)
        for i, layer in enumerate(params.layers):
            w = layer.weights.astype(np.int64) * (2 if layer.weight_bits == 1 else 1) - (layer.weight_bits == 1)
            t = [[wrap(int(v), layer.threshold_bits) for v in row] for row in layer.thresholds]
            last = i == len(params.layers) - 1
            if layer.conv is not None:
                c = layer.conv
                side = c.size - c.kernel + 1
                rows = [
                    [
                        x[y + ky, xx + kx, ch]
                        for ky in range(c.kernel)
                        for kx in range(c.kernel)
                        for ch in range(c.channels)
                    ]
                    for y in range(side)
                    for xx in range(side)
                ]
            else:
                rows = [list(x.reshape(-1))]
            acc = np.array([[int(np.dot(r, w[n])) for n in range(layer.mh)] for r in rows], dtype=np.int64)
            if i == 0:
                acc = 2 * acc
            elif params.activation_bits == 1:
                acc = (acc + layer.mw) // 2  # agreements of bits
            if last:
                out.append(wrap(acc[0], 16))
                break
            if layer.n_thresholds == 1:
                a = np.where(acc > np.array([r[0] for r in t]), 1, -1)
            else:
                a = (acc > np.array([r[0] for r in t])).astype(int) + (acc > np.array([r[1] for r in t])) - 1
            if layer.conv is not None:
                a = a.reshape(side, side, layer.mh)
                if layer.conv.pool:
                    a = np.array(
                        [
                            [
                                [
                                    max(a[2 * y + dy, 2 * xx + dx, n] for dy in (0, 1) for dx in (0, 1))
                                    for n in range(layer.mh)
                                ]
                                for xx in range(side // 2)
                            ]
                            for y in range(side // 2)
                        ]
                    )
            x = a
    return np.array(out, dtype=np.int64).reshape(len(images), params.layers[-1].mh)


def random_cnv_params(
    rng: np.random.Generator,
    network: str = "cnvW1A1",
    size: int = 8,
    channels: tuple[int, ...] = (3, 8, 16),
    pools: tuple[bool, ...] = (False, True),
    fc: tuple[int, ...] = (24,),
    n_classes: int = 10,
) -> ParamSet:
    """A random valid convolutional set: len(channels) - 1 3x3 convolutions (their pools), then fully
    connected layers, thresholds near the middle so that neurons switch."""
    from bnn.params import Conv

    spec = NETWORKS[network]
    layers, side = [], size
    nt = spec.thresholds[0]
    for i, (cin, cout) in enumerate(zip(channels, channels[1:])):
        conv = Conv(cin, side, 3, pools[i])
        w = _random_weights(rng, spec.weight_bits, (cout, conv.columns))
        spread = int(np.sqrt(conv.columns)) + 1
        centre = 0 if i == 0 or spec.activation_bits == 2 else conv.columns // 2
        scale = 2 * 60 if i == 0 else 1  # layer 0 sums 8-bit pixels, in 1/256 units
        t = np.sort(rng.integers(centre - scale * spread, centre + scale * spread, (cout, nt)), axis=1)
        layers.append(Layer(w, t.astype(np.int64), pe=1, simd=1, conv=conv, threshold_bits=24 if i == 0 else 16))
        side = conv.out_size
    width = channels[-1] * side * side
    for j, rows in enumerate([*fc, max(16, n_classes)]):
        last = j == len(fc)
        w = _random_weights(rng, spec.weight_bits, (rows, width))
        spread = int(np.sqrt(width)) + 1
        centre = width // 2 if spec.activation_bits == 1 else 0
        t = np.sort(rng.integers(centre - spread, centre + spread, (rows, 0 if last else nt)), axis=1)
        layers.append(Layer(w, t.astype(np.int64), pe=1, simd=1))
        width = rows
    params = ParamSet(network, layers, [f"c{i}" for i in range(n_classes)], decision="positive_max")
    params.validate()
    return params


def _random_weights(rng, bits: int, shape) -> np.ndarray:
    if bits == 1:
        return rng.integers(0, 2, shape, dtype=np.uint8)
    return rng.integers(-2, 2, shape).astype(np.int8)


def runtime_ids() -> list:
    """pytest params (runtime, option) for every runtime: ("reference", None), ("native", kernel) for
    every kernel the package has, ("torch", "cpu") and ("torch", "cuda"). Those this machine cannot
    run are skipped with the reason, so that ``pytest -ra`` lists what did not run."""
    if not native.is_available() and (IN_CI or os.environ.get("BNN_REQUIRE_NATIVE")):
        raise RuntimeError("the native extension is not built, but CI requires it")
    ids = [pytest.param("reference", None, id="reference")]
    ids += [pytest.param("native", *kernel_param(k).values, id=k, marks=kernel_param(k).marks) for k in native.KERNELS]
    for device in ("cpu", "cuda"):
        why = None
        if TORCH is None:
            why = "torch is not installed"
        elif device == "cuda" and not TORCH.cuda.is_available():
            why = "no CUDA GPU here (torch.cuda.is_available() is False)"
        ids.append(
            pytest.param("torch", device, id=f"torch-{device}", marks=[pytest.mark.skip(reason=why)] if why else [])
        )
    return ids


def options(name: str, option: str | None) -> dict:
    """The keyword that `option` of `runtime_ids` is for `name`: a native kernel or a torch device."""
    return {"native": {"kernel": option}, "torch": {"device": option}}.get(name, {})


@pytest.fixture(params=[pytest.param((p.values[0], p.values[1]), id=p.id, marks=p.marks) for p in runtime_ids()])
def runtime(request):
    """(runtime name, kernel or device) for every runtime, kernel and device."""
    return request.param


def literal_forward(params: ParamSet, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spec's arithmetic in integers, written apart from every runtime: last-layer (N, C) scores and bits.

    W1A1 counts agreements of bits (XNOR-popcount) directly; W1A2 sums
    weight x activation; thresholds are the stored ones wrapped to int16.
    An oracle for the reference itself, small batches only (int64 products).
    """
    pixels = images.reshape(len(images), 784).astype(np.int64)
    x = np.zeros((len(images), params.layers[0].mw), dtype=np.int64)
    x[:, :784] = pixels >= params.pixel_thresholds[0]  # bits; padding columns stay 0 (value -1)
    values = 2 * x - 1
    if len(params.pixel_thresholds) == 2:  # 3 levels: (p >= t0) + (p >= t1) - 1, padding -1
        values[:, :784] = x[:, :784] + (pixels >= params.pixel_thresholds[1]) - 1
    for layer in params.layers:
        w = layer.weights.astype(np.int64)
        t = (layer.thresholds.astype(np.int64) + 32768) % 65536 - 32768
        if params.activation_bits == 1:
            acc = x @ w.T + (1 - x) @ (1 - w).T  # agreements
        else:
            acc = values @ (2 * w - 1).T
        above = [acc > t[:, k] for k in range(t.shape[1])]
        x = above[0].astype(np.int64)
        values = 2 * x - 1 if len(above) == 1 else above[0].astype(np.int64) + above[1] - 1
    c = len(params.classes)
    return acc[:, :c], above[0][:, :c]


def random_params(
    rng: np.random.Generator,
    network: str = "lfcW1A1",
    hidden: tuple[int, ...] = (64, 128, 96),
    n_classes: int = 10,
    mw0: int = 832,
    out_rows: int | None = None,
    pixel_thresholds: tuple[int, ...] = (128,),
) -> ParamSet:
    """A random but valid parameter set whose neurons actually switch (thresholds near the mean)."""
    spec = NETWORKS[network]
    out_rows = out_rows or max(16, -(-n_classes // 16) * 16)
    sizes = [mw0, *hidden, out_rows]
    layers = []
    for i in range(len(sizes) - 1):
        mw, mh = sizes[i], sizes[i + 1]
        w = rng.integers(0, 2, (mh, mw), dtype=np.uint8)
        nt = spec.layer_thresholds(i, len(sizes) - 1)
        spread = int(np.sqrt(mw)) + 1
        if spec.activation_bits == 1:
            t = rng.integers(mw // 2 - spread, mw // 2 + spread, (mh, nt))
        else:
            t = np.sort(rng.integers(-2 * spread, 2 * spread, (mh, nt)), axis=1)
        # Some thresholds outside int16: the hardware keeps their low 16 bits.
        t[rng.random(t.shape) < 0.01] += 65536
        pe = next(p for p in (16, 8, 4, 2, 1) if mh % p == 0)
        simd = next(s for s in (64, 32, 16, 8, 4, 2, 1) if mw % s == 0)
        layers.append(Layer(w, t.astype(np.int64), pe=pe, simd=simd))
    params = ParamSet(network, layers, [f"c{i}" for i in range(n_classes)], pixel_thresholds=pixel_thresholds)
    params.validate()
    return params
