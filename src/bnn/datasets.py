"""Datasets: MNIST downloaded once into a cache folder, checked, and read as arrays.

    >>> from bnn import datasets
    >>> images, labels = datasets.mnist("test")       # (10000, 28, 28) uint8, (10000,) uint8

Files go to ``$XDG_CACHE_HOME/bnn/mnist`` (``~/.cache/bnn/mnist``) unless
`cache_dir` says otherwise. `mnist_file` finds one MNIST file for every
command: a folder given (``--data``), else ``$BNN_DATA``, else the cache. The source is `DEFAULT_MIRROR`, or `base_url`
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
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import numpy as np

from .errors import DownloadError
from .formats import idx

__all__ = ["DEFAULT_MIRROR", "MNIST_FILES", "cache_folder", "download_mnist", "mnist", "mnist_file"]

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


def cache_folder(override: str | os.PathLike | None = None) -> Path:
    """Where downloaded datasets live: `override`, else $XDG_CACHE_HOME/bnn, else ~/.cache/bnn."""
    if override is not None:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bnn"


def mnist_file(stem: str, data: str | os.PathLike | None = None) -> Path:
    """The MNIST file `stem` (``t10k-images-idx3-ubyte``), gzipped or not.

    Looked for in `data`, else in ``$BNN_DATA``, else in the download cache;
    DownloadError saying how to get it when it is in none of them.
    """
    places = [Path(data)] if data is not None else []
    if data is None and os.environ.get("BNN_DATA"):
        places.append(Path(os.environ["BNN_DATA"]))
    if data is None:
        places.append(cache_folder() / "mnist")
    for place in places:
        for name in (f"{stem}.gz", stem):
            if (place / name).is_file():
                return place / name
    raise DownloadError(
        f"{stem}[.gz] not found in {', '.join(str(p) for p in places)}; "
        "run 'bnn download mnist', or give the folder that holds it (--data DIR or BNN_DATA)"
    )


def _content_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        opener = gzip.open if f.read(2) == b"\x1f\x8b" else open
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
    if url.startswith("file:"):
        local = Path(url2pathname(unquote(urlparse(url).path)))
    else:
        local = Path(url) if "://" not in url else None
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
    folder = cache_folder(cache_dir) / "mnist"
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
    folder = cache_folder(cache_dir) / "mnist"
    prefix = _SPLITS[split]
    images = idx.read_images(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = idx.read_labels(folder / f"{prefix}-labels-idx1-ubyte.gz")
    return images, np.asarray(labels)
