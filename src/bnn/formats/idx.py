"""Read and write IDX files, the format of the MNIST data set.

An IDX file is a 4-byte magic number ``00 00 TT ND`` (TT the element type,
ND the number of dimensions), ND big-endian uint32 sizes, then the elements
in row-major order, big-endian. Files compressed with gzip are recognised by
their content (not their name) and read transparently; names ending in
``.gz`` are written compressed.

    >>> from bnn import idx
    >>> images = idx.read_images("t10k-images-idx3-ubyte.gz")   # (10000, 28, 28) uint8
    >>> labels = idx.read_labels("t10k-labels-idx1-ubyte.gz")   # (10000,) uint8
    >>> for chunk in idx.iter_images("huge-idx3-ubyte", chunk_size=65536): ...

Every malformed file raises `bnn.errors.IdxError` naming the file and the
problem; sizes are checked against what the file holds before any
allocation, so a corrupt header never makes a huge allocation.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from ..errors import IdxError

__all__ = [
    "DTYPES",
    "IdxHeader",
    "images_from_bytes",
    "is_gzip",
    "is_idx_images_name",
    "iter_images",
    "read_header",
    "read_idx",
    "read_images",
    "read_labels",
    "write_idx",
]

#: IDX type code -> big-endian numpy dtype.
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
# Below this many bytes a raw file is read into memory; above, memory-mapped.
_MMAP_THRESHOLD = 64 << 20
_READ_BLOCK = 1 << 20
# What a damaged gzip stream raises: OSError (bad CRC, header), EOFError (cut short), zlib.error (bad deflate data).
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def is_idx_images_name(name: str) -> bool:
    """True for a file name of IDX images by MNIST's convention (``train-images-idx3-ubyte[.gz]``)."""
    return "idx3" in name.lower()


class IdxHeader:
    """The parsed header of an IDX file: element dtype, shape and body offset (bytes)."""

    __slots__ = ("dtype", "offset", "path", "shape")

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...], offset: int):
        self.path = path
        self.dtype = dtype
        self.shape = shape
        self.offset = offset

    @property
    def nbytes(self) -> int:
        """Size of the body that the header declares, in bytes."""
        return math.prod(self.shape) * self.dtype.itemsize  # exact: Python integers do not wrap

    def __repr__(self) -> str:
        return f"IdxHeader({str(self.path)!r}, dtype={self.dtype.str}, shape={self.shape})"


def _open(path: Path):
    """Open `path` for binary reading, through gzip when its content starts with gzip's magic.

    Returns (file, is_gzip); the file is probed once, by content, not by name.
    """
    try:
        with open(path, "rb") as probe:
            gz = probe.read(2) == _GZIP_MAGIC
    except IsADirectoryError:
        raise IdxError(f"{path}: is a folder, not an IDX file") from None
    return (gzip.open(path, "rb") if gz else open(path, "rb")), gz


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file at `path` is gzip-compressed (by its content)."""
    f, gz = _open(Path(path))
    f.close()
    return gz


def _read_upto(f, n: int, path: Path) -> bytes:
    """Read up to n bytes, growing the buffer only as data arrives (no trust in n)."""
    parts = []
    got = 0
    try:
        while got < n:
            block = f.read(min(_READ_BLOCK, n - got))
            if not block:
                break
            parts.append(block)
            got += len(block)
    except _GZIP_ERRORS as exc:  # corrupt gzip stream
        raise IdxError(f"{path}: corrupt gzip data: {exc}") from None
    return b"".join(parts)


def _read_body(f, header: IdxHeader, n_bytes: int | None = None) -> bytes:
    """The body (or its next n_bytes); a clear IdxError when the file ends early."""
    if n_bytes is None:  # the whole body: its size comes from the header, so grow only as data arrives
        data = _read_upto(f, header.nbytes, header.path)
        if len(data) < header.nbytes:
            raise IdxError(_truncated(header, header.offset + len(data)))
        return data
    # A chunk of bounded size (iter_images): read straight into one buffer, no joined copy.
    buf = bytearray(n_bytes)
    view, got = memoryview(buf), 0
    try:
        while got < n_bytes:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
    except _GZIP_ERRORS as exc:
        raise IdxError(f"{header.path}: corrupt gzip data: {exc}") from None
    if got < n_bytes:
        raise IdxError(_truncated(header, header.offset + f.tell()))
    return buf


def _truncated(header: IdxHeader, held: int) -> str:
    n_items = header.shape[0]
    item = header.nbytes // n_items if n_items else 0
    whole = (held - header.offset) // item if item else 0
    return (
        f"{header.path}: truncated: header declares {n_items} items of shape {header.shape[1:]} "
        f"({header.offset + header.nbytes} bytes with the header) but the file holds {held} bytes "
        f"({whole} whole items)"
    )


def _parse_header(f, path: Path) -> IdxHeader:
    head = _read_upto(f, 4, path)
    if not head:
        raise IdxError(f"{path}: empty file (an IDX file needs at least an 8-byte header)")
    if len(head) < 4:
        raise IdxError(f"{path}: truncated: {len(head)} bytes, shorter than an IDX magic number")
    if head[0] != 0 or head[1] != 0:
        raise IdxError(f"{path}: not an IDX file: magic number {head.hex(' ')} (an IDX file starts with 00 00)")
    code, ndim = head[2], head[3]
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPES)
        raise IdxError(f"{path}: unknown IDX element type 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise IdxError(f"{path}: IDX header declares 0 dimensions")
    dims = _read_upto(f, 4 * ndim, path)
    if len(dims) < 4 * ndim:
        raise IdxError(f"{path}: truncated: the header of {ndim} dimensions needs {4 + 4 * ndim} bytes")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    return IdxHeader(path, DTYPES[code], shape, 4 + 4 * ndim)


def read_header(path: str | os.PathLike) -> IdxHeader:
    """Parse and return the header of the IDX file at `path` (raw or gzip)."""
    path = Path(path)
    f, _ = _open(path)
    with f:
        return _parse_header(f, path)


def read_idx(path: str | os.PathLike, *, mmap: bool | None = None) -> np.ndarray:
    """Read a whole IDX file into an array of its declared shape, native byte order.

    # Arguments
    path: the file, raw or gzip-compressed.
    mmap: memory-map an uncompressed file of single-byte elements instead
        of reading it (a read-only array). None (default) maps such files
        over 64 MiB. Wider elements are stored big-endian, so they are always
        read and converted: a map could not be in native order.

    # Raises
    IdxError: bad magic, unknown type, truncated body or trailing bytes.
    """
    path = Path(path)
    f, gz = _open(path)
    with f:
        header = _parse_header(f, path)
        if gz:
            body = _read_body(f, header)
            _check_gzip_end(f, header)
            arr = np.frombuffer(body, dtype=header.dtype)
        else:
            size = path.stat().st_size
            _check_raw_size(header, size)
            if mmap is None:
                mmap = size > _MMAP_THRESHOLD
            if mmap and header.dtype.itemsize == 1:
                if header.nbytes == 0:
                    arr = np.zeros(0, dtype=header.dtype)
                else:
                    arr = np.memmap(path, dtype=header.dtype, mode="r", offset=header.offset)
            else:
                arr = np.frombuffer(_read_body(f, header), dtype=header.dtype)
    arr = arr.reshape(header.shape)
    if not isinstance(arr, np.memmap):  # native byte order; no copy for single bytes
        arr = arr.astype(header.dtype.newbyteorder("="), copy=False)
    return arr


def _check_gzip_end(f, header: IdxHeader) -> None:
    """Reading past the body checks the gzip CRC and that nothing follows the body."""
    try:
        extra = f.read(1)
    except _GZIP_ERRORS as exc:
        raise IdxError(f"{header.path}: corrupt gzip data: {exc}") from None
    if extra:
        raise IdxError(f"{header.path}: has data after the {header.nbytes} bytes its header declares")


def _check_raw_size(header: IdxHeader, size: int) -> None:
    want = header.offset + header.nbytes
    if size < want:
        raise IdxError(_truncated(header, size))
    if size > want:
        raise IdxError(f"{header.path}: has {size - want} bytes after the {want} its header declares")


def _check_images_header(header: IdxHeader, size: tuple[int, int]) -> None:
    if header.dtype != np.dtype(">u1"):
        raise IdxError(
            f"{header.path}: images must be unsigned bytes (IDX type 0x08), "
            f"this file holds {header.dtype.name} (type 0x{_CODES[header.dtype.newbyteorder('=')]:02X})"
        )
    if len(header.shape) != 3 or header.shape[1:] != size:
        raise IdxError(
            f"{header.path}: expected images of {size[0]}x{size[1]} pixels (an IDX3 file of shape "
            f"(N, {size[0]}, {size[1]})), this file holds shape {header.shape}"
        )


def read_images(path: str | os.PathLike, *, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Read an IDX3 file of uint8 images, shape (N, 28, 28); errors name the file."""
    path = Path(path)
    _check_images_header(read_header(path), size)
    return read_idx(path)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX1 file of uint8 labels, shape (N,)."""
    path = Path(path)
    header = read_header(path)
    if header.dtype != np.dtype(">u1") or len(header.shape) != 1:
        raise IdxError(
            f"{path}: expected labels (IDX1 of unsigned bytes), found {header.dtype.name} of shape {header.shape}"
        )
    return read_idx(path)


def iter_images(
    path: str | os.PathLike,
    *,
    chunk_size: int = 65536,
    size: tuple[int, int] = (28, 28),
    start: int = 0,
    stop: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the images start..stop-1 of an IDX3 file in chunks of at most `chunk_size`, (n, 28, 28) uint8.

    Memory use is bounded by one chunk whatever the file size: raw files are
    read chunk by chunk from `start` (a seek), gzip files decompressed as a
    stream (the images before `start` are decompressed and skipped).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    path = Path(path)
    header = read_header(path)
    _check_images_header(header, size)
    n, pixels = header.shape[0], size[0] * size[1]
    stop = n if stop is None else stop
    if not 0 <= start <= stop <= n:
        raise IdxError(f"{path}: images {start}..{stop} asked for, but the file holds {n}")
    f, gz = _open(path)
    with f:
        if not gz:
            _check_raw_size(header, path.stat().st_size)
            f.seek(header.offset + start * pixels)
        else:
            _read_body(f, header, header.offset)  # past the header (a gzip stream cannot seek without reading)
            for skip in range(0, start, chunk_size):
                _read_body(f, header, min(chunk_size, start - skip) * pixels)
        for first in range(start, stop, chunk_size):
            count = min(chunk_size, stop - first)
            body = _read_body(f, header, count * pixels)
            yield np.frombuffer(body, dtype=np.uint8).reshape(count, *size)
        if gz and stop == n:
            _check_gzip_end(f, header)


def images_from_bytes(data: bytes, name: str = "IDX data", *, max_bytes: int = 1 << 30) -> np.ndarray:
    """(N, 28, 28) uint8 images of an IDX3 file held in memory (raw or gzip), e.g. a request body.

    A gzip body may expand to at most `max_bytes` (a decompression bomb is
    an IdxError, not an allocation).
    """
    if data[:2] == _GZIP_MAGIC:
        stream = gzip.GzipFile(fileobj=io.BytesIO(data))
        try:
            data = stream.read(max_bytes + 1)
        except _GZIP_ERRORS as exc:
            raise IdxError(f"{name}: corrupt gzip data: {exc}") from None
        if len(data) > max_bytes:
            raise IdxError(f"{name}: decompresses to more than {max_bytes} bytes")
    header = _parse_header(io.BytesIO(data), name)
    _check_images_header(header, (28, 28))
    _check_raw_size(header, len(data))
    return np.frombuffer(data, dtype=np.uint8, offset=header.offset).reshape(header.shape)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write `array` as an IDX file (atomically); gzip when `compress` or the name ends in .gz.

    The element type follows the array's dtype (uint8, int8, int16, int32,
    float32, float64); any other dtype raises ValueError.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}; use one of uint8, int8, int16, int32, float32, float64")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    with atomic_write(path) as f:
        if compress:
            # mtime=0 so that the same array always gives the same bytes.
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
                gz.write(header)
                gz.write(body)
        else:
            f.write(header)
            f.write(body)
    return path
