"""The service: its API, batching, every bad request (a 4xx with a JSON message, the server still up)."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import IN_CI

for module in ("starlette", "httpx2", "PIL"):
    pytest.importorskip(module) if not IN_CI else __import__(module)

import httpx2 as httpx  # noqa: E402
from PIL import Image  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import bnn  # noqa: E402
from bnn.serve import create_app  # noqa: E402


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def classifiers(original_dir):
    return {n: bnn.Classifier(n, original_dir / n) for n in ("lfcW1A1", "lfcW1A2")}


@pytest.fixture(scope="module")
def client(classifiers):
    with TestClient(create_app(classifiers, max_body=1 << 20, max_images=2000)) as c:
        yield c


def test_health_models_page_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok", "models": ["lfcW1A1", "lfcW1A2"]}
    models = client.get("/v1/models").json()
    assert models["default"] == "lfcW1A1"
    assert [m["network"] for m in models["models"]] == ["lfcW1A1", "lfcW1A2"]
    assert models["models"][0]["classes"] == [str(i) for i in range(10)] and models["models"][0]["params"] == "mnist"
    page = client.get("/").text
    assert '<canvas id="pad"' in page
    # Nothing loaded from elsewhere (no CDN): no URL with a scheme or host anywhere, no src or href attribute
    # outside the page itself, no import() or fetch of another origin.
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.IGNORECASE)
    assert not re.search(r"<[^>]*\s(?:src|href)\s*=", page, re.IGNORECASE)  # no element loads anything
    assert not re.search(r"\bimport\s*\(|@import", page)
    assert client.get("/openapi.json").json()["paths"]["/v1/classify"]["post"]["requestBody"]
    assert "/v1/classify" in client.get("/docs").text


def test_a_png_is_classified_as_classify_image_does(client, classifiers, mnist_test):
    digit = mnist_test[0][0]
    reply = client.post("/v1/classify", content=png(digit), headers={"Content-Type": "image/png"}).json()
    expected = classifiers["lfcW1A1"].classify_image(digit)
    assert reply["model"] == "lfcW1A1" and reply["results"][0]["class"] == expected
    assert len(reply["results"][0]["scores"]) == 10
    other = client.post("/v1/classify?model=lfcW1A2", content=png(digit), headers={"Content-Type": "image/png"})
    assert other.json()["model"] == "lfcW1A2"


def test_an_idx_body_and_a_multipart_upload(client, classifiers, mnist_test, tmp_path):
    images = mnist_test[0][:300]
    body = bnn.idx.write_idx(tmp_path / "b-idx3-ubyte.gz", images).read_bytes()
    reply = client.post("/v1/classify", content=body, headers={"Content-Type": "application/x-idx"}).json()
    assert [r["class"] for r in reply["results"]] == classifiers["lfcW1A1"].predict(images).tolist()
    assert reply["results"][5]["input"] == "request body[5]"
    jpeg = io.BytesIO()
    Image.fromarray(mnist_test[0][1]).save(jpeg, format="JPEG", quality=95)
    files = [
        ("files", ("a.png", png(mnist_test[0][0]), "image/png")),
        ("files", ("b.jpg", jpeg.getvalue(), "image/jpeg")),
    ]
    results = client.post("/v1/classify", files=files).json()["results"]
    assert [r["input"] for r in results] == ["a.png", "b.jpg"]
    assert results[0]["class"] == classifiers["lfcW1A1"].classify_image(mnist_test[0][0])


def _bomb(side: int = 30000) -> bytes:
    """A valid, tiny PNG whose header claims side x side pixels."""

    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def _bad_deflate() -> bytes:
    """A gzip IDX file whose deflate stream is damaged (zlib.error inside the gzip module)."""
    data = bytearray(gzip.compress(b"\0\0\x08\x03" + np.array([2, 28, 28], ">u4").tobytes() + bytes(range(256)) * 6))
    data[10] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"hello", "image/png", 400, "request body: not a readable image"),
        (png(np.zeros((28, 28), np.uint8))[:40], "image/png", 400, "not a readable image"),
        (_bomb(), "image/png", 400, "decompression bomb"),  # Pillow's own guard (over 2 x 89 MP)
        (_bomb(8000), "image/png", 400, "8000x8000 pixels is too large a picture (limit 50000000 pixels)"),  # ours
        (b"\0" * (2 << 20), "image/png", 413, "over the limit of 1048576"),
        (b"{}", "application/json", 415, "content type 'application/json' is not one of"),
        (b"", "image/png", 400, "empty body"),
        (b"\0\0\x08\x03" + np.array([5, 28, 28], ">u4").tobytes() + b"\0" * 100, "application/x-idx", 400, "truncated"),
        (
            gzip.compress(b"\0\0\x08\x03" + np.array([3000, 28, 28], ">u4").tobytes() + b"\0" * 784 * 3000),
            "application/x-idx",
            400,
            "decompresses to more than",
        ),
        (_bad_deflate(), "application/x-idx", 400, "request body: corrupt gzip data"),
    ],
)
def test_bad_requests_are_4xx_with_a_message(client, body, content_type, status, message):
    reply = client.post("/v1/classify", content=body, headers={"Content-Type": content_type})
    assert reply.status_code == status and message in reply.json()["error"]
    assert client.get("/healthz").status_code == 200  # still up


def test_unknown_model_and_no_paths(client):
    reply = client.post("/v1/classify?model=../../etc", content=b"x", headers={"Content-Type": "image/png"})
    assert (
        reply.status_code == 404
        and "unknown model '../../etc'; this server has: lfcW1A1, lfcW1A2" in reply.json()["error"]
    )
    assert client.get("/v1/classify").status_code == 405


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(classifiers, mnist_test):
    app = create_app(classifiers, max_wait_ms=50)
    images = mnist_test[0][:64]

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            replies = await asyncio.gather(
                *(c.post("/v1/classify", content=png(img), headers={"Content-Type": "image/png"}) for img in images)
            )
        return [r.json()["results"][0] for r in replies]

    results = asyncio.run(main())
    pictures = np.stack([bnn.formats.images.load_image(png(img)) for img in images])
    np.testing.assert_array_equal([r["scores"] for r in results], classifiers["lfcW1A1"].infer(pictures).scores)
    assert app.state.batchers["lfcW1A1"].calls < len(images) / 4  # gathered into a few runtime calls


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_serve(original_dir, *args) -> tuple[subprocess.Popen, str]:
    """`bnn serve ARGS` on a free port with the original sets on the search path, once it answers /healthz."""
    port = _free_port()
    env = {**os.environ, "BNN_PARAMS_PATH": str(original_dir.parent)}
    cmd = [sys.executable, "-m", "bnn", "serve", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return proc, url


def test_bnn_serve_answers_and_stops_cleanly_on_sigterm(original_dir, mnist_test, tmp_path):
    # The reference runtime: a 10,000-image request takes long enough to be in flight at SIGTERM.
    proc, url = _start_serve(original_dir, "-n", "lfcW1A1", "--runtime", "reference")
    try:
        reply = httpx.post(f"{url}/v1/classify", content=png(mnist_test[0][0]), headers={"Content-Type": "image/png"})
        assert reply.status_code == 200
        # A slow client holding a connection open does not block the others.
        slow = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        slow.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 99\r\n\r\nab"
        )
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        body = bnn.idx.write_idx(tmp_path / "all-idx3-ubyte", mnist_test[0]).read_bytes()
        answers = []

        def in_flight():
            headers = {"Content-Type": "application/x-idx"}
            answers.append(httpx.post(f"{url}/v1/classify", content=body, headers=headers, timeout=60))

        worker = threading.Thread(target=in_flight)
        worker.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        worker.join(60)
        slow.close()
        assert answers[0].status_code == 200 and len(answers[0].json()["results"]) == 10000  # finished, not cut
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status says SIGTERM.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "serving lfcW1A1 on http://127.0.0.1" in err


def test_binds_to_loopback_by_default():
    from bnn.cli import serve

    host = next(p for p in serve.params if p.name == "host")
    assert host.default == "127.0.0.1"


class _Blocking:
    """A classifier stand-in whose `infer` waits for `release` (a stuck or very slow runtime)."""

    network = "stuck"

    def __init__(self, real):
        self.real, self.release = real, threading.Event()

    def infer(self, images):
        self.release.wait(30)
        return self.real.infer(images)


def test_a_request_waits_at_most_its_timeout(classifiers):
    from bnn.serve.app import Batcher, HTTPError

    stuck = _Blocking(classifiers["lfcW1A1"])
    batcher = Batcher(stuck, timeout_s=0.2)
    images = np.zeros((1, 784), np.uint8)

    async def main():
        with pytest.raises(HTTPError, match=r"not answered within 0.2 s") as info:
            await batcher.submit(images)
        assert info.value.status == 503
        stuck.release.set()  # the runtime answers again: so does the batcher
        out = await batcher.submit(images)
        await batcher.close()
        return out

    assert asyncio.run(main()).classes.tolist() == classifiers["lfcW1A1"].predict(images).tolist()


def test_the_batching_task_is_supervised_and_restarted(classifiers):
    from bnn.serve.app import Batcher, HTTPError

    batcher = Batcher(classifiers["lfcW1A1"], max_wait_ms=100, timeout_s=10)
    good = np.zeros((1, 784), np.uint8)

    async def main():
        # Rows of 784 and of 10 pixels in one batch: np.concatenate fails outside the runtime call's try.
        replies = await asyncio.gather(
            batcher.submit(good), batcher.submit(np.zeros((1, 10), np.uint8)), return_exceptions=True
        )
        after = await batcher.submit(good)
        await batcher.close()
        return replies, after

    replies, after = asyncio.run(main())
    for reply in replies:
        assert isinstance(reply, HTTPError) and reply.status == 500
        assert "the batching task failed (ValueError(" in str(reply)
    assert batcher.restarts == 1
    assert after.classes.tolist() == classifiers["lfcW1A1"].predict(good).tolist()


def test_an_app_serves_through_two_lifespans(classifiers, mnist_test):
    app = create_app(classifiers)
    body = png(mnist_test[0][0])
    for _ in range(2):
        with TestClient(app) as c:
            reply = c.post("/v1/classify", content=body, headers={"Content-Type": "image/png"})
            assert reply.status_code == 200 and reply.json()["results"][0]["class"] == 7


def test_a_failing_runtime_is_a_500_with_a_message(classifiers):
    class Failing:
        network = "lfcW1A1"

        def __getattr__(self, name):
            return getattr(classifiers["lfcW1A1"], name)

        def infer(self, images):
            raise RuntimeError("the runtime broke")

    with TestClient(create_app({"lfcW1A1": Failing()})) as c:
        reply = c.post("/v1/classify", content=png(np.zeros((28, 28), np.uint8)), headers={"Content-Type": "image/png"})
        assert (
            reply.status_code == 500
            and "classification failed: RuntimeError('the runtime broke')" in reply.json()["error"]
        )
        assert c.get("/healthz").status_code == 200


def _big_png(side: int = 7000) -> bytes:
    """A colour PNG of side x side pixels (49 MP for 7000): a dark 7 on white, a few hundred KB encoded."""
    img = Image.new("RGB", (side, side), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    w = side // 10
    draw.line([(side // 4, side // 5), (3 * side // 4, side // 5), (side // 2, 4 * side // 5)], fill="black", width=w)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def test_large_pictures_are_decoded_reduced_and_a_limit_applies(classifiers):
    from bnn.formats.images import load_image

    big = _big_png(4100)  # reduced by 4 to 1025 pixels before any float array
    small = load_image(big)
    assert small.shape == (28, 28) and small.max() > 200
    assert classifiers["lfcW1A1"].classify_image(big) == 7
    with TestClient(create_app(classifiers, max_pixels=4000 * 4000)) as c:
        reply = c.post("/v1/classify", content=big, headers={"Content-Type": "image/png"})
        assert reply.status_code == 400
        assert "4100x4100 pixels is too large a picture (limit 16000000 pixels)" in reply.json()["error"]


def _peak_rss(pid: int) -> int:
    """The process' peak resident memory, bytes (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_eight_49_megapixel_pictures_at_once_stay_under_1_5_gib(original_dir):
    body = _big_png(7000)
    proc, url = _start_serve(original_dir, "-n", "lfcW1A1")
    try:
        replies, health = [], []

        def post():
            replies.append(
                httpx.post(f"{url}/v1/classify", content=body, headers={"Content-Type": "image/png"}, timeout=120)
            )

        senders = [threading.Thread(target=post) for _ in range(8)]
        for t in senders:
            t.start()
        while any(t.is_alive() for t in senders):
            health.append(httpx.get(f"{url}/healthz", timeout=10).status_code)
            time.sleep(0.2)
        for t in senders:
            t.join()
        peak = _peak_rss(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert [r.status_code for r in replies] == [200] * 8
    assert {r.json()["results"][0]["class"] for r in replies} == {7}
    assert health and set(health) == {200}  # answered while the pictures were decoded
    assert peak < 1.5 * 2**30, f"peak RSS {peak / 2**20:.0f} MiB"


def test_cnv_models_are_listed_and_a_photo_and_records_are_classified(original_dir, cifar_test):
    from conftest import PICTURES, need

    classifiers = {
        "lfcW1A1": bnn.Classifier("lfcW1A1", original_dir / "lfcW1A1"),
        "cnvW1A2": bnn.Classifier("cnvW1A2", "cifar10", "reference"),
    }
    with TestClient(create_app(classifiers)) as c:
        models = {m["network"]: m for m in c.get("/v1/models").json()["models"]}
        assert models["cnvW1A2"]["family"] == "cnv" and models["cnvW1A2"]["image_shape"] == [32, 32, 3]
        assert models["cnvW1A2"]["params"] == "cifar10" and models["cnvW1A2"]["classes"][4] == "Deer"
        deer = need(PICTURES / "deer.jpg").read_bytes()
        reply = c.post("/v1/classify?model=cnvW1A2", content=deer, headers={"Content-Type": "image/jpeg"}).json()
        assert reply["results"][0]["class"] == 4 and reply["results"][0]["label"] == "Deer"
        assert (
            reply["results"][0]["scores"]
            == classifiers["cnvW1A2"].infer(classifiers["cnvW1A2"].preprocess(deer)[None]).scores[0].tolist()
        )
        from bnn.formats import cifar

        records = cifar.write_batch(Path(os.environ.get("TMPDIR", "/tmp")) / f"r{os.getpid()}.bin", cifar_test[0][:5])
        body = records.read_bytes()
        records.unlink()
        reply = c.post("/v1/classify?model=cnvW1A2", content=body, headers={"Content-Type": "application/x-cifar10"})
        expected = classifiers["cnvW1A2"].predict(cifar_test[0][:5]).tolist()
        assert [r["class"] for r in reply.json()["results"]] == expected
        bad = c.post("/v1/classify?model=cnvW1A2", content=body[:-1], headers={"Content-Type": "application/x-cifar10"})
        assert bad.status_code == 400 and "request body: 15364 bytes is not a whole number" in bad.json()["error"]
        lfc = c.post("/v1/classify?model=lfcW1A1", content=deer, headers={"Content-Type": "image/jpeg"})
        assert lfc.status_code == 200 and len(lfc.json()["results"][0]["scores"]) == 10  # the digit path, as before
