"""One suite over every runtime and kernel: identical classes, scores and bits to the reference."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import (
    CIFAR_CORRECT,
    ORIGINAL_SETS,
    kernel_param,
    literal_cnv_forward,
    literal_forward,
    need,
    options,
    random_cnv_params,
    random_params,
    runtime_ids,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bnn
from bnn.errors import ImageError, NativeUnavailableError, UnknownNameError
from bnn.params import read_params
from bnn.runtimes import make_runtime, native
from bnn.runtimes.reference import ReferenceRuntime

EXPECTED_CORRECT = {"lfcW1A1": 9840, "lfcW1A2": 9849}


def run(params, runtime, images, rule=None):
    name, kernel = runtime
    return make_runtime(params, name, **options(name, kernel)).run(
        np.ascontiguousarray(images.reshape(len(images), 784)), rule
    )


def test_original_sets_on_mnist(original, runtime, mnist_test):
    images, labels = mnist_test
    out = run(original, runtime, images)
    assert int((out.classes == labels).sum()) == EXPECTED_CORRECT[original.network]
    if runtime[0] != "reference":  # every other runtime gives the reference's numbers exactly
        ref = ReferenceRuntime(original).run(images.reshape(-1, 784))
        np.testing.assert_array_equal(out.classes, ref.classes)
        np.testing.assert_array_equal(out.scores, ref.scores)
        np.testing.assert_array_equal(out.bits, ref.bits)


def test_argmax_rule_on_mnist(original, runtime, mnist_test):
    images, labels = mnist_test
    out = run(original, runtime, images, "argmax")
    # The spec's figures for argmax of the accumulators: 98.34 % (W1A1), 98.49 % (W1A2).
    assert int((out.classes == labels).sum()) == {"lfcW1A1": 9834, "lfcW1A2": 9849}[original.network]
    np.testing.assert_array_equal(out.classes, np.argmax(out.scores, axis=1))


_ORACLE: dict = {}


# 256 and 513: whole blocks of the bit-sliced kernels (256 or 512 images), then tiles.
@pytest.mark.parametrize("n", [0, 1, 2, 63, 64, 65, 130, 256, 513])
def test_batch_sizes(original, runtime, mnist_test, n):
    images = mnist_test[0][:n]
    key = (original.network, n)  # the oracle's answer once per set and size, for every runtime
    if key not in _ORACLE:
        _ORACLE[key] = literal_forward(original, images)  # apart from every runtime, the reference included
    scores, bits = _ORACLE[key]
    out = run(original, runtime, images)
    assert out.classes.shape == (n,) and out.scores.shape == (n, 10) and out.bits.shape == (n, 10)
    np.testing.assert_array_equal(out.scores, scores)
    np.testing.assert_array_equal(out.bits, bits)
    np.testing.assert_array_equal(out.classes, bnn.bits.decide(scores, bits, original.decision))


@pytest.mark.parametrize(("name", "kernel"), runtime_ids()[1:])
@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    network=st.sampled_from(["lfcW1A1", "lfcW1A2"]),
    hidden=st.lists(st.sampled_from([16, 32, 48, 64, 96, 128, 200]), min_size=1, max_size=5).map(tuple),
    n_classes=st.integers(1, 40),
    mw0=st.sampled_from([784, 790, 800, 832, 896]),
    n=st.sampled_from([0, 1, 2, 3, 5, 63, 64, 65, 131, 256, 257, 555]),
    rule=st.sampled_from(["highest_bit", "argmax"]),
    pixels=st.sampled_from([(128,), (1,), (200,), (0,), (256,), (64, 191), (0, 128), (100, 256)]),
)
def test_random_parameter_sets(name, kernel, seed, network, hidden, n_classes, mw0, n, rule, pixels):
    rng = np.random.default_rng(seed)
    pixels = pixels[-1:] if network == "lfcW1A1" else pixels  # 3-level pixels are W1A2's only
    params = random_params(rng, network, hidden, n_classes, mw0, pixel_thresholds=pixels)
    images = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    # Bias some images to mostly dark/bright so that outputs vary widely.
    images[: n // 3] //= 2
    ref = ReferenceRuntime(params).run(images, rule)
    out = make_runtime(params, name, **options(name, kernel)).run(images, rule)
    np.testing.assert_array_equal(out.scores, ref.scores)
    np.testing.assert_array_equal(out.bits, ref.bits)
    np.testing.assert_array_equal(out.classes, ref.classes)


SLICED = [kernel_param(k) for k in native.KERNELS if k.endswith("-bitslice")]


@pytest.mark.parametrize("kernel", SLICED)
@pytest.mark.parametrize(
    ("network", "hidden", "pixels"),
    [
        ("lfcW1A1", (33,), (128,)),  # one hidden layer: the sliced layer's output goes straight to the last
        ("lfcW1A1", (200, 16, 1100, 40), (90,)),  # counts under 32 (no count of 32s) and up to 1100 (5 + 6 planes)
        ("lfcW1A2", (64, 95, 128, 31, 64), (64, 191)),  # 3-level pixels: layer 0 sliced on two planes
        ("lfcW1A2", (250, 250), (128,)),
    ],
)
def test_sliced_blocks_on_random_sets(kernel, network, hidden, pixels):
    """Whole blocks of the bit-sliced kernels (and the rest of the batch) on geometries the LFC has not."""
    rng = np.random.default_rng(len(hidden) * 1000 + sum(hidden))
    params = random_params(rng, network, hidden, 13, 800, pixel_thresholds=pixels)
    images = rng.integers(0, 256, (1100, 784), dtype=np.uint8)
    images[::3] //= 2
    for rule in ("highest_bit", "argmax"):
        ref = ReferenceRuntime(params).run(images, rule)
        out = make_runtime(params, "native", kernel=kernel).run(images, rule)
        np.testing.assert_array_equal(out.scores, ref.scores)
        np.testing.assert_array_equal(out.bits, ref.bits)
        np.testing.assert_array_equal(out.classes, ref.classes)


def test_reference_matches_literal_popcount():
    """The reference against the spec written out as XNOR-popcount loops, on a tiny network."""
    rng = np.random.default_rng(5)
    for network in ("lfcW1A1", "lfcW1A2"):
        params = random_params(rng, network, (16, 32, 16), 3, 800)
        images = rng.integers(0, 256, (7, 784), dtype=np.uint8)
        ref = ReferenceRuntime(params).run(images)
        for i, img in enumerate(images):
            x = [int(p >= 128) for p in img] + [0] * (800 - 784)  # bits
            for li, layer in enumerate(params.layers):
                T = layer.effective_thresholds()
                out = []
                for n in range(layer.mh):
                    w = layer.weights[n].tolist()
                    if network == "lfcW1A1":
                        acc = sum(1 for a, b in zip(x, w) if a == b)
                    elif li == 0:
                        acc = sum((2 * a - 1) * (2 * b - 1) for a, b in zip(x, w))
                    else:
                        acc = sum(a * (2 * b - 1) for a, b in zip(x, w))
                    if layer.n_thresholds == 1:
                        out.append((int(acc > T[n, 0]), acc))
                    else:
                        out.append((int(acc > T[n, 0]) + int(acc > T[n, 1]) - 1, acc))
                x = [o for o, _ in out]
                if network == "lfcW1A1" or layer.n_thresholds == 1:
                    last = out
            assert [acc for _, acc in last[:3]] == ref.scores[i].tolist()
            assert [bit for bit, _ in last[:3]] == ref.bits[i].astype(int).tolist()


@pytest.mark.parametrize(("network", "pixels"), [("lfcW1A1", (200,)), ("lfcW1A2", (64, 191)), ("lfcW1A2", (0, 256))])
def test_reference_quantizes_pixels_as_the_set_says(network, pixels):
    rng = np.random.default_rng(8)
    params = random_params(rng, network, (32, 64, 32), 10, 800, pixel_thresholds=pixels)
    images = rng.integers(0, 256, (50, 784), dtype=np.uint8)
    scores, bits = literal_forward(params, images)
    ref = ReferenceRuntime(params).run(images)
    np.testing.assert_array_equal(ref.scores, scores)
    np.testing.assert_array_equal(ref.bits, bits)


def test_decision_rules():
    scores = np.array([[1, 5, 5], [0, 0, 0], [3, 2, 1]], dtype=np.int32)
    bits = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=bool)
    assert bnn.bits.decide(scores, bits, "highest_bit").tolist() == [2, 0, 1]
    assert bnn.bits.decide(scores, bits, "argmax").tolist() == [1, 0, 0]


def test_unknown_runtime_and_kernel(original):
    with pytest.raises(UnknownNameError, match="unknown runtime 'fpga'; known runtimes: native, python_hw"):
        make_runtime(original, "fpga")
    if native.is_available():
        with pytest.raises(UnknownNameError, match="unknown kernel 'sve'"):
            make_runtime(original, "native", kernel="sve")


def test_unavailable_kernel_is_a_clear_error(original, monkeypatch):
    if not native.is_available():
        pytest.skip("native runtime not built")
    monkeypatch.setattr(native._native, "available_kernels", lambda: ["portable"])
    with pytest.raises(NativeUnavailableError, match="kernel 'avx512' cannot run on this CPU; available: portable"):
        make_runtime(original, "native", kernel="avx512")


def test_unavailable_kernel_via_environment_is_the_same_error(original, monkeypatch):
    if not native.is_available():
        pytest.skip("native runtime not built")
    monkeypatch.setattr(native._native, "available_kernels", lambda: ["portable"])
    monkeypatch.setenv("BNN_KERNEL", "avx512")
    with pytest.raises(NativeUnavailableError, match="kernel 'avx512' cannot run on this CPU"):
        bnn.Classifier(original.network, original)


def test_forced_kernel_via_environment(original, monkeypatch):
    if not native.is_available():
        pytest.skip("native runtime not built")
    monkeypatch.setenv("BNN_KERNEL", "portable")
    clf = bnn.Classifier(original.network, original)
    assert clf.kernel == "portable" and "kernel=portable" in repr(clf)
    assert bnn.runtime_info()["default_kernel"] == "portable"


@pytest.mark.parametrize(
    ("kernels", "for_lfc", "for_cnv_1bit", "for_cnv_2bit"),
    [
        (["avx512", "avx512-bitslice", "avx2-bitslice", "avx2", "portable"], "avx512", "avx512", "avx512-bitslice"),
        (["avx2-bitslice", "avx2", "portable-bitslice", "portable"], "avx2-bitslice", "avx2-bitslice", "avx2-bitslice"),
        (["neon", "portable-bitslice", "portable"], "neon", "neon", "neon"),
        ([], None, None, None),
    ],
)
def test_default_kernel_by_network(monkeypatch, kernels, for_lfc, for_cnv_1bit, for_cnv_2bit):
    monkeypatch.setattr(native, "available_kernels", lambda: kernels)
    assert native.default_kernel(1) == native.default_kernel(2) == for_lfc
    assert native.default_kernel(1, convolutional=True) == for_cnv_1bit
    assert native.default_kernel(2, convolutional=True) == for_cnv_2bit


@pytest.mark.parametrize("network", ["lfcW1A2", "cnvW2A2"])
def test_unnamed_kernel_is_the_default_for_the_network(network, monkeypatch):
    if not native.is_available():
        pytest.skip("native runtime not built")
    monkeypatch.delenv("BNN_KERNEL", raising=False)
    rng = np.random.default_rng(5)
    params = random_cnv_params(rng, network) if network.startswith("cnv") else random_params(rng, network)
    expected = native.default_kernel(params.activation_bits, params.spec.convolutional)
    assert bnn.Classifier(network, params).kernel == expected
    key = "default_kernel_cnv_2bit" if network == "cnvW2A2" else "default_kernel"
    assert bnn.runtime_info()[key] == expected


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 28, 28), dtype=np.float32), "expected uint8 pixels"),
        (np.zeros((2, 32, 32), dtype=np.uint8), r"expected shape \(N, 28, 28\) or \(N, 784\), got \(2, 32, 32\)"),
        (np.zeros((2, 783), dtype=np.uint8), "got \\(2, 783\\)"),
        (np.zeros(784, dtype=np.uint8), "got \\(784,\\)"),
    ],
)
def test_bad_images(original, runtime, images, message):
    clf = bnn.Classifier(original.network, original, runtime[0], **options(*runtime))
    with pytest.raises(ImageError, match=message):
        clf.predict(images)


def test_non_contiguous_images(original, runtime, mnist_test):
    images = mnist_test[0][:20]
    clf = bnn.Classifier(original.network, original, runtime[0], **options(*runtime))
    np.testing.assert_array_equal(clf.predict(images[::2]), clf.predict(np.ascontiguousarray(images[::2])))
    np.testing.assert_array_equal(clf.predict(images[:, ::-1, :][:, ::-1, :]), clf.predict(images))


@pytest.mark.skipif(not native.is_available(), reason="native runtime not built")
class TestNativeEntryPoints:
    """The extension itself never crashes: bad arguments are Python exceptions."""

    def layers(self, params):
        return native.extension_layers(params)

    def test_wrong_dtype_shape_and_strides(self, original):
        net = native._native.Network(self.layers(original), original.activation_bits, 10, 784)
        good = np.zeros((3, 784), dtype=np.uint8)
        for bad in (good.astype(np.float32), good[:, :783], good.reshape(3, 28, 28), np.zeros((784, 3), np.uint8).T):
            with pytest.raises((TypeError, ValueError)):
                net.run(bad, 1, "highest_bit", True)
        with pytest.raises(TypeError):
            net.run("images", 1, "highest_bit", True)
        with pytest.raises(ValueError, match="unknown decision rule 'best'"):
            net.run(good, 1, "best", True)

    def test_mismatched_parameters(self, original):
        layers = self.layers(original)
        with pytest.raises(ValueError, match="inputs do not match"):
            native._native.Network([layers[0], layers[1], layers[3], layers[3]], original.activation_bits, 10, 784)
        with pytest.raises(ValueError, match="thresholds rows"):
            native._native.Network(
                [(layers[0][0], layers[0][1][:5], layers[0][2])] + layers[1:], original.activation_bits, 10, 784
            )
        with pytest.raises(ValueError, match="number of classes"):
            native._native.Network(layers, original.activation_bits, 65, 784)
        with pytest.raises(ValueError, match="fewer inputs than the image"):
            native._native.Network(layers, original.activation_bits, 10, 900)
        with pytest.raises(ValueError, match="cannot run on this CPU or is unknown"):
            native._native.Network(layers, original.activation_bits, 10, 784, "sse9")
        for bad in ([1, 2, 3], [-1], [257]):
            with pytest.raises(ValueError, match="pixels take one threshold|pixel thresholds must be in 0..256"):
                native._native.Network(layers, original.activation_bits, 10, 784, "", bad)
        with pytest.raises(ValueError, match="8-bit pixels go into a convolution over the whole image"):
            native._native.Network(layers, original.activation_bits, 10, 784, "", [])
        if original.activation_bits == 1:
            with pytest.raises(ValueError, match=r"or two \(3 levels\) with 2-bit activations"):
                native._native.Network(layers, 1, 10, 784, "", [60, 190])
        with pytest.raises(ValueError, match="weights must be"):
            native._native.Network(
                [(layers[0][0] * 0 + 5, *layers[0][1:])] + layers[1:], original.activation_bits, 10, 784
            )
        with pytest.raises(TypeError):
            native._native.Network([(layers[0][0].ravel(), *layers[0][1:])], 1, 10, 784)

    @pytest.mark.parametrize("kernel", [kernel_param(k) for k in native.KERNELS])
    def test_threads_give_identical_results(self, original, mnist_test, kernel):
        # The native entry point itself: the Python layer caps threads to the cores (2 here), and 3 and 8
        # workers must really run. 3,333 images make 13 sliced blocks of 256 (6 of 512) and tiles of the rest.
        images = np.ascontiguousarray(mnist_test[0][:3333].reshape(-1, 784))
        net = make_runtime(original, "native", kernel=kernel)._net
        results = [net.run(images, t, "highest_bit", True) for t in (1, 2, 3, 8)]
        for classes, scores, bits in results[1:]:
            np.testing.assert_array_equal(classes, results[0][0])
            np.testing.assert_array_equal(scores, results[0][1])
            np.testing.assert_array_equal(bits, results[0][2])

    @pytest.mark.parametrize("kernel", [kernel_param(k) for k in native.KERNELS])
    def test_threads_give_identical_results_on_convolutions(self, kernel):
        # A convolutional block is run by a team of every thread asked for (1, 2, 3 or 8 on 2 cores),
        # which meets between layers: 600 images make 2 blocks of 256 and a rest image by image (one
        # block of 512 and a partial one), with 3-level maps, a pool and a channel count of 13.
        params = random_cnv_params(np.random.default_rng(7), "cnvW1A2", 10, (3, 13, 64), (True, False), ())
        images = np.random.default_rng(8).integers(0, 256, (600, params.image_bytes), dtype=np.uint8)
        net = make_runtime(params, "native", kernel=kernel)._net
        expected = ReferenceRuntime(params).run(images, "argmax")
        for t in (1, 2, 3, 8):
            classes, scores, bits = net.run(images, t, "argmax", True)
            np.testing.assert_array_equal(scores, expected.scores)
            np.testing.assert_array_equal(bits, expected.bits)
            np.testing.assert_array_equal(classes, expected.classes)


def test_missing_extension_falls_back_with_a_warning(original, monkeypatch):
    monkeypatch.setattr(native, "_native", None)
    monkeypatch.setattr(native, "_import_error", ImportError("no module named bnn._native"), raising=False)
    with pytest.warns(RuntimeWarning, match="native runtime is not built .*using the numpy reference"):
        clf = bnn.Classifier(original.network, original, "native")
    assert clf.runtime == "reference" and "kernel=numpy" in repr(clf)
    assert bnn.runtime_info()["native"] is False
    with pytest.raises(NativeUnavailableError, match="not built"):
        make_runtime(original, "native", kernel="avx2")


def test_each_kernel_has_a_measured_bound(original, monkeypatch):
    if not native.is_available():
        pytest.skip("native runtime not built")
    assert native.words_per_image(original) == 1024 * 13 + 2 * 1024 * 16 + 64 * 16  # LFC: 47,104
    for kernel in native.available_kernels():
        # images/s, measured: only its sign and sanity hold on a loaded machine (a probe under two
        # training processes ran the portable kernel at 845 images/s); 1e9 images/s is past any CPU.
        assert 0 < native.bound(kernel, original, seconds=0.05) < 1e9
    with pytest.raises(ValueError, match="kernel 'sve' cannot run on this CPU or is unknown"):
        native._native.probe("sve", 0.01)
    # The arithmetic, apart from the measurement (two probes on a busy machine differ): the sum of
    # the threads' rates / words, the threads' probes running at the same time (two cores of a VM
    # may slow each other down; a bound of one core times two would hide it).
    monkeypatch.setattr(native._native, "probe", lambda kernel, seconds: 4.7104e9)
    assert native.bound("portable", original) == 100_000
    together = threading.Barrier(2, timeout=10)

    def side_by_side(kernel, seconds):
        together.wait()  # BrokenBarrierError unless the other thread's probe runs meanwhile
        return 4.7104e9

    monkeypatch.setattr(native._native, "probe", side_by_side)
    assert native.bound("portable", original, 2) == 200_000


# --- CNV: the reference against the literal oracle, and the original sets' golden counts ---


@pytest.mark.parametrize("network", ["cnvW1A1", "cnvW1A2", "cnvW2A2"])
@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([5, 6, 8, 10]),
    channels=st.lists(st.sampled_from([1, 3, 4, 8, 13]), min_size=2, max_size=3).map(tuple),
    pool_first=st.booleans(),
    fc=st.lists(st.sampled_from([8, 17, 32]), max_size=2).map(tuple),
    n=st.sampled_from([0, 1, 3]),
)
def test_cnv_reference_is_the_literal_spec(network, seed, size, channels, pool_first, fc, n):
    rng = np.random.default_rng(seed)
    side_after_first = size - 2
    pools = (pool_first and side_after_first % 2 == 0 and side_after_first >= 6, False)
    if len(channels) > 2 and (side_after_first // (2 if pools[0] else 1)) < 3:
        channels = channels[:2]  # a second 3x3 window must fit
    params = random_cnv_params(rng, network, size, channels, pools[: len(channels) - 1], fc)
    images = rng.integers(0, 256, (n, *params.image_shape), dtype=np.uint8)
    out = ReferenceRuntime(params).run(images.reshape(n, params.image_bytes), "argmax")
    np.testing.assert_array_equal(out.scores, literal_cnv_forward(params, images)[:, :10])
    np.testing.assert_array_equal(out.bits, out.scores > 0)


_CNV_REFERENCE: dict = {}


def _cnv_reference(params, key, images):
    """The reference's outputs, once per set (about 4 s each for the 932 images)."""
    if key not in _CNV_REFERENCE:
        _CNV_REFERENCE[key] = ReferenceRuntime(params).run(images)
    return _CNV_REFERENCE[key]


@pytest.mark.slow
@pytest.mark.parametrize(("network", "correct"), sorted(CIFAR_CORRECT.items()))
def test_cnv_reference_golden_counts(cifar_test, network, correct):
    params = read_params(need(ORIGINAL_SETS / "cifar10" / network))
    images, labels = cifar_test
    out = _cnv_reference(params, network, images.reshape(len(images), -1))  # shared with the runtimes' test
    assert params.decision == "positive_max"
    assert int((out.classes == labels).sum()) == correct
    argmax = bnn.bits.decide(out.scores, out.bits, "argmax")
    np.testing.assert_array_equal(argmax, out.classes)  # the two rules agree on these images (the spec says so)
    literal = literal_cnv_forward(params, images[:1])  # plain Python loops: one image takes seconds
    np.testing.assert_array_equal(out.scores[:1], literal[:, :10])  # the original geometry, literally


def run_cnv(params, runtime, images, rule=None):
    name, kernel = runtime
    flat = np.ascontiguousarray(images.reshape(len(images), params.image_bytes))
    return make_runtime(params, name, **options(name, kernel)).run(flat, rule)


@pytest.mark.parametrize(("network", "correct"), sorted(CIFAR_CORRECT.items()))
def test_cnv_original_sets_on_cifar(cifar_test, runtime, network, correct):
    params = read_params(need(ORIGINAL_SETS / "cifar10" / network))
    images, labels = cifar_test
    out = run_cnv(params, runtime, images)
    assert int((out.classes == labels).sum()) == correct
    ref = _cnv_reference(params, network, images.reshape(len(images), -1))
    np.testing.assert_array_equal(out.scores, ref.scores)
    np.testing.assert_array_equal(out.bits, ref.bits)
    np.testing.assert_array_equal(out.classes, ref.classes)


@pytest.mark.parametrize("network", ["cnvW1A1", "cnvW1A2", "cnvW2A2"])
# `runtime` is a constant (name, kernel) pair: sharing it across examples is safe.
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([5, 8, 10]),
    # 64 and 70 channels: a pixel in one whole word, and in two with 58 bits of padding
    channels=st.lists(st.sampled_from([1, 3, 13, 64, 70]), min_size=2, max_size=3).map(tuple),
    pool_first=st.booleans(),
    fc=st.lists(st.sampled_from([8, 17, 65]), max_size=2).map(tuple),
    n=st.sampled_from([0, 1, 2, 5, 9]),
    rule=st.sampled_from(["positive_max", "argmax", "highest_bit"]),
)
# Batches that reach the sliced kernels' blocks (256 or 512 images, run by a team of threads): a
# partial block of 256 alone (130), and a whole block of 256 with its rest image by image or one
# partial block of 512 (300).
@example(seed=1, size=10, channels=(3, 70, 13), pool_first=True, fc=(17,), n=300, rule="argmax")
@example(seed=2, size=8, channels=(1, 64), pool_first=False, fc=(), n=130, rule="positive_max")
def test_cnv_random_geometries(runtime, network, seed, size, channels, pool_first, fc, n, rule):
    # Every runtime against the reference on convolutions of any width, pools of 1- or 3-level maps,
    # 2-bit weights of every value (-2 included), batches around the native tile of 4 images.
    rng = np.random.default_rng(seed)
    side = size - 2
    pools = (pool_first and side % 2 == 0, False)
    if len(channels) > 2 and side // (2 if pools[0] else 1) < 3:
        channels = channels[:2]  # a second 3x3 window must fit
    params = random_cnv_params(rng, network, size, channels, pools[: len(channels) - 1], fc)
    images = rng.integers(0, 256, (n, params.image_bytes), dtype=np.uint8)
    out = run_cnv(params, runtime, images, rule)
    ref = ReferenceRuntime(params).run(images, rule)
    np.testing.assert_array_equal(out.scores, ref.scores)
    np.testing.assert_array_equal(out.bits, ref.bits)
    np.testing.assert_array_equal(out.classes, ref.classes)
