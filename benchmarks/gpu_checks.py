"""The torch runtime's exactness on a CUDA GPU, with nothing but torch and numpy: no pytest, no registry.

Runs from a plain copy of the checkout (``PYTHONPATH=src``): the shipped mnist sets against the numpy
reference on generated images, for batches of 0-31, 555 and 20,000 images (whole and short chunks, the
int8 path and the float path under 17 rows). Prints one line per check as it goes and a last line
``PASS: n of n checks`` or ``FAIL: ...``; exit status 0 or 1. benchmarks/gpu_check.sh runs it.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import bnn
from bnn.runtimes.reference import ReferenceRuntime
from bnn.runtimes.torch import TorchRuntime


def images(n: int, seed: int) -> np.ndarray:
    """Digit-like images: dark background, random bright strokes (so that outputs vary)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 784)) < 0.2).astype(np.uint8) * rng.integers(100, 256, (n, 784), dtype=np.uint8)


def main() -> int:
    if not torch.cuda.is_available():
        print("FAIL: no CUDA device (torch.cuda.is_available() is False)", flush=True)
        return 1
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}", flush=True)
    results = []
    for network in bnn.params.LFC_NETWORKS:
        params = bnn.params.read_params(bnn.params.package_params_dir() / "mnist" / network)
        reference = ReferenceRuntime(params)
        for n in [*range(32), 555, 20_000]:
            x = images(n, n)
            runtime = TorchRuntime(params, device="cuda")
            runtime.chunk = min(runtime.chunk, 4096)  # 20,000 images: whole chunks and a short last one
            out, ref = runtime.run(x), reference.run(x)
            exact = all(np.array_equal(a, b) for a, b in zip(out, ref))
            results.append(exact)
            if n in (0, 1, 16, 17, 31, 555, 20_000) or not exact:
                print(f"{network} {n:6d} images on {runtime.kernel}: {'exact' if exact else 'DIFFERENT'}", flush=True)
    passed = sum(results)
    verdict = "PASS" if passed == len(results) else "FAIL"
    print(f"{verdict}: {passed} of {len(results)} checks exact", flush=True)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
