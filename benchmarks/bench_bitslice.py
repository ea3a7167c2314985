"""A bit-sliced kernel against its ISA's popcount (lookup) kernel and that kernel's bound, interleaved.

On a shared VM the speed of a core drifts by tens of percent from one minute
to the next, so a ratio of two medians taken minutes apart says little. Here
each round measures, back to back, the bound of the lookup approach (its probe),
the bit-sliced kernel and the lookup kernel on the same images; the report is
the median over rounds of each rate and of each round's ratios.

    python benchmarks/bench_bitslice.py --data ../shared/data/mnist [--rounds 15] [--kernel avx2]
    python benchmarks/bench_bitslice.py --cifar ../shared/data/cifar10/test_batch_first932.bin --rounds 7  (CNV)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bnn.classifier import Classifier
from bnn.datasets import mnist_file
from bnn.formats import cifar, idx
from bnn.info import cpu_name
from bnn.original import fpga_rate
from bnn.params import find_params, read_params
from bnn.runtimes import native


def rate(classifier: Classifier, images: np.ndarray) -> float:
    """Images/s of one call."""
    start = time.perf_counter()
    classifier.predict(images)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MNIST folder (default: bnn's search)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--kernel", default="avx2", help="the lookup kernel; its bit-sliced one is KERNEL-bitslice")
    parser.add_argument("--cifar", default=None, help="a CIFAR-10 batch file: the CNV sets instead")
    args = parser.parse_args()
    lookup, sliced = args.kernel, f"{args.kernel}-bitslice"
    if args.cifar:
        images = cifar.read_batch(args.cifar)[0]
        networks, dataset, what = ("cnvW1A1", "cnvW1A2", "cnvW2A2"), "cifar10", "CIFAR-10 test images"
    else:
        images = idx.read_images(mnist_file("t10k-images-idx3-ubyte", args.data))
        networks, dataset, what = ("lfcW1A1", "lfcW1A2"), "mnist", "MNIST test images"
    images = np.ascontiguousarray(images.reshape(len(images), -1))
    threads = native.default_threads()
    print(f"CPU: {cpu_name()}, {threads} usable cores; {args.rounds} rounds of {len(images):,} {what}\n")
    print(
        f"| network | threads | {lookup} bound | {lookup} kernel | {sliced} kernel | sliced / {lookup} bound "
        f"| sliced / {lookup} kernel | vs FPGA |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for network in networks:
        params = read_params(find_params(network, dataset), network)
        for t in sorted({1, threads}):
            fast = Classifier(network, params, "native", kernel=sliced, threads=t)
            slow = Classifier(network, params, "native", kernel=lookup, threads=t)
            fast.predict(images), slow.predict(images)  # warm-up
            bounds, fasts, slows = [], [], []
            for round_ in range(args.rounds):
                bounds.append(native.bound(lookup, params, t, seconds=0.2))
                # Each kernel goes first in every other round: the one run right after the probe ran
                # as low as 0.6x its rate on a Zen 4 VM (BENCHMARKS.md), an order bias of its own.
                pair = [(fasts, fast), (slows, slow)][:: 1 if round_ % 2 == 0 else -1]
                for rates, classifier in pair:
                    rates.append(rate(classifier, images))
            of_bound = statistics.median(f / b for f, b in zip(fasts, bounds))
            of_lookup = statistics.median(f / s for f, s in zip(fasts, slows))
            fast_rate = statistics.median(fasts)
            print(
                f"| {network} | {t} | {statistics.median(bounds):,.0f} | {statistics.median(slows):,.0f} | "
                f"{fast_rate:,.0f} | {of_bound:.2f} | {of_lookup:.2f} | {fast_rate / fpga_rate(network):.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
