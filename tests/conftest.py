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
