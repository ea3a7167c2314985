"""The native runtime (RUNTIME_HW): bit-packed C++ kernels chosen from the CPU's features.

Kernels, fastest first: "avx512" (AVX-512 F/BW/VL + VPOPCNTDQ),
"avx512-bitslice", "avx2-bitslice", "avx2" (AVX2, byte lookup popcount),
"neon" (aarch64 Advanced SIMD, VCNT), "portable-bitslice", "portable"
(plain C++). A "-bitslice" kernel runs whole blocks of 256 or 512 images
through bit-sliced hidden layers (src/native/bitslice.h) and the rest of a
batch through its ISA's per-image kernel. The fastest one this CPU runs is
used unless a kernel is named (`bnn.runtimes` says how).
Inference releases the GIL and runs on `threads` threads (default: every
core this process may use; more than that is capped to it, as extra
threads would only share the same cores).

    >>> from bnn.runtimes import native
    >>> native.available_kernels()
    ['avx512', 'avx512-bitslice', 'avx2-bitslice', 'avx2', 'portable-bitslice', 'portable']
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import NativeUnavailableError, UnknownNameError
from ..paramset import PIXELS, ParamSet
from .base import Outputs

__all__ = ["NativeRuntime", "available_kernels", "bound", "default_threads", "is_available", "words_per_image"]

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


def words_per_image(params: ParamSet) -> int:
    """64-bit weight words one image meets: the inner steps a kernel makes per image (W1A1 LFC: 47,104)."""
    return sum(layer.mh * -(-layer.mw // 64) for layer in params.layers)


def bound(kernel: str, params: ParamSet, threads: int = 1, *, seconds: float = 1.0) -> float:
    """Images/s that `kernel`'s approach allows on this CPU: its inner step (xor, popcount, add) run from
    registers on one core for `seconds`, times `threads`, over `words_per_image`. Memory, packing and
    thresholds are left out, so a kernel can only come near it."""
    return _require().probe(kernel, seconds) * threads / words_per_image(params)


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
        if params.spec.convolutional:
            raise NativeUnavailableError(f"the native runtime has no convolution kernels yet ({params.network})")
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
        layers = [
            (np.ascontiguousarray(layer.weights, dtype=np.uint8), np.ascontiguousarray(layer.effective_thresholds()))
            for layer in params.layers
        ]
        self._net = native.Network(
            layers, params.activation_bits, len(params.classes), PIXELS, kernel or "", list(params.pixel_thresholds)
        )
        self.kernel = self._net.kernel
        self.chunk = CHUNK[self.kernel]

    def run(self, images: np.ndarray, rule: str | None = None, *, scores: bool = True) -> Outputs:
        """Classes (and, with `scores`, accumulators and bits) of (N, 784) C-contiguous uint8 images."""
        rule = rule or self.params.decision
        classes, acc, bits = self._net.run(images, self.threads, rule == "argmax", scores)
        return Outputs(classes, acc, bits.view(bool))

    def close(self) -> None:
        self._net = None
