"""Load test of `bnn serve` on loopback: requests/s, p50/p99 latency and errors, with and without batching.

Starts the server (uvicorn, one process) for each mode, then sends a fixed
number of PNG requests (MNIST test digits) from 16 and 64 concurrent
clients (asyncio + httpx2 in this process) and stops by itself. Prints a
Markdown section for BENCHMARKS.md.

    python benchmarks/bench_serve.py [--requests 10000] [--mnist ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
from PIL import Image

from bnn.formats import idx
from bnn.info import cpu_name


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(url: str, bodies: list[bytes], requests: int, concurrency: int):
    latencies, errors = [], 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker():
            nonlocal errors
            for i in counter:
                start = time.perf_counter()
                try:
                    reply = await client.post(
                        url, content=bodies[i % len(bodies)], headers={"Content-Type": "image/png"}
                    )
                    ok = reply.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    latencies.sort()
    return requests / seconds, latencies[len(latencies) // 2], latencies[int(0.99 * len(latencies))], errors


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--mnist", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    args = parser.parse_args()
    digits = idx.read_images(Path(args.mnist) / "t10k-images-idx3-ubyte.gz")[:500]
    bodies = [_png(d) for d in digits]
    lines = [
        f"## `bnn serve` under load ({cpu_name()}, {os.cpu_count()} cores; server and clients on the same machine)",
        "",
        f"{args.requests:,} POST /v1/classify requests per run (one MNIST digit as PNG each), lfcW1A1, native runtime.",
        "",
        "| batching | clients | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for batching in (True, False):
        port = _free_port()
        cmd = [sys.executable, "-m", "bnn", "serve", "--port", str(port), "-n", "lfcW1A1"]
        server = subprocess.Popen(cmd + ([] if batching else ["--no-batching"]), stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            url = f"http://127.0.0.1:{port}/v1/classify"
            for concurrency in (16, 64):
                rate, p50, p99, errors = asyncio.run(_load(url, bodies, args.requests, concurrency))
                lines.append(
                    f"| {'on' if batching else 'off'} | {concurrency} | {rate:,.0f} | {1e3 * p50:.1f} | "
                    f"{1e3 * p99:.1f} | {errors} |"
                )
                print(lines[-1], file=sys.stderr)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    text = "\n".join(lines) + "\n"
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
