"""Runtimes: the ways of computing a parameter set on images, and the one place that picks them.

"reference" (the original's RUNTIME_SW) is the numpy specification
(`bnn.runtimes.reference`); "native" (RUNTIME_HW) runs the C++ kernels
(`bnn.runtimes.native`); "torch" runs the same integer arithmetic on a
torch device (`bnn.runtimes.torch`: CUDA, MPS or CPU). Each follows the `Runtime` protocol
(`bnn.runtimes.base`); a new runtime is a module here plus one entry in
`RUNTIMES`.

Kernel choice: `kernel=`, else the environment variable ``BNN_KERNEL``,
else the fastest kernel this CPU runs. A named kernel that cannot run is
an error, whichever way it was named; only when nothing is named and the
extension is not built does "native" fall back to the reference (with a
RuntimeWarning).
"""

from __future__ import annotations

import os
import warnings

from ..errors import NativeUnavailableError, UnknownNameError
from .base import Outputs, Runtime

__all__ = ["RUNTIMES", "Outputs", "Runtime", "make_runtime", "requested_kernel"]

#: Runtime names accepted by `make_runtime`, with the original's names as aliases.
RUNTIMES = {
    "native": "native",
    "python_hw": "native",
    "reference": "reference",
    "python_sw": "reference",
    "torch": "torch",
}


def requested_kernel(kernel: str | None = None) -> str | None:
    """The kernel asked for: `kernel`, else ``BNN_KERNEL``, else None (the fastest available)."""
    return kernel or os.environ.get("BNN_KERNEL", "") or None


def make_runtime(
    params,
    runtime: str = "native",
    *,
    kernel: str | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> Runtime:
    """Build the runtime called `runtime` for `params`.

    `kernel` and `threads` apply to the native runtime (None: see the module
    docstring; every core); `device` to the torch runtime ("cpu", "cuda",
    "cuda:1", "mps"; None: the best one torch has).
    """
    try:
        kind = RUNTIMES[runtime]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown runtime {runtime!r}; known runtimes: {', '.join(sorted(RUNTIMES))}") from None
    if device is not None and kind != "torch":
        raise UnknownNameError(f"device={device!r} applies to the torch runtime, not {runtime!r}")
    if kind == "torch":
        from .torch import TorchRuntime

        return TorchRuntime(params, device=device)
    if kind == "native":
        from .native import NativeRuntime

        kernel = requested_kernel(kernel)
        try:
            return NativeRuntime(params, kernel=kernel, threads=threads)
        except NativeUnavailableError as exc:
            if kernel is not None:
                raise
            warnings.warn(f"{exc}; using the numpy reference runtime instead", RuntimeWarning, stacklevel=3)
    from .reference import ReferenceRuntime

    return ReferenceRuntime(params)
