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
#: The original's single-image lines (its `inference`): the time alone, then the rate.
TIMING_ONE = re.compile(
    r"^Inference took (?P<per>\d+\.\d\d) microseconds\nClassification rate: (?P<rate>\d+\.\d\d) images per second\n"
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
    lines = capsys.readouterr().out
    assert TIMING_ONE.match(lines) and TIMING_ONE.match(lines.split("\n", 2)[2])
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


# --- CnvClassifier: the CNV-QNN_Cifar10_Testset notebook and the original's picture tests ---


@pytest.fixture
def cifar_path():
    from conftest import CIFAR, need

    return str(need(CIFAR))


@pytest.mark.slow
@pytest.mark.parametrize("network", [bnn.NETWORK_CNVW1A1, bnn.NETWORK_CNVW1A2, bnn.NETWORK_CNVW2A2])
def test_cnv_notebook_flow(cifar_path, cifar_test, capsys, network):
    from conftest import CIFAR_CORRECT

    clf = bnn.CnvClassifier(network, "cifar10", bnn.RUNTIME_SW)  # the shipped sets, right after install
    assert clf.classes[:3] == ["Airplane", "Automobile", "Bird"] and len(clf.classes) == 10
    result = clf.classify_cifars(cifar_path)
    assert result.dtype == np.int32 and result.shape == (932,)
    assert int((result == cifar_test[1]).sum()) == CIFAR_CORRECT[network]
    timing = TIMING.match(capsys.readouterr().out)
    assert float(timing["per"]) == pytest.approx(clf.usecPerImage, abs=0.006)
    details = clf.classify_cifars_details(cifar_path)
    assert details.shape == (9320,) and (details.reshape(932, 10).argmax(1) == result).mean() > 0.99


def test_cnv_pictures_the_original_tests_expect(capsys):
    from conftest import PICTURES, need
    from PIL import Image

    deer = Image.open(need(PICTURES / "deer.jpg"))
    size = deer.size
    for network in (bnn.NETWORK_CNVW1A1, bnn.NETWORK_CNVW1A2, bnn.NETWORK_CNVW2A2):
        clf = bnn.CnvClassifier(network, "cifar10", bnn.RUNTIME_SW)
        assert clf.classify_image(deer) == 4 and clf.class_name(4) == "Deer"
        assert clf.classify_cifar(str(PICTURES / "deer.bin")) == 4  # the original's own record of it
        scores = clf.classify_image_details(deer)
        assert scores.shape == (10,) and scores.dtype == np.int32 and scores.argmax() == 4
    assert deer.size == size  # the caller's picture is not thumbnailed in place
    signs = bnn.CnvClassifier(bnn.NETWORK_CNVW1A1, "road-signs", bnn.RUNTIME_SW)
    assert signs.classify_path(PICTURES / "stop.jpg") == 14 and signs.class_name(14) == "Stop"
    house = bnn.CnvClassifier(bnn.NETWORK_CNVW1A1, "streetview", bnn.RUNTIME_SW)
    assert house.classify_path(PICTURES / "6.png") == 5 and house.class_name(5) == "6"
    many = house.classify_paths([PICTURES / "6.png", PICTURES / "6.png"])
    assert many.tolist() == [5, 5]
    assert TIMING_ONE.match(capsys.readouterr().out)


def test_cnv_batch_and_single_rules_differ_as_the_original_did():
    clf = bnn.CnvClassifier(bnn.NETWORK_CNVW1A2, "cifar10", bnn.RUNTIME_SW, verbose=False)
    scores = np.array([[-5, -3, -9, -4, -8, -7, -6, -3, -9, -9]], np.int32)
    assert bnn.bits.decide(scores, scores > 0, "positive_max").tolist() == [0]  # no score above 0: class 0
    assert bnn.bits.decide(scores, scores > 0, "argmax").tolist() == [1]  # the first largest, negative or not
    assert clf.decision == "positive_max"


def test_cnv_errors_are_named(tmp_path):
    clf = bnn.CnvClassifier(bnn.NETWORK_CNVW1A1, "cifar10", bnn.RUNTIME_SW, verbose=False)
    bad = tmp_path / "half.bin"
    bad.write_bytes(bytes(3073 + 100))
    with pytest.raises(bnn.errors.CifarError, match=r"half.bin: 3173 bytes is not a whole number of 3073-byte"):
        clf.classify_cifars(bad)
    two = tmp_path / "two.bin"
    two.write_bytes(bytes(2 * 3073))
    with pytest.raises(ImageError, match=r"two.bin: holds 2 images; this call takes one"):
        clf.classify_cifar(two)
    notpic = tmp_path / "not.png"
    notpic.write_bytes(b"hello")
    with pytest.raises(ImageError, match=r"not.png: not a readable image"):
        clf.classify_path(notpic)
    with pytest.raises(UnknownNameError, match="lfcW1A1 is not a CNV network: use LfcClassifier"):
        bnn.CnvClassifier(bnn.NETWORK_LFCW1A1, "mnist")
    with pytest.raises(ImageError, match=r"expected shape \(N, 32, 32, 3\) or \(N, 3072\), got \(2, 28, 28\)"):
        clf.predict(np.zeros((2, 28, 28), np.uint8))
