"""The AVX-512 kernels, compiled against SIMDe and run on any x86-64: bit-exact with the reference."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the check builds x86 kernel files")
def test_avx512_kernels_are_exact_under_simde():
    if not IN_CI and not (Path("/usr/include/simde/x86/avx512.h").exists() and shutil.which("g++")):
        pytest.skip("no SIMDe headers here (tools/test-deps.sh installs libsimde-dev)")
    proc = subprocess.run(
        [str(ROOT / "tools" / "check_avx512.sh"), sys.executable], capture_output=True, text=True, timeout=1200
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for kernel in ("avx512", "avx512-bitslice"):
        ran = [line for line in lines if f"kernel {kernel}," in line]
        assert len(ran) >= 8 and all(line.endswith(": exact") for line in ran), proc.stdout
    if IN_CI:  # with ../shared: the whole MNIST test set, both original sets, on both AVX-512 kernels
        assert sum("mnist-lfcW1" in line and "kernel avx512" in line for line in lines) == 4
    assert not any("MISMATCH" in line for line in lines)
