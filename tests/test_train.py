"""Training, export and import: exported parameters compute exactly what the PyTorch model computes."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
from conftest import IN_CI

# Training is an optional extra: skipped without torch, except in CI, which installs it.
torch = pytest.importorskip("torch") if not IN_CI else __import__("torch")

import bnn  # noqa: E402
from bnn.formats import idx  # noqa: E402
from bnn.params import read_params, write_params  # noqa: E402
from bnn.runtimes.reference import ReferenceRuntime  # noqa: E402
from bnn.train import TrainConfig, export_params, import_params, pixels_to_inputs, train  # noqa: E402


@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_import_export_round_trip_is_byte_identical(original_dir, tmp_path, network):
    src = original_dir / network
    params = read_params(src)
    model = import_params(params)
    out = write_params(export_params(model, params.classes, template=params), tmp_path / network)
    names = sorted(p.name for p in src.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    _, mismatch, errors = filecmp.cmpfiles(src, out, names, shallow=False)
    assert mismatch == [] and errors == []


def test_imported_model_predicts_like_the_original(original_dir, mnist_test):
    params = read_params(original_dir / "lfcW1A2")
    model = import_params(params).eval()
    images = mnist_test[0][:2000]
    with torch.no_grad():
        torch_pred = model(pixels_to_inputs(images)).argmax(1).numpy()
    ref = ReferenceRuntime(params).run(images.reshape(-1, 784), "argmax")
    np.testing.assert_array_equal(torch_pred, ref.classes)


def _synthetic(tmp_path, n_classes=5, n=600, seed=3):
    """A tiny dataset of 5 classes: noisy bright bars at class-dependent rows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n).astype(np.uint8)
    images = (rng.random((n, 28, 28)) < 0.1).astype(np.uint8) * 255
    for i, c in enumerate(labels):
        images[i, 3 + 5 * c : 6 + 5 * c, 4:24] = 200
    paths = {}
    for split, sl in (("train", slice(0, 500)), ("test", slice(500, n))):
        paths[f"{split}_images"] = str(idx.write_idx(tmp_path / f"{split}-images.gz", images[sl]))
        paths[f"{split}_labels"] = str(idx.write_idx(tmp_path / f"{split}-labels.gz", labels[sl]))
    return paths, images[500:], labels[500:]


@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_tiny_training_exports_exactly(tmp_path, network):
    paths, test_x, test_y = _synthetic(tmp_path)
    classes = ["a", "b", "c", "d", "e"]
    config = TrainConfig(network=network, epochs=2, batch_size=50, lr=0.01, threads=2, classes=classes, **paths)
    result = train(config, tmp_path / "run", progress=False)
    assert len(result.history) == 2 and (tmp_path / "run" / "checkpoint.pt").exists()
    model = result.model.eval()
    with torch.no_grad():
        torch_pred = model(pixels_to_inputs(test_x)).argmax(1).numpy()
    assert (torch_pred == test_y).mean() > 0.9
    folder = write_params(result.params, tmp_path / "params" / "bars" / network)
    assert read_params(folder).decision == "argmax"
    for runtime in ["reference", "native"]:
        clf = bnn.Classifier(network, "bars", runtime, params_path=tmp_path / "params")
        np.testing.assert_array_equal(clf.predict(test_x), torch_pred)
        assert clf.classes == classes


def test_resume_continues_where_it_stopped(tmp_path):
    paths, _, _ = _synthetic(tmp_path)
    classes = ["a", "b", "c", "d", "e"]
    base = dict(network="lfcW1A1", epochs=2, batch_size=50, threads=1, classes=classes, **paths)
    full = train(TrainConfig(**base), tmp_path / "full", progress=False)
    train(TrainConfig(**base, max_steps=10), tmp_path / "resumed", progress=False)  # epoch 1 only
    state = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1
    # Same configuration without the stop: resumes at epoch 2 and ends where the uninterrupted run did.
    state["config"]["max_steps"] = None
    torch.save(state, tmp_path / "resumed" / "checkpoint.pt")
    resumed = train(TrainConfig(**base), tmp_path / "resumed", progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for a, b in zip(full.params.layers, resumed.params.layers):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.thresholds, b.thresholds)


def test_init_starts_from_another_runs_selected_weights(tmp_path):
    paths, _, _ = _synthetic(tmp_path)
    base = dict(network="lfcW1A1", epochs=1, batch_size=50, threads=1, classes=list("abcde"), **paths)
    first = train(TrainConfig(**base), tmp_path / "first", progress=False)
    # No step taken: the second run exports exactly the weights it started from.
    second = train(TrainConfig(**base, init=str(tmp_path / "first"), max_steps=0), tmp_path / "second", progress=False)
    for a, b in zip(first.params.layers, second.params.layers):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.thresholds, b.thresholds)
    assert second.params.metadata["config"]["init"] == "first"
    with pytest.raises(bnn.errors.BnnError, match="was trained with validation 0, this run has 100"):
        train(TrainConfig(**base, validation=100, init=str(tmp_path / "first")), tmp_path / "third", progress=False)


def test_labels_beyond_classes_are_rejected(tmp_path):
    paths, _, _ = _synthetic(tmp_path)
    config = TrainConfig(epochs=1, classes=["a", "b"], **paths)
    with pytest.raises(bnn.errors.BnnError, match="labels go up to 4 but there are 2 class names"):
        train(config, tmp_path / "run", progress=False)
