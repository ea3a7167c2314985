"""Dask scale-out on this machine: 1 and 2 worker processes against the single-process native runtime.

Generates a sharded IDX set (3,000,000 images by default, 6 raw shards,
about 2.35 GB) from the MNIST test images in a temporary folder, then
classifies it three ways in one run, checks the three agree, and prints a
Markdown section for BENCHMARKS.md: images/s (median of 3), the cluster's
overhead per chunk, and each worker's peak memory.

    python benchmarks/bench_dask.py [--images 3000000] [--mnist ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import distributed
import numpy as np

import bnn
from bnn.distributed import CHUNK_IMAGES, Chunk, classify_files
from bnn.formats import idx
from bnn.info import cpu_name


def _median_seconds(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _folder_decoding(base: np.ndarray, count: int = 1797) -> str:
    """Decoding a folder of small PNGs (MNIST digits): one process against every core, same results."""
    from PIL import Image

    from bnn.formats.folders import decode

    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(count):
            files.append(Path(tmp) / f"{i:04d}.png")
            Image.fromarray(base[i]).save(files[-1])
        one = _median_seconds(lambda: decode(files, progress=False, workers=1))
        cores = os.cpu_count() or 1
        every = _median_seconds(lambda: decode(files, progress=False))
        same = bool((decode(files, progress=False, workers=1) == decode(files, progress=False)).all())
    return (
        f"Decoding a folder of {count:,} PNG digits (load_image: decode, crop, scale, centre): "
        f"{one:.2f} s in 1 process, {every:.2f} s in {cores} ({one / every:.2f}x), identical: {same}."
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=3_000_000)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--mnist", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    args = parser.parse_args()
    base = idx.read_images(Path(args.mnist) / "t10k-images-idx3-ubyte.gz")
    clf = bnn.Classifier("lfcW1A1", "mnist")
    lines = [f"## Dask scale-out ({cpu_name()}, {os.cpu_count()} cores, kernel {clf.kernel})", ""]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BNN_BENCH_TMP")) as tmp:
        per = args.images // args.shards
        paths = []
        for s in range(args.shards):
            path = Path(tmp) / f"shard-{s:03d}-idx3-ubyte"
            with open(path, "wb") as f:  # written in pieces: the generator's memory stays small too
                f.write(bytes([0, 0, 8, 3]) + np.array([per, 28, 28], ">u4").tobytes())
                for start in range(0, per, len(base)):
                    f.write(np.roll(base, s, axis=0)[: min(len(base), per - start)].tobytes())
            paths.append(path)
        total = per * args.shards
        size_gib = sum(p.stat().st_size for p in paths) / 2**30
        print(f"{total:,} images in {args.shards} shards, {size_gib:.2f} GiB", file=sys.stderr)

        expected = []
        single = _median_seconds(lambda: expected.__setitem__(slice(None), [clf.predict_file(p) for p in paths]))
        expected = np.concatenate(expected)
        rows = [("single process (predict_file per shard)", "-", single, True)]
        memory = {}
        for workers in (1, 2):
            with (
                distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                got = {}
                clf = bnn.Classifier("lfcW1A1", "mnist", threads=max(1, (os.cpu_count() or 1) // workers))
                classify_files(client, clf, paths[:1])  # warm-up: workers import and build the classifier
                client.run(_reset_peak)
                seconds = _median_seconds(lambda g=got, c=clf: g.__setitem__("r", classify_files(client, c, paths)))
                exact = bool((got["r"].classes == expected).all()) and not got["r"].errors
                rows.append((f"Dask LocalCluster, {workers} worker process(es)", workers, seconds, exact))
                memory[workers] = client.run(_peak_rss_mib)
                if workers == 2:  # the cluster's own cost per task: 400 chunks of one image each
                    tiny = [Chunk(str(paths[0]), i, i + 1) for i in range(400)]
                    classify_files(client, clf, tiny[:50])
                    overhead = _median_seconds(lambda c=clf, t=tiny: classify_files(client, c, t)) / len(tiny)
        lines += [
            f"{total:,} images in {args.shards} raw IDX shards ({size_gib:.2f} GiB), chunks of {CHUNK_IMAGES:,} "
            "images; median of 3 runs; 'exact' = the same classes as the single process.",
            "",
            "| how | workers | seconds | images/s | vs single process | exact |",
            "|---|---|---:|---:|---:|---|",
        ]
        for how, workers, seconds, exact in rows:
            lines.append(
                f"| {how} | {workers} | {seconds:.2f} | {total / seconds:,.0f} | {single / seconds:.2f}x | "
                f"{'yes' if exact else 'NO'} |"
            )
        lines += [
            "",
            f"Overhead per chunk (400 one-image chunks on 2 workers): {overhead * 1e3:.2f} ms.",
            "Peak resident memory per worker process: "
            + "; ".join(f"{w} worker(s): " + ", ".join(f"{v:.0f} MiB" for v in m.values()) for w, m in memory.items())
            + f" (the input is {size_gib:.2f} GiB).",
        ]
    lines += ["", _folder_decoding(base)]
    text = "\n".join(lines) + "\n"
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
