"""Atomic writes: complete or absent, and readable by others as a plain write would be."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from conftest import random_params

from bnn._atomic import atomic_write
from bnn.formats import idx
from bnn.params import write_params


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_and_folders_get_the_umask_modes(tmp_path, umask_022):
    path = idx.write_idx(tmp_path / "m-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    assert _mode(path) == 0o644
    folder = write_params(random_params(np.random.default_rng(0)), tmp_path / "sets" / "lfcW1A1")
    assert _mode(folder) == 0o755
    assert {_mode(f) for f in folder.iterdir()} == {0o644}
    onnx = pytest.importorskip("bnn.formats.qonnx")
    model = onnx.write_qonnx(random_params(np.random.default_rng(1)), tmp_path / "m.onnx")
    assert _mode(model) == 0o644


def test_a_replaced_file_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "private.bin"
    path.write_bytes(b"old")
    path.chmod(0o600)
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o600
