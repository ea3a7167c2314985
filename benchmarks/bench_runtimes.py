"""Write BENCHMARKS.md: every runtime side by side, the machine's popcount bound, a 1,000,000-image file.

Run from the repository root with ../shared beside it:

    python benchmarks/bench_runtimes.py            # about 2 minutes on 2 cores

The runtime table is `bnn bench`'s (bnn/bench.py). The bound comes from
benchmarks/peak_popcount.cpp, compiled here with g++ when there is one: the
number of XOR + VPOPCNTQ + ADD triples per second this machine sustains,
divided by the triples one image needs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from baselines import all_baselines

from bnn.bench import run_benchmarks

HERE = Path(__file__).resolve().parent
# 512-bit words of weights x inputs per image: 832x1024 + 2 x 1024x1024 + 1024x64 bits. W1A2 costs the
# same count: its 3-level inputs take one VPTERNLOGQ (m & (w ^ s)) where W1A1 takes one XOR (bnn/bits.py).
TRIPLES = {"lfcW1A1": (832 * 1024 + 2 * 1024 * 1024 + 1024 * 64) // 512}
TRIPLES["lfcW1A2"] = TRIPLES["lfcW1A1"]


def popcount_bound(result) -> str:
    """The bound table, and how close the AVX-512 kernel on all cores comes to it."""
    if shutil.which("g++") is None:
        return "(no g++: bound not measured)\n"
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "peak"
        subprocess.run(
            [
                "g++",
                "-O2",
                "-std=c++17",
                "-mavx512f",
                "-mavx512vpopcntdq",
                "-pthread",
                str(HERE / "peak_popcount.cpp"),
                "-o",
                str(exe),
            ],
            check=True,
        )
        rates = {}
        for threads in (1, 2):
            runs = [
                subprocess.run([str(exe), str(threads)], capture_output=True, text=True, check=True).stdout
                for _ in range(3)
            ]
            values = sorted(float(re.search(r": ([0-9.e+]+) triples", r).group(1)) for r in runs)
            rates[threads] = values[1]
    lines = [
        "| threads | XOR+VPOPCNTQ+ADD triples/s (512-bit) | W1A1 bound, images/s | W1A2 bound, images/s |",
        "|---|---:|---:|---:|",
    ]
    for threads, rate in rates.items():
        lines.append(
            f"| {threads} | {rate:.3e} | {rate / TRIPLES['lfcW1A1']:,.0f} | {rate / TRIPLES['lfcW1A2']:,.0f} |"
        )
    lines.append("")
    for network, runtime, kernel, threads, rate, _ in result.rows:
        if runtime == "native" and kernel == "avx512" and threads in rates:
            bound = rates[threads] / TRIPLES[network]
            lines.append(
                f"- {network}, avx512, {threads} thread(s): {rate:,.0f} images/s = {100 * rate / bound:.0f} % of it"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    shared = HERE.parent.parent / "shared" / "data"
    result = run_benchmarks(
        data_dir=str(shared / "mnist"),
        params_dir=str(shared / "bnn-pynq-params" / "mnist"),
        cifar_batch=shared / "cifar10" / "test_batch_first932.bin",
        baselines=all_baselines(),
        big_file=True,
        log=lambda s: print(s, file=sys.stderr),
    )
    bound = popcount_bound(result)
    text = result.markdown + (
        "\n## The bound\n\n"
        f"One image is {TRIPLES['lfcW1A1']:,} 512-bit XOR+popcount+add steps, for W1A1 and W1A2 alike "
        "(W1A2's 3-level inputs take a VPTERNLOGQ in place of the XOR). What this machine sustains "
        "(benchmarks/peak_popcount.cpp, 16 independent accumulators in registers, median of 3):\n\n" + bound
    )
    (HERE.parent / "BENCHMARKS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
