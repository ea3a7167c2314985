"""Datasets: MNIST downloaded once into a cache folder, checked, and read as arrays.

    >>> from bnn import datasets
    >>> images, labels = datasets.mnist("test")       # (10000, 28, 28) uint8, (10000,) uint8

Files go to ``$XDG_CACHE_HOME/bnn/mnist`` (``~/.cache/bnn/mnist``) unless
`cache_dir` says otherwise. The source is `DEFAULT_MIRROR`, or `base_url`
/ ``BNN_MNIST_URL``: an http(s) or file URL, or a local folder. Each file
is downloaded to ``NAME.part`` (resumed with an HTTP range request after an
interruption), checked against the SHA-256 of its decompressed IDX content
(so that any gzip of the same data is accepted), then renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from . import idx
from .errors import BnnError

__all__ = ["DEFAULT_MIRROR", "MNIST_FILES", "cache_dir", "cached_file", "download_mnist", "mnist"]

DEFAULT_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
#: file stem -> (SHA-256 of the decompressed IDX bytes, their size in bytes)
MNIST_FILES = {
    "train-images-idx3-ubyte": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
    "train-labels-idx1-ubyte": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
    "t10k-images-idx3-ubyte": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
    "t10k-labels-idx1-ubyte": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
}
_SPLITS = {"train": "train", "test": "t10k"}
_BLOCK = 1 << 16


class DownloadError(BnnError, OSError):
    """A download failed or its checksum did not match."""


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where downloaded datasets live: `override`, else $XDG_CACHE_HOME/bnn, else ~/.cache/bnn."""
    if override is not None:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bnn"


def cached_file(stem: str, cache: str | os.PathLike | None = None) -> Path | None:
    """The cached ``STEM.gz`` of MNIST if it was downloaded, else None."""
    path = cache_dir(cache) / "mnist" / f"{stem}.gz"
    return path if path.is_file() else None


def _content_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _progress(total: int | None, initial: int, name: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, leave=False)


def _fetch(url: str, part: Path, name: str) -> None:
    """Download `url` into `part`, resuming what is already there."""
    local = Path(url[7:]) if url.startswith("file://") else Path(url) if "://" not in url else None
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"{local}: not found")
        shutil.copyfile(local, part)
        return
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            return
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length else None
        bar = _progress(total, have if resumed else 0, name)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                for block in iter(lambda: response.read(_BLOCK), b""):
                    f.write(block)
                    if bar is not None:
                        bar.update(len(block))
        except OSError as exc:
            raise DownloadError(
                f"{url}: interrupted after {part.stat().st_size} bytes ({exc}); run again to resume"
            ) from None
        finally:
            if bar is not None:
                bar.close()


def download_mnist(cache_dir: str | os.PathLike | None = None, base_url: str | None = None) -> list[Path]:
    """Make sure the four MNIST files are in the cache (download, verify, rename); return their paths."""
    folder = globals()["cache_dir"](cache_dir) / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    base = base_url or os.environ.get("BNN_MNIST_URL") or DEFAULT_MIRROR
    if "://" in base and not base.endswith("/"):
        base += "/"
    paths = []
    for stem, (sha, size) in MNIST_FILES.items():
        final = folder / f"{stem}.gz"
        if not final.is_file():
            part = folder / f"{stem}.gz.part"
            url = base + f"{stem}.gz" if "://" in base else str(Path(base) / f"{stem}.gz")
            _fetch(url, part, stem)
            got_sha, got_size = _content_sha256(part)
            if (got_sha, got_size) != (sha, size):
                part.unlink()
                raise DownloadError(
                    f"{url}: checksum mismatch (SHA-256 of content {got_sha}, {got_size} bytes; "
                    f"expected {sha}, {size} bytes); the partial file was removed"
                )
            os.replace(part, final)
        paths.append(final)
    return paths


def mnist(split: str = "test", cache_dir: str | os.PathLike | None = None, base_url: str | None = None):
    """MNIST `split` ("train" or "test") as (images (N, 28, 28) uint8, labels (N,) uint8), downloading once."""
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    download_mnist(cache_dir, base_url)
    folder = globals()["cache_dir"](cache_dir) / "mnist"
    prefix = _SPLITS[split]
    images = idx.read_images(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = idx.read_labels(folder / f"{prefix}-labels-idx1-ubyte.gz")
    return images, np.asarray(labels)
