"""The torch runtime on a GPU: exactness, images/s on the device and end to end, and the bound.

Run where CUDA is present (benchmarks/gpu_check.sh does it in one call of
the device tool). Uses the shipped mnist sets and generated images (MNIST
itself does not travel to the device machine); exactness is checked against
the numpy reference on 20,000 of them.

    python benchmarks/bench_torch_gpu.py [--out FILE.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

import bnn
from bnn.runtimes.reference import ReferenceRuntime
from bnn.runtimes.torch import pack_images

N = 1_000_000
# Multiply-accumulates of one image: 784x1024 (the 48 padding columns are a constant) + 2 x 1024x1024 + 1024x64.
MACS = 784 * 1024 + 2 * 1024 * 1024 + 1024 * 64


def timed(fn, runs: int = 5) -> float:
    """Median seconds of `runs` calls after a warm-up, the GPU synchronised around each."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def images(n: int, seed: int) -> np.ndarray:
    """Digit-like images: dark background, random bright strokes (so that outputs vary)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 784)) < 0.2).astype(np.uint8) * rng.integers(100, 256, (n, 784), dtype=np.uint8)
    return x


def int8_peak() -> float:
    """Sustained int8 tensor-core rate, MAC/s, of torch._int_mm on a large product."""
    a = torch.randint(-1, 2, (16384, 8192), dtype=torch.int8, device="cuda")
    b = torch.randint(-1, 2, (8192, 8192), dtype=torch.int8, device="cuda")
    return 16384 * 8192 * 8192 / timed(lambda: torch._int_mm(a, b))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 1
    name = torch.cuda.get_device_name()
    lines = [f"## torch runtime on {name} (torch {torch.__version__})", ""]
    host = images(N, 0)
    on_gpu = torch.from_numpy(host).cuda()
    peak = int8_peak()
    bandwidth_bytes = torch.cuda.get_device_properties(0).total_memory  # for the record only
    lines += [
        f"int8 tensor-core rate measured here: {peak / 1e12:.0f} TMAC/s; one image is {MACS / 1e6:.2f} M MACs, "
        f"so the compute bound is {peak / MACS / 1e6:.0f} M images/s.",
        "",
        "| network | input | images | images/s | us/image | vs FPGA | exact (20,000 vs reference) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for network in ("lfcW1A1", "lfcW1A2"):
        clf = bnn.Classifier(network, "mnist", "torch", device="cuda")
        sample = images(20_000, 1)
        ref = ReferenceRuntime(clf.params).run(sample)
        out = clf.infer(sample)
        exact = all((a == b).all() for a, b in zip(out, ref))
        cases = {
            "uint8 tensor already on the GPU": lambda c=clf: c.infer(on_gpu, as_tensors=True),
            "numpy on the host, packed bits uploaded": lambda c=clf: c.predict(host),
        }
        for label, fn in cases.items():
            seconds = timed(fn)
            rate = N / seconds
            lines.append(
                f"| {network} | {label} | {N:,} | {rate:,.0f} | {1e6 / rate:.4f} | {rate / 356_633:.1f}x | "
                f"{'yes' if exact else 'NO'} |"
            )
            print(lines[-1], file=sys.stderr)
    packed = pack_images(host[:1000])
    lines += [
        "",
        f"Upload per image: {packed.nbytes / 1000:.0f} bytes packed, 784 unpacked. "
        f"Device memory: {bandwidth_bytes / 2**30:.0f} GiB.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
