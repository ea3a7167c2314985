"""Downloads from a local HTTP server (no internet here): success, checksum failure, resume."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST, need

from bnn import datasets
from bnn.errors import DownloadError


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from `root` with HTTP Range support; records the Range headers it saw."""

    root: Path
    ranges: list

    def do_GET(self):  # noqa: N802 - http.server's name
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        header = self.headers.get("Range")
        self.ranges.append(header)
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    for f in need(MNIST).iterdir():
        (root / f.name).write_bytes(f.read_bytes())
    handler = type("H", (_Handler,), {"root": root, "ranges": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, handler
    httpd.shutdown()
    httpd.server_close()


def test_download_and_read(server, tmp_path):
    url, _, handler = server
    images, labels = datasets.mnist("test", cache_dir=tmp_path / "cache", base_url=url)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert len(handler.ranges) == 4
    train_x, _ = datasets.mnist("train", cache_dir=tmp_path / "cache", base_url=url)
    assert train_x.shape == (60000, 28, 28) and len(handler.ranges) == 4  # cached: no new request
    assert not list((tmp_path / "cache" / "mnist").glob("*.part"))


def test_checksum_failure_leaves_nothing(server, tmp_path):
    url, root, _ = server
    data = bytearray((root / "t10k-labels-idx1-ubyte.gz").read_bytes())
    import gzip

    raw = bytearray(gzip.decompress(bytes(data)))
    raw[100] ^= 1
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DownloadError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        datasets.download_mnist(tmp_path / "cache", url)
    folder = tmp_path / "cache" / "mnist"
    assert not (folder / "t10k-labels-idx1-ubyte.gz").exists()
    assert not (folder / "t10k-labels-idx1-ubyte.gz.part").exists()


def test_interrupted_download_resumes(server, tmp_path):
    url, root, handler = server
    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    full = (root / "train-images-idx3-ubyte.gz").read_bytes()
    (folder / "train-images-idx3-ubyte.gz.part").write_bytes(full[:1_000_000])
    datasets.download_mnist(tmp_path / "cache", url)
    assert "bytes=1000000-" in handler.ranges
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes() == full


def test_local_folder_source(tmp_path):
    paths = datasets.download_mnist(tmp_path / "cache", str(need(MNIST)))
    assert len(paths) == 4 and all(p.is_file() for p in paths)
    _, labels = datasets.mnist("test", cache_dir=tmp_path / "cache")
    assert np.bincount(labels).tolist()[:2] == [980, 1135]


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        datasets.download_mnist(tmp_path / "cache", "http://127.0.0.1:9/")
