"""Benchmark of every runtime side by side, written as a Markdown report (BENCHMARKS.md).

Rows: the numpy reference, each native kernel at 1 thread and at all
threads (batch 10,000 from a uint8 array in memory), batch-1 latency from
Python, and, when installed, PyTorch and onnxruntime running the same
network as float32 matrix products. Every figure is the median of several
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

from . import idx, native
from .classifier import Classifier
from .info import cpu_name
from .params import ParamSet, find_params, read_params
from .plot import ORIGINAL_USEC_PER_IMAGE
from .reference import ReferenceRuntime

__all__ = ["BenchResult", "run_benchmarks"]

FPGA_IMAGES_PER_S = 356_633.39


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


def _torch_runner(params: ParamSet, threads: int):
    """The network as float32 matrix products in PyTorch (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    weights = [torch.from_numpy(2.0 * layer.weights.T.astype(np.float32) - 1) for layer in params.layers]
    thresholds = [torch.from_numpy(_dot_thresholds(params, i)) for i in range(len(params.layers))]
    n_classes = len(params.classes)

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(images).float()
            x = torch.where(x >= 128, 1.0, -1.0)
            x = torch.nn.functional.pad(x, (0, weights[0].shape[0] - x.shape[1]), value=-1.0)
            for w, t in zip(weights[:-1], thresholds[:-1]):
                y = x @ w
                x = (
                    (y > t[:, 0]).float() * 2 - 1
                    if t.shape[1] == 1
                    else (y > t[:, 0]).float() + (y > t[:, 1]).float() - 1
                )
            return (x @ weights[-1])[:, :n_classes].argmax(dim=1).numpy()

    return run


def _dot_thresholds(params: ParamSet, i: int) -> np.ndarray:
    """Layer i's thresholds in signed dot-product units (W1A1: acc = (dot + MW) / 2)."""
    layer = params.layers[i]
    t = layer.effective_thresholds().astype(np.float32)
    return (2 * t - layer.mw).astype(np.float32) if params.activation_bits == 1 else t


def _onnx_runner(params: ParamSet, threads: int):
    """The network as float32 MatMul + Greater nodes in onnxruntime (None without it)."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    nodes, inits = [], []
    mw0 = params.layers[0].mw
    inits.append(numpy_helper.from_array(np.full((1, mw0 - 784), -1.0, np.float32), "pad"))
    inits.append(numpy_helper.from_array(np.array(127.5, np.float32), "half"))
    inits.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
    inits.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    nodes += [
        helper.make_node("Cast", ["images"], ["pf"], to=TensorProto.FLOAT),
        helper.make_node("Greater", ["pf", "half"], ["pb"]),
        helper.make_node("Cast", ["pb"], ["p01"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["p01", "two"], ["p02"]),
        helper.make_node("Sub", ["p02", "one"], ["pix"]),
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Slice", ["shape", "z0", "z1"], ["n"]),
        helper.make_node("Concat", ["n", "padw"], ["padshape"], axis=0),
        helper.make_node("Expand", ["pad", "padshape"], ["padx"]),
        helper.make_node("Concat", ["pix", "padx"], ["x0"], axis=1),
    ]
    inits += [
        numpy_helper.from_array(np.array([0], np.int64), "z0"),
        numpy_helper.from_array(np.array([1], np.int64), "z1"),
        numpy_helper.from_array(np.array([mw0 - 784], np.int64), "padw"),
    ]
    x = "x0"
    for i, layer in enumerate(params.layers):
        inits.append(numpy_helper.from_array(2.0 * layer.weights.T.astype(np.float32) - 1, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"y{i}"]))
        if i == len(params.layers) - 1:
            break
        t = _dot_thresholds(params, i)
        outs = []
        for k in range(t.shape[1]):
            inits.append(numpy_helper.from_array(t[:, k].copy(), f"t{i}_{k}"))
            nodes += [
                helper.make_node("Greater", [f"y{i}", f"t{i}_{k}"], [f"g{i}_{k}"]),
                helper.make_node("Cast", [f"g{i}_{k}"], [f"c{i}_{k}"], to=TensorProto.FLOAT),
            ]
            outs.append(f"c{i}_{k}")
        if len(outs) == 1:
            nodes += [
                helper.make_node("Mul", [outs[0], "two"], [f"m{i}"]),
                helper.make_node("Sub", [f"m{i}", "one"], [f"x{i + 1}"]),
            ]
        else:
            nodes += [
                helper.make_node("Add", outs, [f"m{i}"]),
                helper.make_node("Sub", [f"m{i}", "one"], [f"x{i + 1}"]),
            ]
        x = f"x{i + 1}"
    n_classes = len(params.classes)
    inits += [
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([n_classes], np.int64), "c1"),
    ]
    last = f"y{len(params.layers) - 1}"
    nodes += [
        helper.make_node("Slice", [last, "c0", "c1", "z1"], ["scores"]),
        helper.make_node("ArgMax", ["scores"], ["classes"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "lfc",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 784])],
        [helper.make_tensor_value_info("classes", TensorProto.INT64, ["N"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del onnx
    return lambda images: session.run(["classes"], {"images": images})[0]


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
    data_dir: str = "../shared/data/mnist",
    params_dir: str | None = None,
    quick: bool = False,
    big_file: bool = False,
    log=print,
) -> str:
    """Run the benchmarks; the result holds the measurements and the Markdown report."""
    images = idx.read_images(Path(data_dir) / "t10k-images-idx3-ubyte.gz")
    flat = np.ascontiguousarray(images.reshape(len(images), 784))
    n = len(flat)
    runs = 3 if quick else 5
    threads = native.default_threads()
    if params_dir is None:
        shared = Path("../shared/data/bnn-pynq-params/mnist")
        params_dir = str(shared) if shared.is_dir() else None
    rows, latency = [], {}
    for network in ("lfcW1A1", "lfcW1A2"):
        folder = Path(params_dir) / network if params_dir else find_params(network, "mnist")
        params = read_params(folder, network)
        reference = ReferenceRuntime(params)
        expected = reference.run(flat).classes
        # The float baselines decide by argmax of the last layer's accumulators.
        expected_argmax = reference.run(flat, "argmax").classes

        rows.append(
            _row(network, "reference", "numpy", "BLAS", lambda x, r=reference: r.run(x).classes, flat, expected, 3, log)
        )
        for kernel in native.available_kernels():
            for t in sorted({1, threads}):
                clf = Classifier(network, params, "native", kernel=kernel, threads=t)
                count = n if kernel != "portable" or not quick else 2000
                rows.append(_row(network, "native", kernel, t, clf.predict, flat[:count], expected, runs, log))
        if native.is_available():
            clf = Classifier(network, params, "native")
            one = flat[:1]
            calls = 2000 if quick else 20000
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                clf.predict(one)
                times.append(time.perf_counter() - start)
            latency[network] = (statistics.median(times) * 1e6, clf.kernel)
            log(f"{network:8} batch-1 latency: {latency[network][0]:.2f} us ({clf.kernel})")
        torch_run = _torch_runner(params, threads)
        if torch_run is not None:
            import torch

            name = "PyTorch " + torch.__version__.split("+")[0]
            rows.append(_row(network, name, "fp32", threads, torch_run, flat, expected_argmax, runs, log))
        onnx_run = _onnx_runner(params, threads)
        if onnx_run is not None:
            import onnxruntime

            name = "onnxruntime " + onnxruntime.__version__
            rows.append(_row(network, name, "fp32", threads, onnx_run, flat, expected_argmax, runs, log))
    memory = ""
    if big_file and native.is_available():
        params = read_params(Path(params_dir) / "lfcW1A1" if params_dir else find_params("lfcW1A1", "mnist"))
        memory = _big_file_memory(Classifier("lfcW1A1", params), images, log)
    return BenchResult(rows, latency, _report(rows, latency, threads, runs, params_dir, memory))


def _report(rows, latency, threads, runs, params_dir, memory: str) -> str:
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
        f"in memory, one call per run; figures are the median of {runs} runs after a warm-up, all in one process. "
        "'exact' = same classes as the numpy reference on every image (for the float baselines, which "
        "decide by argmax, the reference with the argmax rule).",
        "",
        "| network | runtime | kernel | threads | images/s | us/image | vs FPGA | vs PyTorch | exact |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    torch_rate = {r[0]: r[4] for r in rows if r[1].startswith("PyTorch")}
    for network, runtime, kernel, t, rate, exact in rows:
        vs_torch = f"{rate / torch_rate[network]:.1f}x" if network in torch_rate else "-"
        lines.append(
            f"| {network} | {runtime} | {kernel} | {t} | {rate:,.0f} | {1e6 / rate:.3f} | "
            f"{rate / FPGA_IMAGES_PER_S:.2f}x | {vs_torch} | {'yes' if exact else 'NO' if exact is False else '-'} |"
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
    for (network, runtime), us in ORIGINAL_USEC_PER_IMAGE.items():
        rate = FPGA_IMAGES_PER_S if "FPGA" in runtime else 1e6 / us  # the notebook's own rate, not 1/2.80 us
        lines.append(f"| {network} | {runtime} | {us:,.2f} | {rate:,.2f} |")
    if memory:
        lines += [
            "",
            "Classifying a large IDX file (chunks of 65,536 images; memory independent of file size):",
            "",
            memory,
        ]
    return "\n".join(lines) + "\n"
