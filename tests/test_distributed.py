"""Dask: the same results as one process, in order, through a killed worker and a corrupt shard."""

from __future__ import annotations

import os
import pickle
import signal
import time

import numpy as np
import pytest
from conftest import IN_CI
from test_cli import _hide, run

distributed = pytest.importorskip("distributed") if not IN_CI else __import__("distributed")
import dask.array as da  # noqa: E402

import bnn  # noqa: E402
from bnn.distributed import Chunk, classify_files, plan  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    # distributed warns when a test's LocalCluster shuts down with tasks of a killed worker in flight.
    "ignore::ResourceWarning",
    "ignore:.*Sending large graph.*:UserWarning",
)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def shards(tmp_path_factory, mnist_test):
    folder = tmp_path_factory.mktemp("shards")
    images = mnist_test[0]
    raw = bnn.idx.write_idx(folder / "a-idx3-ubyte", np.concatenate([images, images[:3333]]))
    gz = bnn.idx.write_idx(folder / "b-idx3-ubyte.gz", images[::-1][:4000])
    return [raw, gz], np.concatenate([images, images[:3333], images[::-1][:4000]])


def test_results_in_input_order_as_one_process(client, shards, original):
    paths, images = shards
    clf = bnn.Classifier(original.network, original)
    result = classify_files(client, clf, paths, scores=True, chunk_images=3000)
    out = clf.infer(images)
    np.testing.assert_array_equal(result.classes, out.classes)
    np.testing.assert_array_equal(result.scores, out.scores)
    assert result.errors == [] and result.names[0] == f"{paths[0]}[0]" and len(result.names) == len(images)
    assert [c.size for c in plan(paths, chunk_images=3000)][:5] == [3000, 3000, 3000, 3000, 1333]


def test_a_killed_worker_loses_nothing(client, shards, original):
    paths, images = shards
    clf = bnn.Classifier(original.network, original)
    pids = client.run(os.getpid)
    seen, killed = [], []

    def kill_once(index, chunk, classes, scores):
        seen.append(index)
        if not killed:  # in the middle of the job: the other chunks are queued or running
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    result = classify_files(client, clf, paths, chunk_images=500, on_chunk=kill_once)
    assert killed and result.errors == []
    np.testing.assert_array_equal(result.classes, clf.predict(images))  # nothing lost, nothing duplicated
    assert seen == list(range(len(plan(paths, chunk_images=500))))  # each chunk delivered once, in order
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the tests after this one


def test_a_corrupt_shard_names_itself_and_keeps_the_rest(client, shards, original, tmp_path):
    paths, images = shards
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(paths[0].read_bytes()[: 16 + 784 * 2500])  # header says 13,333 images; 2,500 are there
    clf = bnn.Classifier(original.network, original)
    result = classify_files(client, clf, [paths[1], bad], chunk_images=3000)
    assert len(result.errors) == 5  # every chunk of the truncated file, each named with its image range
    assert result.errors[0].startswith(f"chunk {bad}[0:3000]: truncated: header declares 13333 items")
    assert result.errors[-1].startswith(f"chunk {bad}[12000:13333]: ")
    good = clf.predict(images[-4000:])
    np.testing.assert_array_equal(result.classes[:4000], good)  # the other shard's results are all there
    assert (result.classes[4000:] == -1).all()


def test_every_worker_killed_mid_job_still_gives_one_process_output(client, shards, original):
    # The classifier is a task, not scattered data: when no worker holds it any more, it is built again.
    paths, images = shards
    clf = bnn.Classifier(original.network, original)
    killed = []

    def kill_all_once(index, chunk, classes, scores):
        if not killed:
            for pid in client.run(os.getpid).values():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    result = classify_files(client, clf, paths, chunk_images=500, scores=True, on_chunk=kill_all_once)
    assert len(killed) == 2 and result.errors == []
    out = clf.infer(images)
    np.testing.assert_array_equal(result.classes, out.classes)
    np.testing.assert_array_equal(result.scores, out.scores)
    client.wait_for_workers(2, timeout=60)


def _tasks_on_scheduler(client) -> int:
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def test_results_are_released_as_they_are_consumed(client, shards, original):
    paths, images = shards
    clf = bnn.Classifier(original.network, original)
    held = []
    result = classify_files(
        client, clf, paths, chunk_images=500, window=3, on_chunk=lambda *_: held.append(_tasks_on_scheduler(client))
    )
    assert len(held) == len(plan(paths, chunk_images=500)) > 20
    # The window of chunks, the classifier and the one result just released (a release reaches the
    # scheduler asynchronously, so it may still be counted): bounded, whatever the input's length.
    assert max(held) <= 3 + 1 + 1
    for _ in range(50):  # releases reach the scheduler asynchronously
        if _tasks_on_scheduler(client) == 0:
            break
        time.sleep(0.1)
    assert _tasks_on_scheduler(client) == 0, client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
    np.testing.assert_array_equal(result.classes, clf.predict(images))


def test_a_gzip_file_is_one_chunk_read_in_pieces(shards, monkeypatch):
    raw, gz = shards[0]
    chunks = plan([raw, gz], chunk_images=3000)
    assert [(c.start, c.stop) for c in chunks if c.path == str(gz)] == [(0, 4000)]
    assert [(c.start, c.stop) for c in chunks if c.path == str(raw)][:2] == [(0, 3000), (3000, 6000)]
    reads = []
    real = bnn.idx.iter_images
    monkeypatch.setattr(bnn.idx, "iter_images", lambda *a, **k: reads.append(k) or real(*a, **k))
    from bnn.distributed import run_chunk

    clf = bnn.Classifier("lfcW1A1", "mnist")
    classes, _ = run_chunk(clf, chunks[-1], False, piece=1000)
    assert reads == [{"start": 0, "stop": 4000, "chunk_size": 1000}]  # one pass over the stream, 1,000 at a time
    np.testing.assert_array_equal(classes, clf.predict(shards[1][-4000:]))


def test_relative_paths_reach_workers_started_elsewhere(client, shards, original, tmp_path, monkeypatch):
    paths, images = shards
    monkeypatch.chdir(paths[0].parent)
    home = client.run(os.getcwd)
    client.run(os.chdir, str(tmp_path))  # the workers run in another folder
    try:
        clf = bnn.Classifier(original.network, original)
        result = classify_files(client, clf, [paths[0].name, paths[1].name], chunk_images=3000)
    finally:
        for cwd in set(home.values()):
            client.run(os.chdir, cwd)
    assert result.errors == [] and result.names[0] == f"{paths[0].name}[0]"  # named as given
    np.testing.assert_array_equal(result.classes, clf.predict(images))


def test_a_file_workers_cannot_see_is_named_with_the_reason(client, tmp_path, mnist_test):
    path = bnn.idx.write_idx(tmp_path / "gone-idx3-ubyte", mnist_test[0][:10])
    chunks = plan([path])
    path.unlink()  # as if the workers did not share this folder
    result = classify_files(client, bnn.Classifier("lfcW1A1", "mnist"), chunks)
    assert len(result.errors) == 1
    assert f"chunk {path}[0:10]: {path} not found on worker tcp://" in result.errors[0]
    assert "put them where every worker sees them at this path" in result.errors[0]


def test_a_corrupt_header_fails_its_own_file_only(client, shards, original, tmp_path):
    paths, images = shards
    bad = tmp_path / "bad-header-idx3-ubyte"
    bad.write_bytes(b"\x50\x4b\x03\x04" + bytes(100))  # a zip file, not IDX
    clf = bnn.Classifier(original.network, original)
    result = classify_files(client, clf, [bad, paths[1]], chunk_images=3000)
    assert result.errors == [f"{bad}: not an IDX file: magic number 50 4b 03 04 (an IDX file starts with 00 00)"]
    np.testing.assert_array_equal(result.classes, clf.predict(images[-4000:]))


def test_cli_takes_folders_of_idx_files_on_a_cluster(shards, original_dir, tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for p in shards[0]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "README.txt").write_text("not an input")
    alone = run("classify", folder, "-p", original_dir, "--csv").stdout
    assert alone.count("\n") == 1 + len(shards[1])
    assert run("classify", folder, "-p", original_dir, "--csv", "--scheduler", "local:2").stdout == alone


def test_classifier_pickles_as_its_parameters(original, mnist_test):
    clf = bnn.Classifier(original.network, original, decision="argmax")
    again = pickle.loads(pickle.dumps(clf))
    assert again.decision == "argmax" and again.kernel == clf.kernel
    np.testing.assert_array_equal(again.predict(mnist_test[0][:500]), clf.predict(mnist_test[0][:500]))
    assert len(pickle.dumps(clf)) < 4 * 2**20  # the unpacked weights (3.3 MB), no native handle


def test_predict_takes_a_dask_array(client, original, mnist_test):
    clf = bnn.Classifier(original.network, original)
    lazy = clf.predict(da.from_array(mnist_test[0], chunks=(1500, 28, 28)))
    assert isinstance(lazy, da.Array) and lazy.dtype == np.int32 and lazy.shape == (10000,)
    np.testing.assert_array_equal(lazy.compute(), clf.predict(mnist_test[0]))


def test_cli_on_a_local_cluster_prints_what_one_process_prints(shards, original_dir, tmp_path):
    paths = shards[0]
    for fmt in ([], ["--json"], ["--csv"]):
        alone = run("classify", *paths, "-p", original_dir, *fmt).stdout
        assert run("classify", *paths, "-p", original_dir, *fmt, "--scheduler", "local:2").stdout == alone
    npy = tmp_path / "out.npy"
    run("classify", *paths, "-p", original_dir, "--scheduler", "local:2", "--output", npy)
    expected = bnn.Classifier("lfcW1A1", original_dir / "lfcW1A1").predict(shards[1])
    np.testing.assert_array_equal(np.load(npy), expected)


def test_without_dask_the_error_says_what_to_install(shards, original_dir, tmp_path):
    proc = run(
        "classify",
        shards[0][0],
        "-p",
        original_dir,
        "--scheduler",
        "local:2",
        env=_hide(tmp_path, "distributed"),
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: clusters need Dask: pip install 'bitexact-bnn[dask]'"


def test_chunks_describe_themselves():
    assert Chunk("f", 3, 7).names() == ["f[3]", "f[4]", "f[5]", "f[6]"] and Chunk("f", 3, 7).describe() == "f[3:7]"


def test_cnv_batches_and_pictures_on_a_cluster_as_one_process(client, cifar_test, tmp_path):
    from conftest import PICTURES, need

    from bnn.formats import cifar

    batch = cifar.write_batch(tmp_path / "a.bin", cifar_test[0][:30], cifar_test[1][:30])
    picture = need(PICTURES / "deer.jpg")
    clf = bnn.Classifier("cnvW1A1", "cifar10", "reference")
    result = classify_files(client, clf, [batch, picture], chunk_images=8, scores=True)
    alone = clf.infer(np.concatenate([cifar_test[0][:30], clf.preprocess(picture)[None]]))
    assert result.errors == [] and result.names[-1] == str(picture) and result.names[0] == f"{batch}[0]"
    np.testing.assert_array_equal(result.scores, alone.scores)
    assert [c.stop - c.start for c in plan([batch], chunk_images=8, files=bnn.inputs.CIFAR)] == [8, 8, 8, 6]
