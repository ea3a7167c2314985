"""Dask: the same results as one process, in order, through a killed worker and a corrupt shard."""

from __future__ import annotations

import os
import pickle
import signal

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
    assert result.errors[0].startswith(f"chunk {bad}[0:3000]: {bad}: truncated: header declares 13333 items")
    assert result.errors[-1].startswith(f"chunk {bad}[12000:13333]: ")
    good = clf.predict(images[-4000:])
    np.testing.assert_array_equal(result.classes[:4000], good)  # the other shard's results are all there
    assert (result.classes[4000:] == -1).all()


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
