"""Classify datasets bigger than one machine on a Dask cluster (``pip install 'bitexact-bnn[dask]'``).

(`classifier` arguments are `bnn.Classifier` objects; this module does not
import it, because the classifier imports this one to take dask arrays.)

The client only plans: it reads the IDX headers and lists the picture files,
and cuts the work into chunks (an IDX file by image range, a folder by
groups of files). Each chunk is a task that reads its own bytes on a worker
(workers read the files themselves: give paths they can see), so nothing is
loaded whole on the client. The `Classifier` travels once per worker, as its
parameters (it pickles so), and is built there once, then reused by every
chunk. Results come back in input order. A chunk whose worker dies is run
again elsewhere by Dask (tasks are pure); a corrupt file fails its own
chunks only, and the error names the file and the image range.

    >>> from distributed import Client
    >>> from bnn.distributed import classify_files
    >>> with Client("tcp://scheduler:8786") as client:
    ...     result = classify_files(client, clf, ["shard-000-idx3-ubyte", "photos/"])
    >>> result.classes, result.names, result.errors

`Classifier.predict` also takes a dask array and returns a lazy one
(`predict_dask`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BnnError, MissingExtraError
from .formats import idx
from .formats.images import IMAGE_SUFFIXES

__all__ = [
    "CHUNK_IMAGES",
    "Chunk",
    "Result",
    "classify_files",
    "local_workers",
    "make_client",
    "plan",
    "predict_dask",
]

#: Images per chunk of an IDX file: 262,144 images (205 MiB) keep a chunk's
#: work near 1 s on two cores, well above the scheduler's overhead per task
#: (a few ms), and a worker's memory near 0.3 GiB whatever the file size.
CHUNK_IMAGES = 1 << 18
#: Picture files per chunk of a folder: decoding costs about 1 ms each.
CHUNK_FILES = 512


def _require_distributed():
    try:
        import distributed
    except ImportError:
        raise MissingExtraError("clusters need Dask: pip install 'bitexact-bnn[dask]'") from None
    return distributed


@dataclass(frozen=True)
class Chunk:
    """One task's share of the input: images start..stop-1 of an IDX file, or a group of picture files."""

    path: str
    start: int = 0
    stop: int = 0
    files: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.files) if self.files else self.stop - self.start

    def names(self) -> list[str]:
        """The input names the single-process ``bnn classify`` prints for these images."""
        return list(self.files) if self.files else [f"{self.path}[{i}]" for i in range(self.start, self.stop)]

    def describe(self) -> str:
        return f"{self.path} ({len(self.files)} pictures)" if self.files else f"{self.path}[{self.start}:{self.stop}]"


def plan(paths: Iterable[str | os.PathLike], *, chunk_images: int = CHUNK_IMAGES, chunk_files: int = CHUNK_FILES):
    """The chunks of `paths` (IDX files, picture files, folders of pictures), in input order.

    Reads IDX headers and folder listings only.
    """
    chunks: list[Chunk] = []
    pictures: list[str] = []

    def flush():
        for s in range(0, len(pictures), chunk_files):
            chunks.append(Chunk(pictures[s], files=tuple(pictures[s : s + chunk_files])))
        pictures.clear()

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise BnnError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
            pictures.extend(files)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            pictures.append(str(path))
        else:
            flush()
            n = idx.read_header(path).shape[0]
            chunks += [Chunk(str(path), s, min(s + chunk_images, n)) for s in range(0, n, chunk_images)]
    flush()
    return chunks


def _load(chunk: Chunk) -> np.ndarray:
    """The chunk's images as (n, 784) uint8, read on the worker."""
    if chunk.files:
        from .formats.folders import decode

        # One process per chunk: the cluster runs chunks side by side (and a worker may not fork).
        images = decode([Path(f) for f in chunk.files], progress=False, workers=1)
    else:
        parts = list(idx.iter_images(chunk.path, start=chunk.start, stop=chunk.stop))
        images = np.concatenate(parts) if parts else np.zeros((0, 28, 28), np.uint8)
    return np.ascontiguousarray(images.reshape(len(images), 784))


def run_chunk(classifier, chunk: Chunk, scores: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """A task: classes (and scores) of one chunk; an error names the chunk."""
    try:
        images = _load(chunk)
    except (BnnError, OSError) as exc:
        raise BnnError(f"chunk {chunk.describe()}: {exc}") from None
    out = classifier.infer(images) if scores else None
    return (out.classes, out.scores) if out is not None else (classifier.predict(images), None)


@dataclass
class Result:
    """Classes (N,) int32 in input order (-1 where a chunk failed), scores (N, C) or None, names, errors."""

    classes: np.ndarray
    scores: np.ndarray | None
    names: list[str]
    errors: list[str] = field(default_factory=list)


def classify_files(
    client,
    classifier,
    paths: Iterable[str | os.PathLike],
    *,
    scores: bool = False,
    chunk_images: int = CHUNK_IMAGES,
    on_chunk: Callable[[int, Chunk, np.ndarray, np.ndarray | None], None] | None = None,
    keep: bool = True,
    progress: bool = False,
) -> Result:
    """Classify `paths` (or the `Chunk` list `plan` made of them) on the Dask `client`'s workers.

    `on_chunk(index, chunk, classes, scores)` is called in input order as
    soon as each chunk and all before it are done, to stream results to a
    file; with ``keep=False`` nothing else is kept (memory independent of
    the input; `Result.classes` is then empty). Failed chunks are reported in
    `Result.errors` (file and image range) and leave -1 classes; the others
    are not lost.
    """
    _require_distributed()
    from distributed import as_completed

    paths = list(paths)
    chunks = paths if all(isinstance(c, Chunk) for c in paths) else plan(paths, chunk_images=chunk_images)
    total = sum(c.size for c in chunks) if keep else 0
    offsets = np.cumsum([0] + [c.size for c in chunks])
    classes = np.full(total, -1, dtype=np.int32)
    all_scores = np.zeros((total, len(classifier.classes)), dtype=np.int32) if scores and keep else None
    # The classifier goes to every worker once, as data (workers need not share the client's files).
    shared = client.scatter(classifier, broadcast=True, hash=False)
    futures = {client.submit(run_chunk, shared, c, scores, pure=False): i for i, c in enumerate(chunks)}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="img", unit_scale=True, desc="classify", leave=False)
    errors: dict[int, str] = {}
    done: dict[int, tuple] = {}
    next_out = 0
    for future in as_completed(futures):
        i = futures[future]
        try:
            got = future.result()
        except Exception as exc:  # the worker's error, re-raised here: keep the others' results
            errors[i] = str(exc) if isinstance(exc, BnnError) else f"chunk {chunks[i].describe()}: {exc!r}"
            got = (None, None)
        done[i] = got
        if got[0] is not None and keep:
            classes[offsets[i] : offsets[i + 1]] = got[0]
            if all_scores is not None:
                all_scores[offsets[i] : offsets[i + 1]] = got[1]
        if bar is not None:
            bar.update(chunks[i].size)
        while next_out in done:  # in input order, as soon as the prefix is complete
            c, s = done.pop(next_out)
            if on_chunk is not None and c is not None:
                on_chunk(next_out, chunks[next_out], c, s)
            next_out += 1
    if bar is not None:
        bar.close()
    names = [name for c in chunks for name in c.names()] if keep else []
    return Result(classes, all_scores, names, [errors[i] for i in sorted(errors)])


def local_workers(scheduler: str) -> int | None:
    """N for ``local`` / ``local:N`` (default: the number of cores), None for a scheduler address."""
    if scheduler != "local" and not scheduler.startswith("local:"):
        return None
    count = scheduler.partition(":")[2]
    if count and (not count.isdigit() or int(count) < 1):
        raise BnnError(f"--scheduler {scheduler}: expected local, local:N (N >= 1) or a scheduler address")
    return int(count) if count else os.cpu_count() or 1


def make_client(scheduler: str):
    """A `distributed.Client` for ``local``, ``local:N`` (a LocalCluster of N one-thread worker
    processes, default: the number of cores) or a scheduler address."""
    distributed = _require_distributed()
    n = local_workers(scheduler)
    if n is not None:
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        return distributed.Client(cluster)
    return distributed.Client(scheduler)


def _predict_block(block: np.ndarray, classifier) -> np.ndarray:
    return classifier.predict(np.ascontiguousarray(block.reshape(len(block), 784)))


def predict_dask(classifier, images):
    """A lazy dask array of classes (N,) int32 for a dask array (N, 28, 28) or (N, 784) of uint8.

    One task per block of images; the classifier is one node of the graph,
    so each worker receives (and builds) it once.
    """
    import dask

    if images.dtype != np.uint8 or images.ndim not in (2, 3):
        raise BnnError(f"dask images: expected uint8 (N, 28, 28) or (N, 784), got {images.dtype} {images.shape}")
    images = images.rechunk({i: -1 for i in range(1, images.ndim)})
    node = dask.delayed(classifier, traverse=False)
    return images.map_blocks(
        _predict_block, node, drop_axis=list(range(1, images.ndim)), dtype=np.int32, meta=np.zeros(0, np.int32)
    )
