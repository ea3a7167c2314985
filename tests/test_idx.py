from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from bnn.errors import IdxError
from bnn.formats import idx


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((5, 3, 4)) * 100).astype(dtype)
    path = idx.write_idx(tmp_path / f"a-idx3{suffix}", arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = idx.read_idx(path)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("dtype", ["int16", "int32", "float32", "float64"])
def test_wide_types_come_back_in_native_order_even_when_mapping_is_asked(tmp_path, dtype):
    arr = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    back = idx.read_idx(idx.write_idx(tmp_path / "w-idx3", arr), mmap=True)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("dims", [(2**32 - 1, 2**32 - 1, 2**32 - 1), (2**31, 2**31, 4), (1 << 20, 1 << 20, 1 << 20)])
def test_absurd_headers_are_idx_errors(tmp_path, dims):
    # Sizes that wrap around in int64 must not look small: exact arithmetic, then IdxError.
    path = tmp_path / "absurd-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x0C, 3]) + np.array(dims, ">u4").tobytes() + b"\0" * 64)
    with pytest.raises(IdxError, match="truncated"):
        idx.read_idx(path)
    with pytest.raises(IdxError):
        idx.read_idx(path, mmap=True)


def test_memory_mapped_read(tmp_path):
    arr = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    path = idx.write_idx(tmp_path / "m-idx3-ubyte", arr)
    mapped = idx.read_idx(path, mmap=True)
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, arr)


def test_mnist_header(mnist_test):
    images, labels = mnist_test
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.max() == 9


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_iter_images_in_chunks(tmp_path, suffix):
    arr = np.random.default_rng(1).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    path = idx.write_idx(tmp_path / f"i{suffix}", arr)
    chunks = list(idx.iter_images(path, chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(chunks), arr)


def _write(path, data: bytes, compress=False):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


HEADER_3 = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_body(tmp_path, compress):
    path = _write(tmp_path / "t-idx3", HEADER_3 + bytes(28 * 28 + 5), compress)
    with pytest.raises(IdxError, match=r"t-idx3: truncated: .*2 items"):
        idx.read_images(path)


def test_header_declares_huge_count_without_allocating(tmp_path):
    header = bytes([0, 0, 8, 3]) + (2**32 - 1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = _write(tmp_path / "huge-idx3.gz", header + bytes(100), compress=True)
    with pytest.raises(IdxError, match="truncated"):
        idx.read_images(path)
    raw = _write(tmp_path / "huge-idx3", header + bytes(100))
    with pytest.raises(IdxError, match=r"declares 4294967295 items"):
        idx.read_images(raw)


def test_wrong_magic(tmp_path):
    path = _write(tmp_path / "x.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(IdxError, match=r"x.png: not an IDX file: magic number 89 50 4e 47"):
        idx.read_images(path)


def test_unknown_type(tmp_path):
    path = _write(tmp_path / "u", bytes([0, 0, 0x42, 1, 0, 0, 0, 0]))
    with pytest.raises(IdxError, match="unknown IDX element type 0x42"):
        idx.read_idx(path)


def test_images_must_be_uint8(tmp_path):
    path = idx.write_idx(tmp_path / "f-idx3", np.zeros((2, 28, 28), dtype=np.float32))
    with pytest.raises(IdxError, match=r"f-idx3: images must be unsigned bytes .*float32"):
        idx.read_images(path)


def test_images_must_be_28x28(tmp_path):
    path = idx.write_idx(tmp_path / "s-idx3", np.zeros((2, 32, 32), dtype=np.uint8))
    with pytest.raises(IdxError, match=r"s-idx3: expected images of 28x28 pixels.*\(2, 32, 32\)"):
        idx.read_images(path)


def test_empty_file(tmp_path):
    path = _write(tmp_path / "empty", b"")
    with pytest.raises(IdxError, match="empty: empty file"):
        idx.read_images(path)


def test_trailing_bytes(tmp_path):
    path = _write(tmp_path / "tr", HEADER_3 + bytes(2 * 784 + 3))
    with pytest.raises(IdxError, match="3 bytes after"):
        idx.read_images(path)


def test_corrupt_gzip(tmp_path):
    data = bytearray(gzip.compress(HEADER_3 + bytes(2 * 784)))
    data[-6] ^= 0xFF  # break the CRC
    path = _write(tmp_path / "bad.gz", bytes(data))
    with pytest.raises(IdxError, match="bad.gz: corrupt gzip"):
        idx.read_images(path)


def _bad_deflate() -> bytes:
    """A gzip file of 2 images whose deflate stream is damaged (zlib, not the gzip layer, notices)."""
    data = bytearray(gzip.compress(HEADER_3 + bytes(range(256)) * 6 + bytes(2 * 784 - 1536)))
    data[10] ^= 0xFF  # the first byte after gzip's 10-byte header: the first deflate block's header
    return bytes(data)


def test_corrupt_deflate_stream_is_an_idx_error(tmp_path):
    path = _write(tmp_path / "deflate.gz", _bad_deflate())
    for read in (idx.read_idx, idx.read_images, lambda p: list(idx.iter_images(p, chunk_size=1, start=1))):
        with pytest.raises(IdxError, match=r"deflate.gz: corrupt gzip data: .*invalid"):
            read(path)
    with pytest.raises(IdxError, match=r"upload.gz: corrupt gzip data"):
        idx.images_from_bytes(_bad_deflate(), "upload.gz")


def test_labels_reject_images(tmp_path):
    path = idx.write_idx(tmp_path / "l", np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(IdxError, match="expected labels"):
        idx.read_labels(path)


def test_unsupported_dtype_is_refused(tmp_path):
    with pytest.raises(ValueError, match="IDX cannot hold dtype complex128"):
        idx.write_idx(tmp_path / "c", np.ones(3, dtype=complex))


def test_write_interrupted_mid_body_keeps_the_old_file(tmp_path, monkeypatch):
    path = idx.write_idx(tmp_path / "keep", np.ones(3, dtype=np.uint8))
    before = path.read_bytes()
    real_fsync = os.fsync

    def fail_after_header(fd):  # the header and body are written; the failure comes before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", fail_after_header)
    with pytest.raises(KeyboardInterrupt):
        idx.write_idx(path, np.zeros(1000, dtype=np.uint8))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]  # no temporary file left
