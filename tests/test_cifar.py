"""CIFAR-10 batch files: binary and python batches, and every malformed one named."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bnn.errors import CifarError
from bnn.formats import cifar


def test_the_first_records_are_what_the_format_says(cifar_test):
    images, labels = cifar_test
    assert images.shape == (932, 32, 32, 3) and images.dtype == np.uint8
    assert labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the CIFAR-10 test set's first labels


def test_binary_round_trip_and_chunks(tmp_path, cifar_test):
    images, labels = cifar_test[0][:10], cifar_test[1][:10]
    path = cifar.write_batch(tmp_path / "b.bin", images, labels)
    assert path.stat().st_size == 10 * 3073
    raw = path.read_bytes()
    assert raw[1 : 1 + 1024] == images[0, :, :, 0].tobytes()  # the red plane of the first picture, row major
    back, back_labels = cifar.read_batch(path)
    np.testing.assert_array_equal(back, images)
    np.testing.assert_array_equal(back_labels, labels)
    chunks = list(cifar.iter_batch(path, chunk_size=4))
    assert [len(c[0]) for c in chunks] == [4, 4, 2] and cifar.count_images(path) == 10


def test_python_batch_reads_as_the_binary_one(tmp_path, cifar_test):
    images, labels = cifar_test[0][:7], cifar_test[1][:7]
    data = images.transpose(0, 3, 1, 2).reshape(7, 3072)
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"batch_label": b"testing", b"labels": labels.tolist(), b"data": data}, protocol=2))
    back, back_labels = cifar.read_batch(path)
    np.testing.assert_array_equal(back, images)
    np.testing.assert_array_equal(back_labels, labels)
    assert cifar.count_images(path) == 7


def test_a_pickle_that_builds_other_things_is_refused(tmp_path):
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"x": print}, protocol=2))
    with pytest.raises(
        CifarError, match=r"evil: not a readable CIFAR-10 python batch: refusing to build (__builtin__|builtins).print"
    ):
        cifar.read_batch(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            bytes(3073 * 2 + 5),
            r"6151 bytes is not a whole number of 3073-byte CIFAR-10 records .*2 whole records and 5",
        ),
        (b"", r"0 bytes is not a whole number"),
        (pickle.dumps([1, 2], protocol=2), r"a CIFAR-10 python batch is a dict, this pickle holds list"),
        (pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, protocol=2), r"'data' must be"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=2), r"'labels' must hold"),
        (pickle.dumps({b"data": 1}, protocol=2)[:-3], r"not a readable CIFAR-10 python batch"),
    ],
)
def test_malformed_batches_are_named(tmp_path, data, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    with pytest.raises(CifarError, match=f"bad.bin: {message}"):
        cifar.read_batch(path)
