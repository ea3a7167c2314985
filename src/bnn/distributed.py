"""Classify datasets bigger than one machine on a Dask cluster (``pip install 'bitexact-bnn[dask]'``).

(`classifier` arguments are `bnn.Classifier` objects. A dask array of images
needs none of this: `Classifier.predict` takes it and returns a lazy one.)

The client only plans: it expands the paths (`bnn.inputs`, as one process
does), reads the dataset files' headers, and cuts the work into chunks: a raw IDX file or binary CIFAR batch
by image range, a gzip one whole (a compressed stream can only be read
from its start, so ranges would read it again and again), pictures by
groups of files. Paths are made absolute (a worker started in another
folder sees the same file). Each chunk is a task that reads its own bytes
on a worker, in pieces of bounded size, so nothing is loaded whole.

The classifier is a task of the graph: it travels as its parameters and is
built once per worker that runs chunks; when every worker holding it dies,
the scheduler builds it again from the task (data sent with
`Client.scatter` could not be rebuilt). A chunk whose worker dies is run
again elsewhere (tasks are pure). At most `window` chunks are in flight
and each result is released as soon as it is consumed, so the memory of
the workers and of the client does not grow with the input. A corrupt file
fails its own chunks only (a corrupt header: the file's one chunk), and the
error names the file and the image range.

    >>> from distributed import Client
    >>> from bnn.distributed import classify_files
    >>> with Client("tcp://scheduler:8786") as client:
    ...     result = classify_files(client, clf, ["shard-000-idx3-ubyte", "photos/"])
    >>> result.classes, result.names, result.errors
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BnnError, MissingExtraError
from .inputs import IDX, DataFiles, data_files, runs

__all__ = [
    "CHUNK_IMAGES",
    "Chunk",
    "Result",
    "classify_files",
    "classify_to_file",
    "local_workers",
    "make_client",
    "plan",
]

#: Images per chunk of a raw IDX file, and per piece a task reads at once:
#: 262,144 images (205 MiB) keep a chunk's work near 1 s on two cores, well
#: above the scheduler's overhead per task (a few ms), and a worker's memory
#: near 0.3 GiB whatever the file size.
CHUNK_IMAGES = 1 << 18
#: Picture files per chunk: decoding costs about 1 ms each.
CHUNK_FILES = 512


def _require_distributed():
    try:
        import distributed
    except ImportError:
        raise MissingExtraError("clusters need Dask: pip install 'bitexact-bnn[dask]'") from None
    return distributed


@dataclass(frozen=True)
class Chunk:
    """One task's share of the input: images start..stop-1 of an IDX file, or a group of picture files.

    `path` and `files` are absolute (what workers open); `name` and `names`
    are as the user gave them (what results are called). A chunk with an
    `error` could not be planned (a corrupt header): it fails alone.
    """

    path: str
    start: int = 0
    stop: int = 0
    files: tuple[str, ...] = ()
    name: str = ""
    labels: tuple[str, ...] = ()
    error: str | None = None

    @property
    def size(self) -> int:
        return len(self.files) if self.files else self.stop - self.start

    def names(self) -> list[str]:
        """The input names the single-process ``bnn classify`` prints for these images."""
        if self.files:
            return list(self.labels or self.files)
        return [f"{self.name or self.path}[{i}]" for i in range(self.start, self.stop)]

    def describe(self) -> str:
        first = (self.labels or self.files or (self.name or self.path,))[0]
        if self.files:
            return f"{first} ({len(self.files)} pictures)"
        return f"{first}[{self.start}:{self.stop}]"


def plan(
    paths: Iterable[str | os.PathLike],
    *,
    chunk_images: int = CHUNK_IMAGES,
    chunk_files: int = CHUNK_FILES,
    files: DataFiles = IDX,
):
    """The chunks of `paths` (dataset files of kind `files`, pictures, folders of both), in input order.

    Reads headers (or sizes) and folder listings only; a file that cannot be
    counted makes a chunk that carries its error (reported, not raised).
    """
    chunks: list[Chunk] = []
    for pictures, group in runs(paths, files):
        if pictures:
            for s in range(0, len(group), chunk_files):
                part = group[s : s + chunk_files]
                absolute = tuple(map(_absolute, part))
                chunks.append(Chunk(absolute[0], files=absolute, name=part[0], labels=tuple(part)))
            continue
        path = _absolute(group[0])
        try:
            n = files.count(path)
            whole = not files.seekable(path)
        except (BnnError, OSError) as exc:
            chunks.append(Chunk(path, name=group[0], error=f"{group[0]}: {_reason(exc, path)}"))
            continue
        step = max(n, 1) if whole else chunk_images
        chunks += [Chunk(path, s, min(s + step, n), name=group[0]) for s in range(0, n, step)]
    return chunks


def _absolute(path: str) -> str:
    return str(Path(path).absolute())


def _reason(exc: Exception, path: str) -> str:
    """The error without the absolute path the message starts with (the caller names the file)."""
    text = str(exc)
    return text[len(path) + 2 :] if text.startswith(f"{path}: ") else text


def _load_pieces(classifier, chunk: Chunk, piece: int):
    """The chunk's images as (n, P) uint8 arrays of at most `piece` images, read on the worker."""
    if chunk.files:
        for s in range(0, len(chunk.files), piece):
            # One process per chunk: the cluster runs chunks side by side (and a worker may not fork).
            images = classifier.decode(chunk.files[s : s + piece], workers=1)
            yield np.ascontiguousarray(images.reshape(len(images), -1))
    else:
        yield from data_files(classifier.params.spec.convolutional).read(chunk.path, chunk.start, chunk.stop, piece)


def run_chunk(classifier, chunk: Chunk, scores: bool, piece: int = CHUNK_IMAGES):
    """A task: classes (n,) int32 and scores (n, C) or None of one chunk; an error names the chunk."""
    if chunk.error:
        raise BnnError(chunk.error)
    classes, all_scores = [], []
    try:
        for images in _load_pieces(classifier, chunk, piece):
            if scores:
                out = classifier.infer(images)
                classes.append(out.classes)
                all_scores.append(out.scores)
            else:
                classes.append(classifier.predict(images))
    except FileNotFoundError:
        raise BnnError(
            f"chunk {chunk.describe()}: {chunk.path} not found on worker {_worker_name()} "
            "(workers open the files themselves: put them where every worker sees them at this path)"
        ) from None
    except (BnnError, OSError) as exc:
        raise BnnError(f"chunk {chunk.describe()}: {_reason(exc, chunk.path)}") from None
    n_classes = len(classifier.classes)
    got = np.concatenate(classes) if classes else np.zeros(0, np.int32)
    return got, (np.concatenate(all_scores) if all_scores else np.zeros((0, n_classes), np.int32)) if scores else None


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "(not a worker)"


def _build(classifier):
    """The task that yields the classifier on a worker (unpickling it builds its runtime there)."""
    return classifier


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
    window: int | None = None,
) -> Result:
    """Classify `paths` (or the `Chunk` list `plan` made of them) on the Dask `client`'s workers.

    `on_chunk(index, chunk, classes, scores)` is called in input order as
    soon as each chunk and all before it are done, to stream results to a
    file; with ``keep=False`` nothing else is kept (memory independent of
    the input; `Result.classes` is then empty). At most `window` chunks
    (default: twice the workers' threads, at least 4) are submitted at a
    time. Failed chunks are reported in `Result.errors` (file and image
    range) and leave -1 classes; the others are not lost.
    """
    _require_distributed()
    from distributed import as_completed

    paths = list(paths)
    if not all(isinstance(c, Chunk) for c in paths):
        paths = plan(paths, chunk_images=chunk_images, files=data_files(classifier.params.spec.convolutional))
    chunks = paths
    total = sum(c.size for c in chunks) if keep else 0
    offsets = np.cumsum([0] + [c.size for c in chunks])
    classes = np.full(total, -1, dtype=np.int32)
    all_scores = np.zeros((total, len(classifier.classes)), dtype=np.int32) if scores and keep else None
    if window is None:
        window = max(4, 2 * sum(client.nthreads().values()))
    # A task, not scattered data: the scheduler can run it again when every copy is lost.
    built = client.submit(_build, classifier, key=f"bnn-classifier-{uuid.uuid4().hex}", pure=False)
    pending = iter(enumerate(chunks))
    futures: dict = {}
    running = as_completed()

    def submit_next() -> None:
        for i, chunk in pending:
            future = client.submit(run_chunk, built, chunk, scores, chunk_images, pure=False)
            futures[future] = i
            running.add(future)
            return

    for _ in range(window):
        submit_next()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(c.size for c in chunks), unit="img", unit_scale=True, desc="classify", leave=False)
    errors: dict[int, str] = {}
    done: dict[int, tuple] = {}
    next_out = 0
    for future in running:
        i = futures.pop(future)
        try:
            got = future.result()
        except Exception as exc:  # the worker's error, re-raised here: keep the others' results
            errors[i] = str(exc) if isinstance(exc, BnnError) else f"chunk {chunks[i].describe()}: {exc!r}"
            got = (None, None)
        future.release()  # the worker may drop the result now
        del future
        submit_next()
        if got[0] is not None and keep:
            classes[offsets[i] : offsets[i + 1]] = got[0]
            if all_scores is not None:
                all_scores[offsets[i] : offsets[i + 1]] = got[1]
        if bar is not None:
            bar.update(chunks[i].size)
        if on_chunk is not None:
            done[i] = got
            while next_out in done:  # in input order, as soon as the prefix is complete
                c, s = done.pop(next_out)
                if c is not None:
                    on_chunk(next_out, chunks[next_out], c, s)
                next_out += 1
    built.release()
    if bar is not None:
        bar.close()
    names = [name for c in chunks for name in c.names()] if keep else []
    return Result(classes, all_scores, names, [errors[i] for i in sorted(errors)])


def classify_to_file(client, classifier, chunks: list[Chunk], output: str | os.PathLike, *, progress: bool = False):
    """Classify `chunks` and stream the classes to `output` (.csv or .npy, `bnn.results.ResultWriter`).

    Rows are written in input order as chunks finish; a failed chunk's
    images are left out (-1 in .npy). Returns the `Result` (no classes kept).
    """
    from .results import ResultWriter

    with ResultWriter(output, classifier.classes, sum(c.size for c in chunks)) as writer:
        written = 0

        def stream(index, chunk, classes, _scores):
            nonlocal written
            for missing in chunks[written:index]:  # failed chunks before this one
                writer.skip(missing.size)
            writer.write(chunk.names(), classes)
            written = index + 1

        return classify_files(client, classifier, chunks, on_chunk=stream, keep=False, progress=progress)


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
