"""Fuzzed inputs, concurrency, interruption, bounded memory, untouched user files."""

from __future__ import annotations

import _thread
import gzip
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import options, random_params, runtime_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bnn
from bnn.errors import BnnError, IdxError, ParamsError
from bnn.formats import idx
from bnn.params import read_params, write_params
from bnn.runtimes import native
from bnn.runtimes.reference import ReferenceRuntime

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_idx() -> bytes:
    return bytes([0, 0, 8, 3]) + np.array([3, 28, 28], ">u4").tobytes() + bytes(range(256)) * 9 + bytes(48)


@FUZZ
@given(data=st.binary(max_size=64), compress=st.booleans())
def test_idx_random_bytes(tmp_path, data, compress):
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(data) if compress else data)
    try:
        arr = idx.read_idx(path)
    except IdxError as exc:
        assert str(path) in str(exc)
    else:  # a file that reads is a whole IDX file: written back, it is the same bytes
        again = idx.write_idx(tmp_path / "again", arr)
        assert again.read_bytes() == data


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 2400), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 2400),
    # raw bytes mutated; mutated then compressed; or compressed then mutated (a damaged deflate stream)
    form=st.sampled_from(["raw", "gzip", "damaged-gzip"]),
)
def test_idx_mutated_images(tmp_path, flips, cut, form):
    data = _valid_idx()
    if form == "damaged-gzip":
        data = gzip.compress(data)
    data = bytearray(data)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    data = bytes(data[: max(cut, 0)] if cut < len(data) else data)
    path = tmp_path / "m-idx3"
    path.write_bytes(gzip.compress(data) if form == "gzip" else data)
    try:
        images = idx.read_images(path)
        chunks = list(idx.iter_images(path, chunk_size=2))
    except IdxError as exc:
        assert str(path) in str(exc)
    else:
        assert images.shape[1:] == (28, 28) and images.dtype == np.uint8
        np.testing.assert_array_equal(np.concatenate(chunks) if chunks else images, images)
    try:
        from_bytes = idx.images_from_bytes(path.read_bytes(), "body")
    except IdxError as exc:
        assert str(exc).startswith("body: ")
    else:
        np.testing.assert_array_equal(from_bytes, images)


@pytest.fixture(scope="module")
def small_params_dir(tmp_path_factory):
    params = random_params(np.random.default_rng(7), "lfcW1A2", (32, 64, 32), 10)
    return write_params(params, tmp_path_factory.mktemp("p") / "lfcW1A2")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_params_mutated_folder(small_params_dir, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("mut") / "lfcW1A2"
    folder.mkdir()
    names = sorted(p.name for p in small_params_dir.iterdir())
    for name in names:
        (folder / name).write_bytes((small_params_dir / name).read_bytes())
    victim = data.draw(st.sampled_from(names))
    action = data.draw(st.sampled_from(["delete", "truncate", "extend", "garbage"]))
    raw = (folder / victim).read_bytes()
    if action == "delete":
        (folder / victim).unlink()
    elif action == "truncate":
        (folder / victim).write_bytes(raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))])
    elif action == "extend":
        (folder / victim).write_bytes(raw + data.draw(st.binary(min_size=1, max_size=24)))
    else:
        (folder / victim).write_bytes(data.draw(st.binary(max_size=64)))
    try:
        params = read_params(folder)
    except ParamsError as exc:
        assert str(folder) in str(exc)
    else:  # a mutation that keeps the folder valid (e.g. other class names): it must still run
        ReferenceRuntime(params).run(np.zeros((2, 784), np.uint8))


@FUZZ
@given(data=st.binary(max_size=200))
def test_pictures_random_bytes(tmp_path, data):
    pytest.importorskip("PIL")
    from bnn.formats.images import load_image

    path = tmp_path / "p.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    try:
        digit = load_image(path)
    except BnnError as exc:
        assert str(path) in str(exc)
    else:
        assert digit.shape == (28, 28)


@pytest.mark.skipif(not native.is_available(), reason="native runtime not built")
@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(0, 5),
    cols=st.sampled_from([0, 1, 783, 784, 785, 1568]),
    dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.float32, np.float64, bool]),
    order=st.sampled_from(["C", "F", "strided"]),
    kernel=st.sampled_from(native.available_kernels() or ["portable"]),
    threads=st.integers(-3, 9),
)
def test_native_entry_point_fuzz(rows, cols, dtype, order, kernel, threads):
    params = random_params(np.random.default_rng(rows), "lfcW1A1", (32, 32, 32), 4)
    net = native._native.Network(native.extension_layers(params), 1, 4, 784, kernel)
    images = np.zeros((rows, cols * (2 if order == "strided" else 1)), dtype=dtype, order="F" if order == "F" else "C")
    if order == "strided":
        images = images[:, ::2]
    ok = dtype is np.uint8 and cols == 784 and (images.flags.c_contiguous)
    try:
        classes, scores, bits = net.run(images, threads, "highest_bit", True)
    except (TypeError, ValueError):
        assert not ok
    else:
        assert ok
        ref = ReferenceRuntime(params).run(images)
        np.testing.assert_array_equal(classes, ref.classes)


@pytest.mark.skipif(not native.is_available(), reason="native runtime not built")
@settings(max_examples=60, deadline=None)
@given(
    mh=st.lists(st.integers(-1, 300), min_size=0, max_size=5),
    mw0=st.integers(-1, 1000),
    nt=st.lists(st.integers(0, 3), min_size=5, max_size=5),
    classes=st.integers(-1, 80),
    bits=st.integers(0, 3),
)
def test_native_parameter_geometry_fuzz(mh, mw0, nt, classes, bits):
    layers, mw = [], mw0
    for i, h in enumerate(mh):
        layers.append(
            (np.ones((max(h, 0), max(mw, 0)), np.int8), np.zeros((max(h, 0), nt[i]), np.int32), (1, mw, 1, False))
        )
        mw = h
    try:
        net = native._native.Network(layers, bits, classes, 784)
    except (TypeError, ValueError):
        return
    out = net.run(np.zeros((3, 784), np.uint8), 2, "argmax", True)
    assert out[0].shape == (3,)


@pytest.mark.skipif(not native.is_available(), reason="native runtime not built")
@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(-1, 9),
    channels=st.lists(st.integers(-1, 70), min_size=1, max_size=4),
    kernels=st.lists(st.integers(-1, 10), min_size=4, max_size=4),
    pools=st.lists(st.booleans(), min_size=4, max_size=4),
    weight=st.integers(-3, 2),
    nt=st.integers(0, 3),
    bits=st.integers(0, 3),
    pixels=st.integers(-1, 300),
)
def test_native_convolution_geometry_fuzz(size, channels, kernels, pools, weight, nt, bits, pixels):
    # Any geometry of convolutions (chained or not) on 8-bit pixels: a ValueError or a run, never a crash.
    layers, side = [], size
    for i, (cin, cout) in enumerate(zip([3, *channels], channels)):
        k = kernels[i]
        mh, mw = max(cout, 0), max(k * k * cin, 0)
        layers.append((np.full((mh, mw), weight, np.int8), np.zeros((mh, nt), np.int32), (side, cin, k, pools[i])))
        side = (side - k + 1) // (2 if pools[i] else 1)
    try:
        net = native._native.Network(layers, bits, 2, pixels, "", [], 16)
    except (TypeError, ValueError):
        return
    out = net.run(np.full((3, pixels), 200, np.uint8), 2, "positive_max", True)
    assert out[0].shape == (3,)


@pytest.mark.parametrize(("name", "kernel"), runtime_ids())
def test_one_classifier_from_eight_threads(original, mnist_test, name, kernel):
    images = mnist_test[0][:3000]
    clf = bnn.Classifier(original.network, original, name, **options(name, kernel))
    serial = clf.infer(images)
    slices = [slice(i * 300, (i + 1) * 300 + 77) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: clf.infer(images[s]), slices * 2))
    for s, out in zip(slices * 2, results):
        np.testing.assert_array_equal(out.scores, serial.scores[s])
        np.testing.assert_array_equal(out.classes, serial.classes[s])


def test_several_classifiers_side_by_side(original_dir, mnist_test):
    images = mnist_test[0][:2000]
    clfs = [bnn.Classifier(n, original_dir / n, r) for n in ("lfcW1A1", "lfcW1A2") for r in ("native", "reference")]
    serial = [c.predict(images) for c in clfs]
    with ThreadPoolExecutor(len(clfs)) as pool:
        parallel = list(pool.map(lambda c: c.predict(images), clfs * 2))
    for expected, got in zip(serial * 2, parallel):
        np.testing.assert_array_equal(got, expected)


def _tasks() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
@pytest.mark.parametrize(("name", "kernel"), [("native", "portable"), ("reference", None)])
def test_ctrl_c_during_a_long_batch(original, name, kernel):
    if name == "native" and not native.is_available():
        pytest.skip("native runtime not built")
    clf = bnn.Classifier(original.network, original, name, **options(name, kernel))
    images = np.random.default_rng(0).integers(0, 256, (150_000, 784), dtype=np.uint8)  # tens of seconds of work
    clf.predict(images[:10])
    before = _tasks()
    # Python's own Ctrl-C handler, whatever started pytest: a shell that runs it in the background sets
    # SIGINT to "ignore", and interrupt_main then does nothing.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            clf.predict(images)
    finally:
        signal.signal(signal.SIGINT, previous)
    latency = time.perf_counter() - start - 0.5
    assert latency < 1.0, f"Ctrl-C took {latency:.2f} s"
    time.sleep(0.05)
    assert _tasks() <= before  # no stray native threads
    np.testing.assert_array_equal(clf.predict(images[:100]), ReferenceRuntime(original).run(images[:100]).classes)


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize(("name", "kernel"), [("reference", None), ("native", None)])  # None: the default kernel
def test_repeated_calls_do_not_grow_memory(original, mnist_test, name, kernel):
    clf = bnn.Classifier(original.network, original, name, **options(name, kernel))
    images = mnist_test[0][:4]
    calls = 10_000 if name == "native" else 1_000  # the reference is slow per call; it allocates only numpy arrays
    for _ in range(500):
        clf.infer(images)
    before = _rss_mib()
    for _ in range(calls):
        clf.infer(images)
    grown = _rss_mib() - before
    assert grown < 4, f"RSS grew {grown:.1f} MiB over {calls} calls"


def test_big_file_in_bounded_chunks(original, tmp_path, monkeypatch):
    images = np.random.default_rng(3).integers(0, 256, (5000, 28, 28), dtype=np.uint8)
    path = idx.write_idx(tmp_path / "big-idx3-ubyte", images)
    seen = []
    real = idx.iter_images
    monkeypatch.setattr(idx, "iter_images", lambda p, **how: (seen.append(len(c)) or c for c in real(p, **how)))
    clf = bnn.Classifier(original.network, original)
    classes = clf.predict_file(path, chunk_size=1024)
    assert seen == [1024] * 4 + [904]
    np.testing.assert_array_equal(classes, clf.predict(images))


def test_user_files_are_never_modified(original_dir, mnist_test, tmp_path):
    images_path = idx.write_idx(tmp_path / "in-idx3-ubyte", mnist_test[0][:50])
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in [images_path, *(original_dir / "lfcW1A1").iterdir()]}
    clf = bnn.LfcClassifier("lfcW1A1", original_dir / "lfcW1A1", verbose=False)
    clf.classify_mnists(images_path)
    clf.predict_file(images_path)
    for p, (data, mtime) in before.items():
        assert p.read_bytes() == data and p.stat().st_mtime_ns == mtime


def test_interrupted_write_leaves_the_old_set_whole(original, tmp_path, monkeypatch):
    target = tmp_path / "out" / original.network
    write_params(original, target)
    old = {p.name: p.read_bytes() for p in target.iterdir()}
    calls = {"n": 0}
    real_write = Path.write_bytes

    def failing_write(self, data):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    changed = random_params(np.random.default_rng(1), original.network, (1024, 1024, 1024), 10, 832, 64)
    with pytest.raises(KeyboardInterrupt):
        write_params(changed, target, overwrite=True)
    monkeypatch.undo()
    assert calls["n"] == 7  # interrupted part-way through the new files
    assert {p.name: p.read_bytes() for p in target.iterdir()} == old  # the old set, whole
    assert [p.name for p in target.parent.iterdir()] == [original.network]  # no temporary folder left
