"""Training on folders of pictures: the layouts, the bad ones, and a set that classifies its own test folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import IN_CI
from folder_data import make_dataset
from test_cli import run

torch = pytest.importorskip("torch") if not IN_CI else __import__("torch")
pytest.importorskip("PIL") if not IN_CI else __import__("PIL")

from bnn.errors import BnnError  # noqa: E402
from bnn.formats.images import load_image  # noqa: E402
from bnn.train.data import load_folder_dataset  # noqa: E402

SIZES = {"bar": 40, "cross": 30, "dash": 34, "ring": 24}  # unequal on purpose


@pytest.fixture(scope="module")
def split_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_dataset(root / "train", SIZES, seed=1)
    make_dataset(root / "test", {k: 8 for k in SIZES}, seed=2)
    return root


def test_cli_trains_evaluates_and_classifies_a_picture_folder(split_dataset, tmp_path):
    out, export = tmp_path / "run", tmp_path / "export"
    trained = run(
        "train",
        "--data",
        split_dataset,
        "--epochs",
        "5",
        "--batch-size",
        "20",
        "--threads",
        "1",
        "--out",
        out,
        "--export",
        export,
    ).stdout
    assert f"exported {export}" in trained
    meta = json.loads((export / "bnn-meta.json").read_text())
    assert (export / "classes.txt").read_text().split() == sorted(SIZES)
    assert meta["preprocessing"].startswith("bnn.formats.images.load_image") and meta["test_split"] == "test/ folder"
    # Four classes: chance is 25 %; drawn shapes are learnt far better than that in 5 epochs.
    evaluated = run("evaluate", "-p", export, "--data", split_dataset).stdout
    correct, total = map(int, evaluated.split("accuracy: ")[1].split(" =")[0].split("/"))
    assert total == 32 and correct >= 24
    assert "bar cross  dash  ring" in evaluated  # the confusion matrix is headed by the class names
    rows = run("classify", "--csv", "-p", export, split_dataset / "test").stdout.splitlines()
    assert rows[0] == "input,class,label" and len(rows) == 33
    right = sum(row.split(",")[2] == row.split("/")[-2] for row in rows[1:])
    assert right == correct  # the same predictions as evaluate, picture by picture


def test_held_out_split_is_stratified_and_recorded(tmp_path):
    root = make_dataset(tmp_path / "flat", SIZES, seed=3)
    ds = load_folder_dataset(root, test_fraction=0.25, seed=0, progress=False)
    assert ds.classes == sorted(SIZES)
    assert len(ds.test_y) == round(0.25 * sum(SIZES.values()))
    counts = np.bincount(ds.test_y, minlength=4)
    assert all(abs(c - 0.25 * SIZES[name]) <= 1 for c, name in zip(counts, ds.classes))
    assert "stratified 25%" in ds.test_source and len(ds.test_files) == len(ds.test_y)
    # Training sees exactly what classify_image sees: the same preprocessing function.
    bar = ds.classes.index("bar")
    for picture in sorted((root / "bar").iterdir()):
        held = str(picture) in ds.test_files
        pool = ds.test_x[ds.test_y == bar] if held else ds.train_x[ds.train_y == bar]
        assert any((img == load_image(picture)).all() for img in pool), picture


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "no class folders"),
        ({"only": 5}, "1 class folder"),
        ({"a": 5, "empty": 0}, "class 'empty' has no pictures"),
    ],
)
def test_bad_folders_are_named(tmp_path, layout, message):
    root = tmp_path / "data"
    root.mkdir()
    for name, count in layout.items():
        (root / name).mkdir()
        if count:
            make_dataset(tmp_path / "src", {"bar": count})
            for f in (tmp_path / "src" / "bar").iterdir():
                (root / name / f.name).write_bytes(f.read_bytes())
    with pytest.raises(BnnError, match=message):
        load_folder_dataset(root, progress=False)


def test_unreadable_picture_is_named(tmp_path):
    root = make_dataset(tmp_path / "data", {"bar": 5, "dash": 5})
    (root / "dash" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(BnnError, match="broken.png"):
        load_folder_dataset(root, progress=False)


def test_test_folder_with_unknown_class_is_named(split_dataset, tmp_path):
    root = tmp_path / "data"
    make_dataset(root / "train", {"bar": 6, "dash": 6})
    make_dataset(root / "test", {"bar": 2, "ring": 2})
    with pytest.raises(BnnError, match="class folder 'ring' is not among train/'s: bar, dash"):
        load_folder_dataset(root, progress=False)


def test_too_many_classes_is_refused(tmp_path):
    root = make_dataset(tmp_path / "data", {"bar": 1})
    for i in range(64):
        (root / f"c{i:02d}").mkdir()
        (root / f"c{i:02d}" / "one.png").write_bytes((root / "bar" / "bar-000.png").read_bytes())
    with pytest.raises(BnnError, match="65 class folder"):
        load_folder_dataset(root, progress=False)
