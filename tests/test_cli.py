"""The bnn command through its real entry point, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CIFAR, MNIST, need

import bnn
from bnn.datasets import MNIST_FILES

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
    assert commands == {
        "bench",
        "classify",
        "demo",
        "download",
        "evaluate",
        "export",
        "info",
        "params",
        "serve",
        "train",
    }
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
    assert "pixels: bit p >= 128" in out
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


def test_a_damaged_gzip_stream_is_one_line(tmp_path):
    from test_idx import _bad_deflate

    bad = tmp_path / "damaged-idx3-ubyte.gz"
    bad.write_bytes(_bad_deflate())
    proc = run("classify", bad, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(f"Error: {bad}: corrupt gzip data: Error -3 while decompressing data")


def test_usage_error_exit_code():
    assert run("classify", check=False).returncode == 2
    assert run("evaluate", "--network", "lfcW7A7", check=False).returncode == 2


@pytest.mark.skipif(not bnn.runtimes.native.is_available(), reason="native runtime not built")
def test_info_names_kernels():
    out = run("info").stdout
    assert f"kernels: {bnn.runtimes.native.available_kernels()}" in out


def _hide(tmp_path, module: str) -> dict:
    """Environment in which `import module` fails as if it were not installed."""
    fake = tmp_path / "hidden" / module
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError('{module} hidden by the test')\n")
    return {"PYTHONPATH": str(fake.parent)}


def test_bench_does_not_overwrite_a_file_unasked(tmp_path):
    curated = tmp_path / "BENCHMARKS.md"
    curated.write_text("curated")
    proc = run("bench", "--quick", "--output", curated, check=False)
    assert proc.returncode == 1 and "BENCHMARKS.md exists" in proc.stderr and "--overwrite" in proc.stderr
    assert curated.read_text() == "curated"


def test_bench_quick_reports_every_runtime(original_dir, tmp_path):
    report = tmp_path / "BENCH.md"
    run("bench", "--quick", "--data", MNIST, "--params-dir", original_dir, "--cifar", need(CIFAR), "--output", report)
    text = report.read_text()
    kernels = ["numpy", *bnn.runtimes.native.available_kernels()]
    for network in ("lfcW1A1", "lfcW1A2", "cnvW1A1", "cnvW1A2", "cnvW2A2"):
        rows = [
            line for line in text.splitlines() if line.startswith((f"| {network} | reference", f"| {network} | native"))
        ]
        assert {row.split("|")[3].strip() for row in rows} == set(kernels)
        assert all(row.split("|")[9].strip() == "yes" for row in rows)  # every row exact
        natives = [row for row in rows if "| native |" in row]
        assert natives and all(row.split("|")[11].strip().endswith("%") for row in natives)  # beside its bound
        for row in natives:  # a bit-sliced kernel also beside its ISA's popcount (lookup) bound
            assert row.split("|")[12].strip().endswith("%") == ("-" in row.split("|")[3])
        assert f"- {network}: " in text  # its batch-1 latency
    assert "CNV rows: the 932 CIFAR-10 images of test_batch_first932.bin" in text


def test_download_then_demo_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    paths = run("download", "mnist", "--cache-dir", cache / "bnn", "--url", need(MNIST)).stdout.split()
    assert [Path(p).name for p in paths] == [f"{stem}.gz" for stem in MNIST_FILES]
    env = {"XDG_CACHE_HOME": str(cache), "BNN_DATA": ""}
    out = run("demo", env=env).stdout
    assert "Accuracy lfcW1A1:" in out and "Accuracy lfcW1A2:" in out


def test_missing_data_says_how_to_get_it(tmp_path):
    proc = run("demo", env={"XDG_CACHE_HOME": str(tmp_path), "BNN_DATA": ""}, check=False)
    assert proc.returncode == 1
    assert "t10k-images-idx3-ubyte[.gz] not found" in proc.stderr and "bnn download mnist" in proc.stderr
    assert "or run 'bnn demo --download'" in proc.stderr


def test_demo_downloads_when_asked(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "BNN_DATA": "", "BNN_MNIST_URL": str(need(MNIST))}
    out = run("demo", "--download", env=env).stdout
    assert "Accuracy lfcW1A1:" in out and (tmp_path / "bnn" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def test_evaluate_plot_without_matplotlib_is_a_clear_error(original_dir, tmp_path):
    proc = run(
        "evaluate",
        "-p",
        original_dir,
        "--data",
        MNIST,
        "--plot",
        tmp_path / "cm.png",
        env=_hide(tmp_path, "matplotlib"),
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "Error: plots need matplotlib: pip install 'bitexact-bnn[plot]'"


def test_train_then_export_through_the_cli_without_matplotlib(tmp_path):
    pytest.importorskip("torch")
    data = _tiny_idx_dataset(tmp_path / "data")
    out, export = tmp_path / "run", tmp_path / "export"
    trained = run(
        "train",
        "--data",
        data,
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--threads",
        "1",
        "--validation",
        "50",
        "--classes",
        data / "classes.txt",
        "--out",
        out,
        "--export",
        export,
        env=_hide(tmp_path, "matplotlib"),
    ).stdout
    assert f"exported {export}" in trained and "epoch" in trained
    assert not (out / "curves.png").exists()  # no matplotlib: no curves, but the set is written
    again = tmp_path / "again"
    assert run("export", out, again).stdout.strip() == f"wrote {again}"
    for f in export.iterdir():  # the command exports the same selected epoch, byte for byte
        assert (again / f.name).read_bytes() == f.read_bytes()


def test_export_of_a_folder_without_checkpoint_is_one_line(tmp_path):
    proc = run("export", tmp_path, tmp_path / "x", check=False)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == f"Error: {tmp_path / 'checkpoint.pt'}: no checkpoint in this folder (is it a training run folder?)"
    )


def test_evaluate_checks_labels_before_inference(original_dir, mnist_test, tmp_path):
    images = bnn.idx.write_idx(tmp_path / "i-idx3-ubyte", mnist_test[0][:5])
    labels = bnn.idx.write_idx(tmp_path / "l-idx1-ubyte", np.array([1, 2, 3, 4, 11], np.uint8))
    proc = run("evaluate", "-p", original_dir, "--images", images, "--labels", labels, check=False)
    assert proc.returncode == 1 and "label 11 but the parameter set has 10 classes" in proc.stderr
    assert "us per image" not in proc.stdout  # refused before anything was classified


def _tiny_idx_dataset(folder: Path) -> Path:
    """MNIST-named IDX files of 3 classes of bars, and their classes.txt."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for stem, n in (("train", 300), ("t10k", 60)):
        labels = rng.integers(0, 3, n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) < 0.1).astype(np.uint8) * 255
        for i, c in enumerate(labels):
            images[i, 4 + 7 * c : 8 + 7 * c, 4:24] = 220
        bnn.idx.write_idx(folder / f"{stem}-images-idx3-ubyte.gz", images)
        bnn.idx.write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", labels)
    (folder / "classes.txt").write_text("top\nmiddle\nbottom\n")
    return folder


def test_classify_on_the_torch_runtime_matches_native(original_dir, mnist_test, tmp_path):
    pytest.importorskip("torch")
    path = bnn.idx.write_idx(tmp_path / "five-idx3-ubyte", mnist_test[0][:5])
    native = run("classify", path, "-p", original_dir, "--json").stdout
    torch_rows = run("classify", path, "-p", original_dir, "--json", "--runtime", "torch", "--device", "cpu").stdout
    assert torch_rows == native  # classes, labels and scores alike


# --- CNV through the command line ---


@pytest.fixture(scope="module")
def cifar_small(tmp_path_factory, cifar_test):
    """A folder with a 40-record test batch (test_batch.bin) of the CIFAR-10 test images there are."""
    from bnn.formats import cifar

    folder = tmp_path_factory.mktemp("cifar")
    cifar.write_batch(folder / "test_batch.bin", cifar_test[0][:40], cifar_test[1][:40])
    return folder


def test_cnv_classify_a_batch_and_a_picture(cifar_small, cifar_test):
    from conftest import PICTURES, need

    batch = cifar_small / "test_batch.bin"
    rows = [
        json.loads(line)
        for line in run("classify", "-n", "cnvW1A2", "--runtime", "reference", batch, "--json").stdout.splitlines()
    ]
    out = bnn.Classifier("cnvW1A2", "cifar10", "reference").infer(cifar_test[0][:40])
    assert [r["class"] for r in rows] == out.classes.tolist() and rows[3]["scores"] == out.scores[3].tolist()
    assert rows[0]["input"] == f"{batch}[0]" and rows[0]["label"] == "Cat"
    picture = run("classify", "-n", "cnvW1A1", "--runtime", "reference", need(PICTURES / "deer.jpg"), "--csv").stdout
    assert picture.splitlines()[1].endswith(",4,Deer")
    signs = run(
        "classify", "-n", "cnvW1A1", "-p", "road-signs", "--runtime", "reference", PICTURES / "stop.jpg", "--csv"
    )
    assert signs.stdout.splitlines()[1].endswith(",14,Stop")


def test_cnv_demo_and_evaluate(cifar_small, cifar_test):
    out = run("demo", "cnv", "--data", cifar_small).stdout
    assert out.count("Classification rate:") == 3 and "Inference took" in out
    for network in ("cnvW1A1", "cnvW1A2", "cnvW2A2"):
        clf = bnn.Classifier(network, "cifar10", "reference", decision="positive_max")
        accuracy = 100 * np.mean(clf.predict(cifar_test[0][:40]) == cifar_test[1][:40])
        assert f"Accuracy {network}: {accuracy:.2f} %" in out
    report = run(
        "evaluate", "-n", "cnvW2A2", "--runtime", "reference", "--images", cifar_small / "test_batch.bin"
    ).stdout
    right = int(
        (bnn.Classifier("cnvW2A2", "cifar10", "reference").predict(cifar_test[0][:40]) == cifar_test[1][:40]).sum()
    )
    assert f"accuracy: {right}/40 = " in report and "Airplane" in report


def test_cnv_bad_inputs_are_one_line(tmp_path, cifar_small):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(3073 * 3 + 7))
    proc = run("classify", "-n", "cnvW1A1", "--runtime", "reference", bad, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "bad.bin: 9226 bytes is not a whole number of 3073-byte CIFAR-10 records" in proc.stderr
    proc = run("demo", "cnv", "--data", tmp_path / "missing", check=False)
    assert proc.returncode == 1 and "missing: not found; give a CIFAR-10 test batch" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run("demo", "cnv", "--data", tmp_path / "empty", check=False)
    assert proc.returncode == 1 and "empty: no CIFAR-10 test batch here" in proc.stderr
