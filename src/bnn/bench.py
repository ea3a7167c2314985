"""Benchmark of every runtime side by side, written as a Markdown report (BENCHMARKS.md).

Rows: the numpy reference, each native kernel at 1 thread and at all
threads (batch 10,000 from a uint8 array in memory; the CNV networks on the
CIFAR-10 test images given, when given), the torch runtime, batch-1 latency
from Python, and any `baselines` the caller passes (benchmarks/bench_runtimes.py
adds PyTorch and onnxruntime running the same network as float32 matrix
products; they are not part of the installed package). Every figure is the median of several
runs made in this one process; every row's classes are checked against the
reference. ``bnn bench`` runs it; so does ``benchmarks/bench_runtimes.py``.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .classifier import Classifier
from .datasets import mnist_file
from .formats import cifar, idx
from .info import cpu_name
from .original import ORIGINAL, fpga_rate
from .params import CNV_NETWORKS, LFC_NETWORKS, find_params, read_params
from .runtimes import native
from .runtimes.reference import ReferenceRuntime
from .runtimes.torch import available_devices, torch_threads

__all__ = ["BenchResult", "run_benchmarks"]


def _median_rate(fn: Callable[[], object], n_images: int, runs: int) -> tuple[float, list[float]]:
    """Median images/s of `runs` timed calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times), times


def _row(network, runtime, kernel, threads, fn, images, expected, runs, log) -> tuple:
    """Measure `fn` on `images`; the row (network, runtime, kernel, threads, images/s, exact)."""
    rate, _ = _median_rate(lambda: fn(images), len(images), runs)
    exact = bool((np.asarray(fn(images)) == expected[: len(images)]).all())
    log(f"{network:8} {runtime:10} {kernel:9} {threads!s:>3} threads: {rate:12,.0f} images/s")
    return (network, runtime, kernel, threads, rate, exact)


def _peak_rss_reset() -> bool:
    """Reset the peak resident set size (Linux: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _big_file_memory(clf: Classifier, images: np.ndarray, log) -> str:
    """Classify a generated 1,000,000-image IDX file; report time and extra peak memory."""
    n = 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big-idx3-ubyte"
        with open(path, "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + np.array([n, 28, 28], ">u4").tobytes())
            for start in range(0, n, len(images)):
                f.write(images[: min(len(images), n - start)].tobytes())
        size_mb = path.stat().st_size / 2**20
        log(f"classifying {path.name} ({size_mb:.0f} MiB) ...")
        if not _peak_rss_reset():
            return "(peak memory cannot be measured on this OS)\n"
        before = _rss_kib("VmRSS")
        start = time.perf_counter()
        classes = clf.predict_file(path)
        seconds = time.perf_counter() - start
        peak = _rss_kib("VmHWM")
        expected = np.tile(clf.predict(images), n // len(images) + 1)[:n]
        exact = bool((classes == expected).all())
    extra_mib = (peak - before) / 1024
    return (
        f"| images | file size | wall time (read + classify) | peak memory above the start | results/file |\n"
        f"|---|---|---|---|---|\n"
        f"| {n:,} | {size_mb:.0f} MiB | {seconds:.2f} s ({n / seconds:,.0f} images/s) | "
        f"{extra_mib:.1f} MiB (the classes array alone is {n * 4 / 2**20:.1f} MiB) | "
        f"{'identical to in-memory' if exact else 'MISMATCH'} |\n"
    )


class BenchResult(NamedTuple):
    """rows: (network, runtime, kernel, threads, images/s, exact); latency: network -> (us, kernel)."""

    rows: list
    latency: dict
    markdown: str


def run_benchmarks(
    *,
    data_dir: str | None = None,
    params_dir: str | None = None,
    cifar_batch: str | os.PathLike | None = None,
    baselines: dict | None = None,
    quick: bool = False,
    big_file: bool = False,
    log=print,
) -> BenchResult:
    """Run the benchmarks; the result holds the measurements and the Markdown report.

    data_dir: the MNIST folder (None: `bnn.datasets.mnist_file`'s search).
    params_dir: a folder holding lfcW1A1/ and lfcW1A2/ (None: the shipped mnist sets).
    cifar_batch: a CIFAR-10 batch file for the CNV networks' rows (the shipped cifar10 sets); None:
        no CNV rows.
    baselines: name -> factory(params, threads) returning a function from
        (N, 784) uint8 images to classes by argmax, or None when it cannot run here (LFC rows only).
    """
    images = idx.read_images(mnist_file("t10k-images-idx3-ubyte", data_dir))
    runs = 3 if quick else 5
    threads = native.default_threads()
    rows, latency, bounds = [], {}, {}
    flat = np.ascontiguousarray(images.reshape(len(images), 784))
    for network in LFC_NETWORKS:
        folder = Path(params_dir) / network if params_dir else find_params(network, "mnist")
        _network_rows(read_params(folder, network), flat, runs, quick, baselines, log, rows, bounds, latency)
    cnv_images = 0
    if cifar_batch is not None:
        batch = cifar.read_batch(cifar_batch)[0]
        cnv_images = len(batch)
        flat = np.ascontiguousarray(batch.reshape(cnv_images, -1))
        for network in CNV_NETWORKS:
            _network_rows(
                read_params(find_params(network, "cifar10"), network),
                flat,
                runs,
                quick,
                None,
                log,
                rows,
                bounds,
                latency,
            )
    memory = ""
    if big_file and native.is_available():
        params = read_params(Path(params_dir) / "lfcW1A1" if params_dir else find_params("lfcW1A1", "mnist"))
        memory = _big_file_memory(Classifier("lfcW1A1", params), images, log)
    report = _report(rows, latency, bounds, threads, runs, params_dir, memory, cifar_batch, cnv_images)
    return BenchResult(rows, latency, report)


def _network_rows(params, flat, runs, quick, baselines, log, rows, bounds, latency) -> None:
    """One network's rows (appended to `rows`), its kernels' bounds and its batch-1 latency."""
    if quick and params.spec.convolutional:
        flat = flat[:128]  # the reference runs a CNV image in ~4 ms, the portable kernels in ~1 ms
    network, n, threads = params.network, len(flat), native.default_threads()
    reference = ReferenceRuntime(params)
    expected = reference.run(flat).classes
    rows.append(
        _row(network, "reference", "numpy", "BLAS", lambda x, r=reference: r.run(x).classes, flat, expected, 3, log)
    )
    for kernel in native.available_kernels():
        for t in sorted({1, threads}):
            clf = Classifier(network, params, "native", kernel=kernel, threads=t)
            count = n if not kernel.startswith("portable") or not quick else min(n, 2000)
            rows.append(_row(network, "native", kernel, t, clf.predict, flat[:count], expected, runs, log))
            bounds[(network, kernel, t)] = native.bound(kernel, params, t, seconds=0.3 if quick else 1.0)
            log(f"{network:8} {kernel:13} bound of its approach: {bounds[(network, kernel, t)]:12,.0f} images/s")
    for device in available_devices():
        clf = Classifier(network, params, "torch", device=device)
        t = torch_threads() if device == "cpu" else "-"
        rows.append(_row(network, "torch", clf.kernel, t, clf.predict, flat, expected, runs, log))
    if native.is_available():
        clf = Classifier(network, params, "native")
        one = flat[:1]
        calls = (200 if quick else 2000) if params.spec.convolutional else (2000 if quick else 20000)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            clf.predict(one)
            times.append(time.perf_counter() - start)
        latency[network] = (statistics.median(times) * 1e6, clf.kernel)
        log(f"{network:8} batch-1 latency: {latency[network][0]:.2f} us ({clf.kernel})")
    # The float baselines decide by argmax of the last layer's accumulators.
    expected_argmax = reference.run(flat, "argmax").classes if baselines else None
    for name, factory in (baselines or {}).items():
        run = factory(params, threads)
        if run is not None:
            rows.append(_row(network, name, "fp32", threads, run, flat, expected_argmax, runs, log))


def _report(rows, latency, bounds, threads, runs, params_dir, memory: str, cifar_batch, cnv_images: int) -> str:
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} logical cores ({threads} usable), {platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, torch {torch_version}. "
        f"Native kernels on this CPU: {', '.join(native.available_kernels()) or 'none (not built)'}.",
        f"Parameters: {params_dir or 'shipped mnist sets'}. Input: the 10,000 MNIST test images as a uint8 array "
        f"in memory, one call per run"
        + (
            f"; CNV rows: the {cnv_images:,} CIFAR-10 images of {Path(cifar_batch).name} with the shipped cifar10 sets"
            if cnv_images
            else ""
        )
        + f"; figures are the median of {runs} runs after a warm-up, all in one process. "
        "'exact' = same classes as the numpy reference on every image (for the float baselines, which "
        "decide by argmax, the reference with the argmax rule). 'bound' = the images/s that the kernel's own "
        "approach allows here: its inner step (xor, popcount, accumulate; for a bit-sliced kernel, table "
        "reads and carry-save adds over a table in L1) run on one core (`bnn.runtimes.native.bound`, measured "
        "in this run) times the threads, over the 64-bit weight words one image meets. 'of lookup bound': a "
        "bit-sliced kernel's rate over the bound of its ISA's popcount kernel (avx2-bitslice: avx2's). "
        "A CNV image meets 905,216 weight words (W2A2: twice, its 2-bit weights as two binary rows); "
        "its layer 0's 8-bit sums are outside the bound, and a bit-sliced kernel's last block of a batch "
        "may be partial (932 images: 3 blocks of 256 and one of 164), at the cost of a whole one.",
        "",
        "| network | runtime | kernel | threads | images/s | us/image | vs FPGA | vs PyTorch | exact "
        "| bound | of bound | of lookup bound |",
        "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    torch_rate = {r[0]: r[4] for r in rows if r[1].startswith("PyTorch")}
    for network, runtime, kernel, t, rate, exact in rows:
        vs_torch = f"{rate / torch_rate[network]:.1f}x" if network in torch_rate else "-"
        lines.append(
            f"| {network} | {runtime} | {kernel} | {t} | {rate:,.0f} | {1e6 / rate:.3f} | "
            f"{rate / fpga_rate(network):.2f}x | {vs_torch} | {'yes' if exact else 'NO' if exact is False else '-'} | "
            + (f"{b:,.0f} | {rate / b:.0%} |" if (b := bounds.get((network, kernel, t))) else "- | - |")
            + (
                f" {rate / lb:.0%} |"
                if "-" in kernel and (lb := bounds.get((network, kernel.split("-")[0], t)))
                else " - |"
            )
        )
    lines += ["", "Batch-1 latency from Python (`Classifier.predict` on one image, median of many calls):", ""]
    for network, (us, kernel) in latency.items():
        lines.append(f"- {network}: {us:.2f} us ({kernel})")
    lines += [
        "",
        "The original on a PYNQ-Z1 board (its notebook):",
        "",
        "| network | runtime | us/image | images/s |",
        "|---|---|---:|---:|",
    ]
    networks = {row[0] for row in rows}
    for figure in ORIGINAL:
        if figure.network in networks:
            lines.append(
                f"| {figure.network} | {figure.runtime} | {figure.usec_per_image:,.2f} | {figure.images_per_s:,.2f} |"
            )
    if memory:
        lines += [
            "",
            "Classifying a large IDX file (chunks of 65,536 images; memory independent of file size):",
            "",
            memory,
        ]
    return "\n".join(lines) + "\n"
