"""The native runtime (RUNTIME_HW): bit-packed C++ kernels chosen from the CPU's features.

Kernels, fastest first: "avx512" (AVX-512 F/BW/VL + VPOPCNTDQ),
"avx512-bitslice", "avx2-bitslice", "avx2" (AVX2, byte lookup popcount),
"neon" (aarch64 Advanced SIMD, VCNT), "portable-bitslice", "portable"
(plain C++). A "-bitslice" kernel runs whole blocks of 256 or 512 images
through bit-sliced hidden layers (src/native/bitslice.h) and the rest of a
batch through its ISA's per-image kernel. A CNV network's layer 0
takes the image's 8-bit pixels (window sums in int16 vectors,
src/native/conv8.h; on x86 two columns per VPMADDUBSW, conv8_pairs.h);
a "-bitslice" kernel then runs whole (or, for a batch's last images,
partial) blocks of images through bit-sliced convolutions, one sliced
layer per output pixel reading its window in place, and every other
kernel runs image by image, each layer as rows of bit-packed windows
through its popcount kernel; pools work on the bit planes. The fastest one this CPU runs for
the network is used unless a kernel is named (`bnn.runtimes` says how): the first
of the list, except that on an AVX-512 CPU a network with 2-bit activations runs
"avx512-bitslice" (`default_kernel`).
Inference releases the GIL and runs on `threads` threads (default: every
core this process may use; more than that is capped to it, as extra
threads would only share the same cores).

    >>> from bnn.runtimes import native
    >>> native.available_kernels()
    ['avx512', 'avx512-bitslice', 'avx2-bitslice', 'avx2', 'portable-bitslice', 'portable']
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import NativeUnavailableError, UnknownNameError
from ..paramset import ParamSet
from .base import Outputs

__all__ = [
    "NativeRuntime",
    "available_kernels",
    "bound",
    "default_kernel",
    "default_threads",
    "extension_layers",
    "is_available",
    "words_per_image",
]

KERNELS = ("avx512", "avx512-bitslice", "avx2-bitslice", "avx2", "neon", "portable-bitslice", "portable")
# Images per call to the extension, about 0.1 s of work each on 2 cores: the
# GIL-free native call cannot be interrupted, so Ctrl-C waits at most one chunk.
CHUNK = {
    "avx512": 65536,
    "avx512-bitslice": 65536,
    "avx2-bitslice": 32768,
    "avx2": 16384,
    "neon": 8192,
    "portable-bitslice": 4096,
    "portable": 2048,
}

try:
    from .. import _native
except ImportError as exc:  # not built (no compiler at install time) or broken
    _native = None
    _import_error = exc


def is_available() -> bool:
    """True when the extension is built and importable."""
    return _native is not None


def _require():
    if _native is None:
        raise NativeUnavailableError(f"the native runtime is not built ({_import_error})")
    return _native


def available_kernels() -> list[str]:
    """Kernels this CPU can run, fastest first; [] without the extension."""
    return list(_native.available_kernels()) if _native is not None else []


# Kernels that run a convolutional network with 2-bit activations faster than the kernel ahead of them
# in KERNELS (paired rounds, 2 threads, 10,000 MNIST / 932 CIFAR-10 images, benchmarks/bench_bitslice.py):
# avx512-bitslice ran cnvW1A2 1.14-1.15x and cnvW2A2 1.22-1.27x avx512's rate on a Zen 4, 1.08-1.22x and
# 1.10-1.25x on a Zen 5: a per-image kernel counts each plane apart, a sliced one reads one table entry
# for both. Not for an LFC, whose layers are a few large matrix products that avx512 runs near its
# bound: lfcW1A2 0.98-1.03x on the Zen 4, 0.85-0.97x on the Zen 5; nor for 1-bit activations (lfcW1A1
# 0.63-0.96x, cnvW1A1 0.80-0.91x on both).
_FOR_CNV_TWO_BIT_ACTIVATIONS = {"avx512": "avx512-bitslice"}


def default_kernel(activation_bits: int = 1, convolutional: bool = False) -> str | None:
    """The kernel a network with `activation_bits`-bit activations (and convolutional layers, or not)
    runs on unless one is named: the fastest this CPU runs for it; None without the extension."""
    kernels = available_kernels()
    if not kernels:
        return None
    faster = _FOR_CNV_TWO_BIT_ACTIVATIONS.get(kernels[0])
    return faster if activation_bits == 2 and convolutional and faster in kernels else kernels[0]


def words_per_image(params: ParamSet) -> int:
    """64-bit weight words one image meets: the inner steps a kernel makes per image (W1A1 LFC: 47,104;
    a convolution's per output pixel, a window's pixels in whole words each; 2-bit weights twice, as
    two binary rows; CNV layer 0's 8-bit sums are not counted)."""
    total = 0
    for i, (layer, geometry) in enumerate(zip(params.layers, _geometries(params))):
        size, channels, window, _ = geometry
        if i == 0 and params.spec.convolutional:
            continue
        copies = 2 if layer.weight_bits == 2 else 1
        total += (size - window + 1) ** 2 * layer.mh * copies * window * window * -(-channels // 64)
    return total


def _geometries(params: ParamSet) -> list[tuple[int, int, int, bool]]:
    """Each layer's input map and window for the extension: (side, channels, window, pool); a fully
    connected layer's window is its whole map (an LFC's: side 1, MW channels)."""
    out, side = [], 1
    for layer in params.layers:
        if layer.conv is not None:
            out.append((layer.conv.size, layer.conv.channels, layer.conv.kernel, layer.conv.pool))
            side = layer.conv.out_size
        else:
            out.append((side, layer.mw // (side * side), side, False))
            side = 1
    return out


def bound(kernel: str, params: ParamSet, threads: int = 1, *, seconds: float = 1.0) -> float:
    """Images/s that `kernel`'s approach allows on this CPU: its inner step (xor, popcount, add; for a
    bit-sliced kernel, table reads and carry-save adds) run from registers for `seconds` on `threads`
    cores at once (the sum of their rates: cores that slow each other down, as a VM's may, show here as
    they do in the kernel), over `words_per_image`. Memory, packing, thresholds and a convolutional
    network's 8-bit layer 0 are left out, so a kernel can only come near it."""
    probe = _require().probe  # releases the GIL: the threads' probes run side by side
    with ThreadPoolExecutor(threads) as pool:
        rate = sum(pool.map(lambda _: probe(kernel, seconds), range(threads)))
    return rate / words_per_image(params)


def default_threads() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class NativeRuntime:
    """A `ParamSet` packed once for the native kernels."""

    name = "native"

    def __init__(self, params: ParamSet, *, kernel: str | None = None, threads: int | None = None):
        native = _require()
        params.validate()
        if kernel is not None and kernel not in KERNELS:
            raise UnknownNameError(f"unknown kernel {kernel!r}; known kernels: {', '.join(KERNELS)}")
        if kernel is not None and kernel not in native.available_kernels():
            raise NativeUnavailableError(
                f"kernel {kernel!r} cannot run on this CPU; available: {', '.join(native.available_kernels())}"
            )
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.params = params
        self.threads = min(threads or default_threads(), default_threads())
        layers = extension_layers(params)
        convolutional = params.spec.convolutional
        self._net = native.Network(
            layers,
            params.activation_bits,
            len(params.classes),
            params.image_bytes,
            kernel or default_kernel(params.activation_bits, convolutional),
            [] if convolutional else list(params.pixel_thresholds),
            16 if convolutional else 0,  # CNV: the last layer's ap_int<16> accumulators (bnn.bits.wrap)
        )
        self.kernel = self._net.kernel
        self.chunk = CHUNK[self.kernel]

    def run(self, images: np.ndarray, rule: str | None = None, *, scores: bool = True) -> Outputs:
        """Classes (and, with `scores`, accumulators and bits) of (N, 784) or (N, 3072) C-contiguous uint8 images."""
        rule = rule or self.params.decision
        classes, acc, bits = self._net.run(images, self.threads, rule, scores)
        return Outputs(classes, acc, bits.view(bool))

    def close(self) -> None:
        self._net = None


def extension_layers(params: ParamSet) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int, bool]]]:
    """The layers as the extension's Network takes them: (weight values, thresholds, geometry)."""
    return [
        (np.ascontiguousarray(layer.weight_values()), _thresholds(layer), geometry)
        for layer, geometry in zip(params.layers, _geometries(params))
    ]


def _thresholds(layer) -> np.ndarray:
    """A layer's effective thresholds, int32 (MH, NT); a last layer without any (CNV) compares its scores
    with 0 for its bits (bnn.bits)."""
    t = layer.effective_thresholds()
    return np.ascontiguousarray(t if t.shape[1] else np.zeros((layer.mh, 1), np.int32))
