"""What this installation runs: native extension, kernels, threads, CPU."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from .runtimes import native, requested_kernel

__all__ = ["cpu_name", "runtime_info"]


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def runtime_info(*, devices: bool = False) -> dict:
    """A dict: native (built?), kernels (fastest first), default_kernel and default_kernel_cnv_2bit (for
    convolutional networks with 2-bit activations, the rest run default_kernel; BNN_KERNEL honoured),
    threads, cpu, machine, and torch: its version ("not installed" without it). torch is not imported
    (it takes seconds) unless `devices` asks for the devices the torch runtime can use."""
    kernels = native.available_kernels()
    return {
        "native": native.is_available(),
        "kernels": kernels,
        "default_kernel": requested_kernel() or native.default_kernel(1) or "numpy",
        "default_kernel_cnv_2bit": requested_kernel() or native.default_kernel(2, convolutional=True) or "numpy",
        "threads": native.default_threads(),
        "cpu": cpu_name(),
        "machine": platform.machine(),
        "torch": _torch_devices() if devices else _torch_version(),
    }


def _torch_version() -> str:
    try:
        return version("torch")
    except PackageNotFoundError:
        return "not installed (the torch runtime needs it)"


def _torch_devices() -> str:
    from .runtimes.torch import available_devices, torch

    if torch is None:
        return "not installed (the torch runtime needs it)"
    return f"{torch.__version__}, devices: {', '.join(available_devices())}"
