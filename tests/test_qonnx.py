"""QONNX out: our export, run by qonnx's own executor, gives our accumulators and activations layer by layer."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IN_CI

for module in ("onnx", "qonnx"):
    pytest.importorskip(module) if not IN_CI else __import__(module)

import onnx  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from test_cli import run  # noqa: E402

import bnn  # noqa: E402
from bnn.formats.qonnx import write_qonnx  # noqa: E402
from bnn.runtimes.reference import ReferenceRuntime  # noqa: E402

N = 1000


def _shipped(network):
    return bnn.params.read_params(bnn.params.package_params_dir() / "mnist" / network)


@pytest.mark.parametrize("source", ["original", "shipped"])
@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_qonnx_executor_gives_our_numbers_layer_by_layer(original_dir, mnist_test, tmp_path, source, network):
    params = bnn.params.read_params(original_dir / network) if source == "original" else _shipped(network)
    images = mnist_test[0][:N].reshape(N, 784)
    # The graph FINN gets, with a batch of N declared so the executor runs them in one pass.
    model = ModelWrapper(str(write_qonnx(params, tmp_path / "m.onnx", input_shape=(N, 784)))).transform(InferShapes())
    got = execute_onnx(model, {"global_in": images.astype(np.float32)}, return_full_exec_context=True)
    layers = list(ReferenceRuntime(params).trace(images))
    c = len(params.classes)
    for i, (acc, values, _) in enumerate(layers[:-1]):
        np.testing.assert_array_equal(got[f"acc{i}"], acc)
        np.testing.assert_array_equal(got[f"out{i}"], values)
    np.testing.assert_array_equal(got["acc3"], layers[-1][0][:, :c])
    np.testing.assert_array_equal(got["scores"], bnn.Classifier(network, params).infer(images).scores)


def test_cli_converts_to_qonnx_with_labelselect(original_dir, mnist_test, tmp_path):
    dest = tmp_path / "lfc.onnx"
    assert run("params", "convert", original_dir / "lfcW1A1", dest, "--topk", "--input-shape", "1,1,28,28").stdout
    meta = {p.key: p.value for p in onnx.load(dest).metadata_props}
    assert meta["bnn.network"] == "lfcW1A1" and meta["bnn.classes"].split("\n") == [str(i) for i in range(10)]
    model = ModelWrapper(str(dest)).transform(InferShapes())
    clf = bnn.Classifier("lfcW1A1", original_dir / "lfcW1A1", decision="argmax")
    for image in mnist_test[0][:5]:
        out = execute_onnx(model, {"global_in": image.reshape(1, 1, 28, 28).astype(np.float32)})
        assert int(out["global_out"][0, 0]) == int(clf.predict(image[None])[0])
