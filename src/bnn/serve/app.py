"""The HTTP service: an ASGI app (Starlette) over one or more classifiers, with dynamic batching.

    GET  /              the page: draw a digit or upload a photo (served by the package, no CDN)
    GET  /healthz       200 {"status": "ok"} once the classifiers are built
    GET  /v1/models     the loaded networks: classes, decision rule, runtime, kernel
    POST /v1/classify   a PNG/JPEG picture, a dataset file (IDX for an LFC, binary CIFAR-10 records
                        for a CNV), or a multipart upload of several
    GET  /openapi.json  the API as OpenAPI 3.1;  GET /docs  the same as a page

Requests arriving together are gathered (up to `max_batch` images or
`max_wait_ms`) into one runtime call, run off the event loop, so that under
load the service approaches the batch throughput. Every bad request gets a
4xx with a JSON ``{"error": ...}``; none can name a server path, load
another parameter set or make the server write anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import BnnError
from ..formats import cifar, idx
from ..formats.images import MAX_PIXELS
from ..results import result_row
from .openapi import OPENAPI, docs_page

__all__ = ["Batcher", "create_app"]

IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif", "image/bmp"}
#: Dataset bodies: an IDX file (LFC) or binary CIFAR-10 records (CNV).
IDX_TYPES = {"application/x-idx", "application/x-cifar10", "application/octet-stream"}


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Batcher:
    """Gathers the images of concurrent requests into one classifier call on a worker thread.

    `submit` waits for its own rows; a batch closes at `max_batch` images or
    `max_wait_ms` after its first request, whichever comes first. With
    ``max_batch=0`` each request is its own call (no batching). A request
    not answered within `timeout_s` seconds gets a 503.

    The gathering task is supervised: if it ever ends by an error (a bug,
    not a classifier error, which only fails its own batch), the requests it
    held and those queued get a 500 saying so, and a new task takes over.
    The worker thread and the queue belong to one event loop: `close` ends
    them and the next `submit` starts new ones, so an app can go through
    several lifespans (or test clients).
    """

    def __init__(self, classifier, *, max_batch: int = 1024, max_wait_ms: float = 2.0, timeout_s: float = 60.0):
        self.classifier = classifier
        self.max_batch, self.max_wait, self.timeout = max_batch, max_wait_ms / 1000, timeout_s
        self.executor: ThreadPoolExecutor | None = None
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self._taken: list = []  # the items of the batch being gathered or run
        self.calls = 0  # runtime calls made: fewer than requests when batching works
        self.restarts = 0  # gathering tasks that died and were replaced

    async def submit(self, images: np.ndarray):
        loop = asyncio.get_running_loop()
        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"bnn-{self.classifier.network}")
        if self.max_batch <= 0:
            self.calls += 1
            work = loop.run_in_executor(self.executor, self.classifier.infer, images)
        else:
            if self.task is None:
                self.queue = asyncio.Queue()
                self._spawn()
            work = loop.create_future()
            self.queue.put_nowait((images, work))
        try:
            # shield: a timed-out request leaves its batch running for the others
            return await asyncio.wait_for(asyncio.shield(work), self.timeout)
        except asyncio.TimeoutError:
            work.cancel()
            raise HTTPError(503, f"not answered within {self.timeout:g} s (the server is overloaded)") from None

    def _spawn(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._gather())
        self.task.add_done_callback(self._supervise)

    def _supervise(self, task: asyncio.Task) -> None:
        """Runs when the gathering task ends: on an error, fail what it held and start a new one."""
        if task.cancelled() or self.task is not task:
            return
        exc = task.exception()
        failure = HTTPError(500, f"the batching task failed ({exc!r}); this request was not classified")
        pending = self._taken
        while self.queue is not None and not self.queue.empty():
            pending.append(self.queue.get_nowait())
        for _, done in pending:
            if not done.done():
                done.set_exception(failure)
        self._taken = []
        self.restarts += 1
        self._spawn()

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._taken = items = [await self.queue.get()]
            count, deadline = len(items[0][0]), loop.time() + self.max_wait
            while count < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                items.append(item)
                count += len(item[0])
            items[:] = [item for item in items if not item[1].done()]  # drop requests that timed out meanwhile
            if not items:
                continue
            batch = np.concatenate([images for images, _ in items])
            self.calls += 1
            try:
                out = await loop.run_in_executor(self.executor, self.classifier.infer, batch)
            except Exception as exc:  # every waiting request gets the error, the loop goes on
                for _, done in items:
                    if not done.done():
                        done.set_exception(exc)
                continue
            start = 0
            for images, done in items:
                part = slice(start, start + len(images))
                start += len(images)
                if not done.done():  # a client that went away cancelled its future
                    done.set_result(type(out)(out.classes[part], out.scores[part], out.bits[part]))
            self._taken = []

    async def close(self) -> None:
        """End the gathering task and the worker thread (after the batch it runs)."""
        task, self.task, self.queue = self.task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refused past `limit` bytes (413) and for a client slower than `timeout` seconds (408)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPError(413, f"request body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0

    async def collect():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise HTTPError(408, f"request body not received within {timeout:.0f} s") from None
    return b"".join(chunks)


def _decode(
    data: bytes, content_type: str, name: str, clf, max_images: int, max_pixels: int
) -> tuple[list[str], np.ndarray]:
    """(names, (N, P) uint8 images for `clf`'s network) of one body or uploaded file; HTTPError 4xx when
    it is not usable. A picture goes through the network's own preprocessing; a dataset body is an IDX
    file (LFC) or binary CIFAR-10 records (CNV)."""
    if not data:
        raise HTTPError(400, f"{name}: empty body (send a PNG or JPEG picture, or a dataset file)")
    convolutional = clf.params.spec.convolutional
    try:
        if content_type in IMAGE_TYPES:
            image = clf.picture_loader()(data, name=name, max_pixels=max_pixels)
            return [name], image.reshape(1, -1)
        if content_type in IDX_TYPES:
            if convolutional:
                images = cifar.images_from_bytes(data, name)
            else:
                images = idx.images_from_bytes(data, name, max_bytes=max_images * 784 + 1024)
            if len(images) > max_images:
                raise HTTPError(413, f"{name}: {len(images)} images, over the limit of {max_images} per request")
            return [f"{name}[{i}]" for i in range(len(images))], images.reshape(len(images), -1)
    except BnnError as exc:
        raise HTTPError(400, str(exc)) from None
    known = ", ".join(sorted(IMAGE_TYPES | IDX_TYPES | {"multipart/form-data"}))
    raise HTTPError(415, f"{name}: content type {content_type or '(none)'!r} is not one of: {known}")


def create_app(
    classifiers: dict,
    *,
    batching: bool = True,
    max_batch: int = 1024,
    max_wait_ms: float = 2.0,
    max_body: int = 8 << 20,
    max_images: int = 10000,
    body_timeout: float = 10.0,
    max_pixels: int = MAX_PIXELS,
    decoders: int | None = None,
    request_timeout: float = 60.0,
) -> Starlette:
    """The service over `classifiers` (network name -> `bnn.Classifier`, the first is the default).

    Memory per request is bounded: a body by `max_body` bytes, a picture by
    `max_pixels` (refused above, decoded reduced when large), and at most
    `decoders` pictures (default: the number of cores) are decoded at once,
    the others wait their turn. A request waits at most `request_timeout`
    seconds for its classes (503 after). The number of connections is the
    ASGI server's to bound (`bnn serve --max-connections`).
    """
    batchers = {
        name: Batcher(clf, max_batch=max_batch if batching else 0, max_wait_ms=max_wait_ms, timeout_s=request_timeout)
        for name, clf in classifiers.items()
    }
    decoding = asyncio.Semaphore(decoders or os.cpu_count() or 1)

    async def decode(data: bytes, content_type: str, name: str, model: str) -> tuple[list[str], np.ndarray]:
        # On a worker thread (a picture takes ~1 ms, a 49 MP one ~1 s): the event loop keeps serving the others.
        clf = classifiers[model]
        async with decoding:
            return await asyncio.to_thread(_decode, data, content_type, name, clf, max_images, max_pixels)

    default = next(iter(classifiers))
    page = (resources.files("bnn.serve") / "static" / "index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": list(classifiers)})

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "default": default,
                "models": [
                    {
                        "network": name,
                        "family": "cnv" if clf.params.spec.convolutional else "lfc",
                        "image_shape": list(clf.params.image_shape),
                        # the set's name, never a server path
                        "params": clf.params.source.parent.name if clf.params.source else "in memory",
                        "classes": clf.classes,
                        "decision": clf.decision,
                        "runtime": clf.runtime,
                        "kernel": clf.kernel,
                        "batching": batchers[name].max_batch > 0,
                    }
                    for name, clf in classifiers.items()
                ],
            }
        )

    async def classify(request: Request) -> Response:
        model = request.query_params.get("model", default)
        if model not in classifiers:
            raise HTTPError(404, f"unknown model {model!r}; this server has: {', '.join(classifiers)}")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        started = time.perf_counter()
        if content_type == "multipart/form-data":
            # The multipart parser reads the stream itself: its size must be known, and bounded, first.
            length = request.headers.get("content-length", "")
            if not length.isdigit():
                raise HTTPError(411, "a multipart upload needs a Content-Length header")
            if int(length) > max_body:
                raise HTTPError(413, f"request body of {length} bytes is over the limit of {max_body}")
            try:
                form = await asyncio.wait_for(request.form(max_files=64, max_fields=64), body_timeout)
            except asyncio.TimeoutError:
                raise HTTPError(408, f"request body not received within {body_timeout:.0f} s") from None
            except Exception as exc:  # a malformed multipart body
                raise HTTPError(400, f"not a readable multipart upload: {exc}") from None
            names, arrays = [], []
            try:
                uploads = [v for _, v in form.multi_items() if hasattr(v, "read")]
                if not uploads:
                    raise HTTPError(400, "multipart upload without files")
                total = 0
                for upload in uploads:
                    data = await upload.read()
                    total += len(data)
                    if total > max_body:
                        raise HTTPError(413, f"request body is over the limit of {max_body} bytes")
                    kind = (upload.content_type or "").split(";")[0].strip().lower()
                    n, a = await decode(data, kind, upload.filename or "upload", model)
                    names += n
                    arrays.append(a)
            finally:
                await form.close()
            images = np.concatenate(arrays)
        else:
            data = await _read_body(request, max_body, body_timeout)
            names, images = await decode(data, content_type, "request body", model)
        try:
            out = await batchers[model].submit(images)
        except HTTPError:
            raise
        except Exception as exc:  # the runtime failed: say so, the service goes on
            raise HTTPError(500, f"classification failed: {exc!r}") from None
        clf = classifiers[model]
        return JSONResponse(
            {
                "model": model,
                "results": [result_row(n, c, clf.classes, s) for n, c, s in zip(names, out.classes, out.scores)],
                "ms": round(1000 * (time.perf_counter() - started), 3),
            }
        )

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_page())

    async def http_error(request: Request, exc: HTTPError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        for batcher in batchers.values():  # after the requests in flight: their batches finish first
            await batcher.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/v1/models", models),
            Route("/v1/classify", classify, methods=["POST"]),
            Route("/openapi.json", openapi),
            Route("/docs", docs),
        ],
        exception_handlers={HTTPError: http_error},
        lifespan=lifespan,
    )
    app.state.batchers = batchers
    return app
