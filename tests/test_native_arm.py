"""The NEON kernel, cross-compiled for aarch64 and run under qemu-user: bit-exact with the reference."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_neon_kernel_is_exact_under_qemu():
    if not IN_CI and not (shutil.which("aarch64-linux-gnu-g++") and shutil.which("qemu-aarch64")):
        pytest.skip("no aarch64 cross compiler / qemu-user here (tools/test-deps.sh installs them)")
    proc = subprocess.run(
        [str(ROOT / "tools" / "check_arm.sh"), sys.executable], capture_output=True, text=True, timeout=1200
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    neon = [line for line in lines if "kernel neon" in line]
    assert len(neon) >= 4 and all(line.endswith(": exact") for line in neon), proc.stdout
    assert not any("MISMATCH" in line for line in lines)
