"""The bnn command through its real entry point, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bnn

BNN = Path(sys.executable).parent / "bnn"


def run(*args, env=None, check=True):
    cmd = [str(BNN)] if BNN.exists() else [sys.executable, "-m", "bnn"]
    proc = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def test_help_lists_commands():
    out = run("--help").stdout
    listed = out.split("Commands:")[1].splitlines()
    commands = {line.split()[0] for line in listed if line.strip()}
    assert commands == {"bench", "classify", "demo", "download", "evaluate", "export", "info", "params", "train"}
    assert "Usage: bnn classify" in run("classify", "--help").stdout


def test_classify_idx_json(original_dir, mnist_test, tmp_path):
    path = bnn.idx.write_idx(tmp_path / "three-idx3-ubyte", mnist_test[0][:3])
    out = run("classify", path, "-p", original_dir, "--json").stdout.splitlines()
    rows = [json.loads(line) for line in out]
    assert [r["class"] for r in rows] == mnist_test[1][:3].tolist()
    assert rows[0]["input"].endswith("three-idx3-ubyte[0]") and len(rows[0]["scores"]) == 10


def test_classify_png_and_folder(original_dir, mnist_test, tmp_path):
    from PIL import Image

    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(255 - mnist_test[0][i]).resize((84, 84)).save(folder / f"d{i}.png")
    out = run("classify", folder / "d0.png", folder, "-p", original_dir, "--csv").stdout.splitlines()
    assert out[0] == "input,class,label"
    assert [line.split(",")[1] for line in out[1:]] == [str(c) for c in mnist_test[1][[0, 0, 1, 2]]]
    table = run("classify", folder / "d1.png", "-p", original_dir).stdout
    assert table.splitlines()[1].split()[-1] == str(mnist_test[1][1])


def test_evaluate_with_plots(original_dir, tmp_path):
    plot = tmp_path / "cm.png"
    out = run(
        "evaluate", "-n", "lfcW1A2", "-p", original_dir, "--data", original_dir.parents[1] / "mnist", "--plot", plot
    ).stdout
    assert "accuracy: 9849/10000 = 98.49 %" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "cm-errors.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_prints_timing_and_accuracy(original_dir):
    out = run(
        "demo", "--data", original_dir.parents[1] / "mnist", env={"BNN_PARAMS_PATH": str(original_dir.parent)}
    ).stdout
    assert "Accuracy lfcW1A1: 98.40 %" in out and "Accuracy lfcW1A2: 98.49 %" in out
    assert out.count("usec per image") == 4 and out.count("Classification rate:") == 4


def test_params_show_and_convert(original_dir, tmp_path):
    out = run("params", "show", original_dir, "-n", "lfcW1A1").stdout
    assert "layer 0:   832 ->  1024  PE  32  SIMD  64" in out and "decision: highest_bit" in out
    run("params", "convert", original_dir / "lfcW1A1", tmp_path / "x" / "lfcW1A1", "--decision", "argmax")
    assert bnn.params.read_params(tmp_path / "x" / "lfcW1A1").decision == "argmax"


def test_errors_are_one_line(tmp_path):
    proc = run("classify", tmp_path / "missing-idx3-ubyte", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "missing-idx3-ubyte" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + bytes(5))
    proc = run("classify", bad, check=False)
    assert proc.returncode == 1 and "truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_usage_error_exit_code():
    assert run("classify", check=False).returncode == 2
    assert run("evaluate", "--network", "lfcW7A7", check=False).returncode == 2


@pytest.mark.skipif(not bnn.runtimes.native.is_available(), reason="native runtime not built")
def test_info_names_kernels():
    out = run("info").stdout
    assert f"kernels: {bnn.runtimes.native.available_kernels()}" in out
