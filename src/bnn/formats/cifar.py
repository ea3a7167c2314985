"""CIFAR-10 batch files, the CNV networks' input: binary batches and the python (pickle) ones.

A binary batch (``test_batch.bin`` of ``cifar-10-binary.tar.gz``) is a
sequence of 3,073-byte records: 1 label byte, then the 1,024 red, 1,024
green and 1,024 blue bytes of a 32x32 picture, each plane row major. A
python batch (``test_batch`` of ``cifar-10-python.tar.gz``) is a pickled
dict with ``data`` (N, 3072) uint8 in the same plane order and ``labels``;
it is read with a restricted unpickler that builds nothing but plain
containers and numpy arrays.

Images come back as (N, 32, 32, 3) uint8, height x width x channel (RGB),
the layout numpy and Pillow use and the one `bnn.Classifier` takes.

    >>> from bnn.formats import cifar
    >>> images, labels = cifar.read_batch("test_batch.bin")     # (N, 32, 32, 3), (N,)
    >>> for images, labels in cifar.iter_batch("huge.bin", chunk_size=65536): ...

Errors are `bnn.errors.CifarError` naming the file and the problem.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from ..errors import CifarError

__all__ = [
    "RECORD",
    "count_images",
    "images_from_bytes",
    "is_batch_name",
    "is_binary",
    "iter_batch",
    "read_batch",
    "records_to_images",
    "write_batch",
]

SIDE, CHANNELS = 32, 3
#: Bytes of one binary record: the label, then the three colour planes.
RECORD = 1 + SIDE * SIDE * CHANNELS
# A pickled batch larger than this is not a CIFAR batch (the real ones are 31 MB).
_MAX_PICKLE = 1 << 30


def records_to_images(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3073) uint8 records -> (images (N, 32, 32, 3) uint8 HWC, labels (N,) uint8)."""
    planes = records[:, 1:].reshape(len(records), CHANNELS, SIDE, SIDE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), records[:, 0].copy()


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"  # pickle protocol 2+ opcode; a binary batch starts with a label 0..9


def _check_binary_size(path: Path) -> int:
    size = path.stat().st_size
    if size == 0 or size % RECORD:
        whole = size // RECORD
        raise CifarError(
            f"{path}: {size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
            f"(1 label byte + 3,072 pixel bytes; {whole} whole records and {size - whole * RECORD} bytes over)"
        )
    return size // RECORD


def count_images(path: str | os.PathLike) -> int:
    """Images in a CIFAR-10 batch file (a binary batch's size is checked, nothing more is read)."""
    path = Path(path)
    if path.is_dir():
        raise CifarError(f"{path}: is a folder, not a CIFAR-10 batch file")
    return len(_read_pickle(path)[1]) if _is_pickle(path) else _check_binary_size(path)


def is_batch_name(name: str) -> bool:
    """True for a CIFAR-10 batch file's name: ``*.bin`` (binary) or ``data_batch_*`` / ``test_batch`` (python)."""
    return name.lower().endswith(".bin") or name.startswith(("data_batch", "test_batch"))


def is_binary(path: str | os.PathLike) -> bool:
    """True for a binary batch (read in any range directly), False for a python (pickle) one."""
    return not _is_pickle(Path(path))


def iter_batch(
    path: str | os.PathLike, *, chunk_size: int = 65536, start: int = 0, stop: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (images (n, 32, 32, 3), labels (n,)) of records start..stop-1 in chunks of at most `chunk_size`.

    Memory is bounded by one chunk for binary batches (read from `start` by a
    seek); a python batch is read whole (the format has no other way).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    path = Path(path)
    if path.is_dir():
        raise CifarError(f"{path}: is a folder, not a CIFAR-10 batch file")
    if _is_pickle(path):
        images, labels = _read_pickle(path)
        n = len(images)
    else:
        n = _check_binary_size(path)
    stop = n if stop is None else stop
    if not 0 <= start <= stop <= n:
        raise CifarError(f"{path}: records {start}..{stop} asked for, but the file holds {n}")
    if _is_pickle(path):
        for s in range(start, stop, chunk_size):
            e = min(s + chunk_size, stop)
            yield images[s:e], labels[s:e]
        return
    with open(path, "rb") as f:
        f.seek(start * RECORD)
        for first in range(start, stop, chunk_size):
            count = min(chunk_size, stop - first)
            data = f.read(count * RECORD)
            if len(data) != count * RECORD:
                raise CifarError(f"{path}: ends early, at record {first + len(data) // RECORD} of {n}")
            yield records_to_images(np.frombuffer(data, dtype=np.uint8).reshape(count, RECORD))


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,) uint8) of a binary or python CIFAR-10 batch."""
    parts = list(iter_batch(path))
    if not parts:
        return np.zeros((0, SIDE, SIDE, CHANNELS), np.uint8), np.zeros(0, np.uint8)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class _BatchUnpickler(pickle.Unpickler):
    """Builds plain containers and numpy arrays only: a pickle naming anything else is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how protocol 2 carries bytes from Python 3: str -> bytes, nothing else
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to build {module}.{name}")


def _read_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.stat().st_size > _MAX_PICKLE:
        raise CifarError(f"{path}: {path.stat().st_size} bytes is far larger than a CIFAR-10 python batch")
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise CifarError(f"{path}: not a readable CIFAR-10 python batch: {exc}") from None
    if not isinstance(batch, dict):
        raise CifarError(f"{path}: a CIFAR-10 python batch is a dict, this pickle holds {type(batch).__name__}")
    get = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = get.get("data"), get.get("labels", get.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != RECORD - 1:
        raise CifarError(f"{path}: 'data' must be an (N, 3072) uint8 array")
    if labels is None or len(labels) != len(data):
        raise CifarError(f"{path}: 'labels' must hold one label per image ({len(data)})")
    records = np.empty((len(data), RECORD), np.uint8)
    records[:, 0] = np.asarray(labels, dtype=np.int64)
    records[:, 1:] = data
    return records_to_images(records)


def images_from_bytes(data: bytes, name: str = "CIFAR-10 data") -> np.ndarray:
    """(N, 32, 32, 3) uint8 images of a binary batch held in memory (e.g. a request body); python
    batches are not taken from memory (a pickle from elsewhere is not to be unpickled)."""
    if len(data) == 0 or len(data) % RECORD:
        raise CifarError(
            f"{name}: {len(data)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
            "(1 label byte + 3,072 pixel bytes)"
        )
    return records_to_images(np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD))[0]


def write_batch(path: str | os.PathLike, images: np.ndarray, labels=None) -> Path:
    """Write (N, 32, 32, 3) uint8 images (labels: (N,), default 0) as a binary batch, atomically."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != (SIDE, SIDE, CHANNELS):
        raise ValueError(f"expected (N, 32, 32, 3) uint8 images, got {images.dtype} {images.shape}")
    records = np.empty((len(images), RECORD), np.uint8)
    records[:, 0] = 0 if labels is None else np.asarray(labels, dtype=np.uint8)
    records[:, 1:] = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    path = Path(path)
    with atomic_write(path) as f:
        f.write(records.tobytes())
    return path
