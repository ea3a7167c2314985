"""Runtimes: the objects that run a parameter set on images.

A runtime is built from a `ParamSet` and has ``name``, ``kernel``,
``run(images, rule) -> Outputs`` for (N, P) uint8 images and ``close()``.
"reference" (RUNTIME_SW) is the numpy specification in `bnn.reference`;
"native" (RUNTIME_HW) is the C++ extension in `bnn.native`, which falls
back to the reference with a warning when the extension is not built.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .errors import NativeUnavailableError, UnknownNameError

__all__ = ["RUNTIMES", "Outputs", "make_runtime"]

#: Runtime names accepted by `make_runtime`, with the original's names as aliases.
RUNTIMES = {"native": "native", "python_hw": "native", "reference": "reference", "python_sw": "reference"}


class Outputs(NamedTuple):
    """Result of running a batch: classes (N,) int32, scores (N, C) int32, bits (N, C) bool."""

    classes: np.ndarray
    scores: np.ndarray
    bits: np.ndarray


def make_runtime(params, runtime: str = "native", *, kernel: str | None = None, threads: int | None = None):
    """Build the runtime called `runtime` for `params`.

    `kernel` and `threads` apply to the native runtime (None: the fastest
    kernel this CPU runs, or ``BNN_KERNEL``; all cores).
    """
    try:
        kind = RUNTIMES[runtime]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown runtime {runtime!r}; known runtimes: {', '.join(sorted(RUNTIMES))}") from None
    if kind == "native":
        from . import native

        try:
            return native.NativeRuntime(params, kernel=kernel, threads=threads)
        except NativeUnavailableError as exc:
            if kernel is not None:
                raise
            warnings.warn(f"{exc}; using the numpy reference runtime instead", RuntimeWarning, stacklevel=3)
    from .reference import ReferenceRuntime

    return ReferenceRuntime(params)
