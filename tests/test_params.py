from __future__ import annotations

import filecmp

import numpy as np
import pytest
from conftest import ORIGINAL_SETS, SHIPPED_CORRECT, need, random_cnv_params, random_params

import bnn
from bnn.errors import ParamsError, ParamsNotFoundError, UnknownNameError
from bnn.params import find_params, read_params, write_params


def test_original_geometry(original_dir):
    p = read_params(original_dir / "lfcW1A1")
    assert [layer.weights.shape for layer in p.layers] == [(1024, 832), (1024, 1024), (1024, 1024), (64, 1024)]
    assert [layer.pe for layer in p.layers] == [32, 64, 32, 16]
    assert [layer.simd for layer in p.layers] == [64, 32, 64, 8]
    assert p.classes == [str(i) for i in range(10)]
    assert p.decision == "highest_bit"
    q = read_params(original_dir / "lfcW1A2")
    assert [layer.n_thresholds for layer in q.layers] == [2, 2, 2, 1]


@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_write_back_is_byte_identical(original_dir, tmp_path, network):
    src = original_dir / network
    write_params(read_params(src), tmp_path / network)
    names = sorted(p.name for p in src.iterdir())
    assert sorted(p.name for p in (tmp_path / network).iterdir()) == names
    match, mismatch, errors = filecmp.cmpfiles(src, tmp_path / network, names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == 289


def test_26_classes_round_trip_and_classify(tmp_path):
    rng = np.random.default_rng(26)
    params = random_params(rng, n_classes=26, out_rows=32)
    params.classes = [chr(ord("a") + i) for i in range(26)]
    folder = write_params(params, tmp_path / "letters" / "lfcW1A1")
    back = read_params(folder)
    assert back.classes == params.classes and back.layers[3].mh == 32
    for a, b in zip(params.layers, back.layers):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.thresholds, b.thresholds)
    clf = bnn.LfcClassifier("lfcW1A1", "letters", params_path=tmp_path, verbose=False)
    assert clf.classes == params.classes
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    classes = clf.classify_mnists(images)
    assert len(classes) == 50 and all(0 <= c < 26 for c in classes)


def test_pixel_thresholds_are_kept_in_the_folder(tmp_path):
    params = random_params(np.random.default_rng(4), "lfcW1A2", (32, 64, 32), 10, 784, pixel_thresholds=(64, 191))
    folder = write_params(params, tmp_path / "three-level")
    assert json_meta(folder)["pixel_thresholds"] == [64, 191]
    back = read_params(folder)
    assert back.pixel_thresholds == (64, 191) and "pixel_thresholds" not in back.metadata
    images = np.random.default_rng(5).integers(0, 256, (40, 784), dtype=np.uint8)
    np.testing.assert_array_equal(
        bnn.Classifier(None, back).infer(images).scores, bnn.Classifier(None, params).infer(images).scores
    )
    # The original's p >= 128 goes without saying.
    plain = write_params(random_params(np.random.default_rng(4), "lfcW1A1", (32, 64, 32)), tmp_path / "plain")
    assert "pixel_thresholds" not in json_meta(plain)


@pytest.mark.parametrize(
    ("network", "pixels", "message"),
    [
        ("lfcW1A1", (60, 190), "3-level pixels \\(two pixel thresholds\\) need a W1A2 network, not lfcW1A1"),
        ("lfcW1A2", (190, 60), "pixel thresholds \\[190, 60\\]: one or two rising values in 0..256"),
        ("lfcW1A2", (300,), "pixel thresholds \\[300\\]"),
        ("lfcW1A2", (), "pixel thresholds \\[\\]"),
    ],
)
def test_bad_pixel_thresholds_are_refused(network, pixels, message):
    with pytest.raises(ParamsError, match=message):
        random_params(np.random.default_rng(4), network, (32, 64, 32), pixel_thresholds=pixels)


def json_meta(folder):
    import json

    return json.loads((folder / "bnn-meta.json").read_text())


@pytest.mark.parametrize("hidden", [(128,), (64, 32, 64, 128, 64)])
def test_other_depths_round_trip_and_classify(tmp_path, hidden):
    params = random_params(np.random.default_rng(9), "lfcW1A2", hidden, 10, 832)
    folder = write_params(params, tmp_path / "deep")
    assert json_meta(folder)["layers"] == len(hidden) + 1
    back = read_params(folder)
    assert [layer.weights.shape for layer in back.layers] == [layer.weights.shape for layer in params.layers]
    images = np.random.default_rng(5).integers(0, 256, (40, 784), dtype=np.uint8)
    want = bnn.Classifier(None, params).infer(images).scores
    np.testing.assert_array_equal(bnn.Classifier(None, back).infer(images).scores, want)


def test_missing_weight_file(original_dir, tmp_path):
    folder = write_params(read_params(original_dir / "lfcW1A1"), tmp_path / "lfcW1A1")
    (folder / "2-5-weights.bin").unlink()
    with pytest.raises(ParamsError, match=r"2-5-weights.bin: missing parameter file"):
        read_params(folder)


def test_mis_sized_threshold_file(original_dir, tmp_path):
    folder = write_params(read_params(original_dir / "lfcW1A1"), tmp_path / "lfcW1A1")
    (folder / "1-3-thres.bin").write_bytes(bytes(8 * 15))
    with pytest.raises(ParamsError, match=r"1-3-thres.bin: 120 bytes, but 1-0-thres.bin has 128"):
        read_params(folder)


def test_odd_sized_file(original_dir, tmp_path):
    folder = write_params(read_params(original_dir / "lfcW1A1"), tmp_path / "lfcW1A1")
    (folder / "0-0-weights.bin").write_bytes(bytes(13))
    with pytest.raises(ParamsError, match=r"0-0-weights.bin: weights file of 13 bytes"):
        read_params(folder)


def test_missing_classes(original_dir, tmp_path):
    folder = write_params(read_params(original_dir / "lfcW1A2"), tmp_path / "lfcW1A2")
    (folder / "classes.txt").unlink()
    with pytest.raises(ParamsError, match=r"classes.txt: missing classes.txt"):
        read_params(folder)


def test_wrong_network_layers(original_dir):
    # W1A1 files read as W1A2: 32 thresholds per file cannot be 2 per neuron for 1024 neurons of layer 3.
    with pytest.raises(ParamsError, match="layer"):
        read_params(original_dir / "lfcW1A1", network="lfcW1A2")


def test_unknown_network():
    with pytest.raises(UnknownNameError, match=r"unknown network 'lfcW2A2'; known networks: lfcW1A1, lfcW1A2"):
        find_params("lfcW2A2", "mnist")


def test_lookup_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv("BNN_PARAMS_PATH", str(tmp_path / "env"))
    with pytest.raises(ParamsNotFoundError) as err:
        find_params("lfcW1A1", "nosuchset", params_path=tmp_path / "arg")
    msg = str(err.value)
    assert "nosuchset" in msg
    for place in (tmp_path / "arg", tmp_path / "env", bnn.params.package_params_dir()):
        assert str(place / "nosuchset" / "lfcW1A1") in msg


def test_env_path_and_available(original_dir, monkeypatch):
    monkeypatch.setenv("BNN_PARAMS_PATH", str(original_dir.parent))
    assert find_params("lfcW1A2", "mnist") == original_dir / "lfcW1A2"
    assert "mnist" in bnn.available_params("lfcW1A1")


def test_write_refuses_to_overwrite(original_dir, tmp_path):
    p = read_params(original_dir / "lfcW1A1")
    folder = write_params(p, tmp_path / "lfcW1A1")
    with pytest.raises(FileExistsError, match="not empty"):
        write_params(p, folder)


def test_overwrite_replaces_the_whole_set(original_dir, tmp_path):
    # An argmax set with its bnn-meta.json, replaced by the original (no meta file): none of it survives.
    original = read_params(original_dir / "lfcW1A1")
    argmax = read_params(original_dir / "lfcW1A1")
    argmax.decision = "argmax"
    folder = write_params(argmax, tmp_path / "lfcW1A1")
    assert read_params(folder).decision == "argmax"
    write_params(original, folder, overwrite=True)
    assert read_params(folder).decision == "highest_bit"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (original_dir / "lfcW1A1").iterdir())


def test_overwrite_with_another_folding_stays_readable(original_dir, tmp_path):
    original = read_params(original_dir / "lfcW1A1")
    folder = write_params(original, tmp_path / "lfcW1A1")
    refolded = read_params(original_dir / "lfcW1A1")
    for layer in refolded.layers:
        layer.pe //= 2  # fewer L-P files per layer: the old set's extra ones must not stay behind
    write_params(refolded, folder, overwrite=True)
    back = read_params(folder)
    assert [layer.pe for layer in back.layers] == [layer.pe for layer in refolded.layers]
    assert all((a.weights == b.weights).all() for a, b in zip(back.layers, original.layers))


def test_overwrite_refuses_a_folder_with_other_files(original_dir, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt, which is not part of a parameter set"):
        write_params(read_params(original_dir / "lfcW1A1"), folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_shipped_sets_golden_accuracy(mnist_test, network):
    # The model card's figures, exactly: a changed set or arithmetic shows here first.
    images, labels = mnist_test
    clf = bnn.Classifier(network, bnn.params.package_params_dir() / "mnist" / network)
    assert int((clf.predict(images) == labels).sum()) == SHIPPED_CORRECT[network]


@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_shipped_sets_record_no_machine_paths(network):
    meta = bnn.params.read_params(bnn.params.package_params_dir() / "mnist" / network).metadata
    files = [meta["config"][k] for k in ("train_images", "train_labels", "test_images", "test_labels")]
    assert all(f.endswith(("-ubyte", "-ubyte.gz")) and "/" not in f for f in files), files
    assert meta["decision"] == "argmax" and meta["epoch_selected"] <= meta["epochs_run"]


# --- CNV folders ---

CNV_SETS = [("cifar10", "cnvW1A1"), ("cifar10", "cnvW1A2"), ("cifar10", "cnvW2A2"), ("road-signs", "cnvW1A1")]
CNV_SETS += [("streetview", "cnvW1A1")]


@pytest.mark.parametrize(("dataset", "network"), CNV_SETS)
def test_cnv_write_back_is_byte_identical(tmp_path, dataset, network):
    src = need(ORIGINAL_SETS / dataset / network)
    params = read_params(src)
    write_params(params, tmp_path / network)
    names = sorted(p.name for p in src.iterdir())
    assert sorted(p.name for p in (tmp_path / network).iterdir()) == names  # no bnn-meta.json: nothing to add
    match, mismatch, errors = filecmp.cmpfiles(src, tmp_path / network, names, shallow=False)
    assert mismatch == [] and errors == []


@pytest.mark.parametrize(("dataset", "network"), CNV_SETS)
def test_the_shipped_cnv_sets_are_the_originals(dataset, network):
    src = need(ORIGINAL_SETS / dataset / network)
    shipped = bnn.params.package_params_dir() / dataset / network
    names = sorted(p.name for p in src.iterdir())
    assert sorted(p.name for p in shipped.iterdir()) == names
    assert filecmp.cmpfiles(src, shipped, names, shallow=False)[0] == names
    assert (bnn.params.package_params_dir() / "LICENSE-BNN-PYNQ").read_text().count("Copyright (c) 2016, Xilinx") == 1


def test_cnv_geometry_and_weights(tmp_path):
    w1 = read_params(need(ORIGINAL_SETS / "cifar10" / "cnvW1A1"))
    assert [layer.weights.shape for layer in w1.layers] == [
        (64, 27),
        (64, 576),
        (128, 576),
        (128, 1152),
        (256, 1152),
        (256, 2304),
        (512, 256),
        (512, 512),
        (64, 512),
    ]
    assert [layer.conv.pool for layer in w1.layers[:6]] == [False, True, False, True, False, False]
    assert [layer.threshold_bits for layer in w1.layers] == [24] + [16] * 8
    assert w1.image_shape == (32, 32, 3) and w1.layers[-1].n_thresholds == 0 and w1.decision == "positive_max"
    w2 = read_params(need(ORIGINAL_SETS / "cifar10" / "cnvW2A2"))
    assert all(layer.weights.dtype == np.int8 for layer in w2.layers)
    assert set(np.unique(w2.layers[3].weights)) == {-1, 0, 1}  # 2-bit two's complement, as stored
    streetview = read_params(need(ORIGINAL_SETS / "streetview" / "cnvW1A1"))
    assert streetview.classes == [str(i) for i in range(1, 10)] + ["0"] and streetview.layers[-1].mh == 12


@pytest.mark.parametrize(
    ("dataset", "stored", "asked", "message"),
    [
        ("cifar10", "cnvW2A2", "cnvW1A1", r"0-0-weights.bin: 72 words do not divide among the 16 neurons"),
        (
            "cifar10",
            "cnvW2A2",
            "cnvW1A2",
            r"layer 1 has 1152 columns, but cnvW1A2's 3x3 convolution over 64 "
            r"channels has 576: is this a cnvW1A2 set\?",
        ),
        ("cifar10", "cnvW1A1", "cnvW2A2", r"layer 0 has 54 columns, but cnvW2A2's .* is this a cnvW2A2 set\?"),
    ],
)
def test_a_cnv_folder_read_as_another_network_is_named(dataset, stored, asked, message):
    with pytest.raises(ParamsError, match=message):
        read_params(need(ORIGINAL_SETS / dataset / stored), asked)


def test_a_truncated_cnv_file_is_named(tmp_path):
    src = need(ORIGINAL_SETS / "cifar10" / "cnvW1A1")
    copy = tmp_path / "cnvW1A1"
    copy.mkdir()
    for f in src.iterdir():
        copy.joinpath(f.name).write_bytes(f.read_bytes())
    bad = copy / "3-5-weights.bin"
    bad.write_bytes(bad.read_bytes()[:-16])
    with pytest.raises(
        ParamsError, match=r"3-5-weights.bin: 2288 bytes, but 3-0-weights.bin has 2304: every weights file"
    ):
        read_params(copy)


def test_random_cnv_geometry_round_trips_with_its_record(tmp_path):
    params = random_cnv_params(np.random.default_rng(3), "cnvW2A2", 8, (3, 5, 6), (False, True), (12,))
    folder = write_params(params, tmp_path / "small" / "cnvW2A2")
    assert json_meta(folder)["convs"] == [[3, 8, 3, 0], [5, 6, 3, 1]]
    back = read_params(folder)
    assert [layer.conv for layer in back.layers] == [layer.conv for layer in params.layers]
    for a, b in zip(params.layers, back.layers):
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.thresholds, b.thresholds)
