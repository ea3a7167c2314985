"""The original notebook's calls, as its users wrote them."""

from __future__ import annotations

import re

import numpy as np
import pytest

import bnn
from bnn.errors import ImageError, ParamsNotFoundError, UnknownNameError

TIMING = re.compile(
    r"^Inference took (?P<total>\d+\.\d\d) microseconds, (?P<per>\d+\.\d\d) usec per image\n"
    r"Classification rate: (?P<rate>\d+\.\d\d) images per second\n$"
)


@pytest.fixture
def original_path(original_dir, monkeypatch):
    monkeypatch.setenv("BNN_PARAMS_PATH", str(original_dir.parent))
    return original_dir


@pytest.mark.parametrize(("network", "correct"), [(bnn.NETWORK_LFCW1A1, 9840), (bnn.NETWORK_LFCW1A2, 9849)])
@pytest.mark.parametrize("runtime", [bnn.RUNTIME_HW, bnn.RUNTIME_SW])
def test_notebook_flow(original_path, capsys, network, correct, runtime):
    labels = bnn.idx.read_labels(original_path.parents[1] / "mnist" / "t10k-labels-idx1-ubyte.gz")
    clf = bnn.LfcClassifier(network, "mnist", runtime)
    assert clf.classes == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    result = clf.classify_mnists(str(original_path.parents[1] / "mnist" / "t10k-images-idx3-ubyte.gz"))
    assert isinstance(result, np.ndarray) and result.dtype == np.int32 and result.shape == (10000,)
    assert int((result == labels).sum()) == correct
    timing = TIMING.match(capsys.readouterr().out)
    # The lines say what usecPerImage holds: the whole call's time over 10,000 images, and its inverse.
    assert float(timing["per"]) == pytest.approx(clf.usecPerImage, abs=0.006) and clf.usecPerImage > 0
    assert float(timing["total"]) == pytest.approx(10000 * clf.usecPerImage, rel=1e-3, abs=0.01)
    assert float(timing["rate"]) == pytest.approx(1e6 / clf.usecPerImage, rel=1e-3)
    assert clf.runtime == (
        "native" if runtime == bnn.RUNTIME_HW and bnn.runtimes.native.is_available() else "reference"
    )


def test_classify_mnist_single_image_file(original_path, mnist_test, tmp_path, capsys):
    images, labels = mnist_test
    path = bnn.idx.write_idx(tmp_path / "one-idx3-ubyte", images[:1])
    with bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "mnist") as clf:
        assert clf.classify_mnist(str(path)) == labels[0]
        assert clf.classify_mnist(images[0]) == labels[0]
        assert clf.class_name(3) == "3"
    assert TIMING.match(capsys.readouterr().out.split("\n", 2)[2])
    with pytest.raises(RuntimeError, match="closed"):
        clf.classify_mnist(images[0])


def test_classify_mnist_rejects_several_images(original_path, mnist_test, tmp_path):
    path = bnn.idx.write_idx(tmp_path / "ten-idx3-ubyte", mnist_test[0][:10])
    clf = bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "mnist", verbose=False)
    with pytest.raises(ImageError, match="holds 10 images; classify_mnist takes one"):
        clf.classify_mnist(path)


def test_verbose_false_is_silent(original_path, mnist_test, capsys):
    clf = bnn.LfcClassifier(bnn.NETWORK_LFCW1A2, "mnist", bnn.RUNTIME_HW, verbose=False)
    assert (clf.classify_mnists(mnist_test[0][:5]) == clf.predict(mnist_test[0][:5])).all()
    assert capsys.readouterr().out == ""


def test_scores_and_bits(original_path, mnist_test):
    clf = bnn.Classifier(bnn.NETWORK_LFCW1A1, "mnist")
    out = clf.infer(mnist_test[0][:3])
    assert out.scores.shape == (3, 10) and out.scores.dtype == np.int32
    assert out.bits.shape == (3, 10) and out.bits.dtype == bool
    argmax = bnn.Classifier(bnn.NETWORK_LFCW1A1, "mnist", decision="argmax")
    assert argmax.predict(mnist_test[0][:3]).tolist() == np.argmax(out.scores, 1).tolist()


def test_repr_names_runtime_and_kernel(original_path):
    clf = bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "mnist", bnn.RUNTIME_SW)
    assert "runtime=reference kernel=numpy" in repr(clf)


def test_unknown_names(original_path):
    with pytest.raises(UnknownNameError, match="unknown network 'lfcW9A9'"):
        bnn.LfcClassifier("lfcW9A9", "mnist")
    with pytest.raises(UnknownNameError, match="unknown runtime 'python_fpga'"):
        bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "mnist", "python_fpga")
    with pytest.raises(ParamsNotFoundError, match="parameter set 'cifar10' for lfcW1A1 not found; tried:"):
        bnn.LfcClassifier(bnn.NETWORK_LFCW1A1, "cifar10")


def test_import_has_no_side_effects():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import bnn"], capture_output=True, text=True, check=True)
    assert out.stdout == "" and out.stderr == ""
