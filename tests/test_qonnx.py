"""QONNX out: our export, run by qonnx's own executor, gives our accumulators and activations layer by layer."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
from conftest import IN_CI, ORIGINAL_SETS, need, options, random_params

for module in ("onnx", "qonnx"):
    pytest.importorskip(module) if not IN_CI else __import__(module)

import onnx  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine  # noqa: E402
from qonnx.transformation.fold_constants import FoldConstants  # noqa: E402
from qonnx.transformation.infer_datatypes import InferDataTypes  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402
from test_cli import run  # noqa: E402

import bnn  # noqa: E402
from bnn.errors import ParamsError, UnknownNameError  # noqa: E402
from bnn.formats.qonnx import read_qonnx, write_qonnx  # noqa: E402
from bnn.params import read_params  # noqa: E402
from bnn.runtimes.reference import ReferenceRuntime  # noqa: E402

N = 1000


def _shipped(network):
    return bnn.params.read_params(bnn.params.package_params_dir() / "mnist" / network)


@pytest.mark.parametrize("source", ["original", "shipped"])
@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_qonnx_executor_gives_our_numbers_layer_by_layer(original_dir, mnist_test, tmp_path, source, network):
    params = bnn.params.read_params(original_dir / network) if source == "original" else _shipped(network)
    images = mnist_test[0][:N].reshape(N, 784)
    # The graph FINN gets, with a batch of N declared so the executor runs them in one pass; as written,
    # like Brevitas' exports (its tensors' shapes are stored: no InferShapes first).
    path = write_qonnx(params, tmp_path / "m.onnx", input_shape=(N, 784))
    model = ModelWrapper(str(path))
    assert "Identity" not in {n.op_type for n in model.graph.node}
    got = execute_onnx(model, {"global_in": images.astype(np.float32)}, return_full_exec_context=True)
    layers = list(ReferenceRuntime(params).trace(images))
    c = len(params.classes)
    for i, (acc, values, _) in enumerate(layers[:-1]):
        np.testing.assert_array_equal(got[f"acc{i}"], acc)
        np.testing.assert_array_equal(got[f"out{i}"], values)
    np.testing.assert_array_equal(got["scores"], layers[-1][0][:, :c])
    np.testing.assert_array_equal(got["scores"], bnn.Classifier(network, params).infer(images).scores)
    # After qonnx's cleanup (constant folding, readable names), as FINN's front end starts: the same scores.
    # (ConvertBipolarMatMulToXnorPopcount needs FINN's MultiThreshold nodes upstream: it applies only after
    # FINN's own QONNX conversion, not to this graph, nor to Brevitas'.)
    # Then the qonnx steps FINN's streamlining starts with: BatchNorm to Mul/Add, data types, constant folding.
    clean = cleanup_model(ModelWrapper(str(path)))
    for step in (BatchNormToAffine(), InferShapes(), InferDataTypes(), FoldConstants()):
        clean = clean.transform(step)
    assert "BatchNormalization" not in {n.op_type for n in clean.graph.node}
    kinds = {clean.get_tensor_datatype(n.output[0]).name for n in clean.graph.node if "Quant" in n.op_type}
    assert kinds == ({"BIPOLAR"} if network == "lfcW1A1" else {"BIPOLAR", "INT2"})  # as FINN types them
    out = execute_onnx(clean, {clean.graph.input[0].name: images.astype(np.float32)})
    np.testing.assert_array_equal(out[clean.graph.output[0].name], got["scores"])


def test_w1a2_layer_0_input_is_typed_two_bits_for_finn(original_dir, mnist_test, tmp_path):
    # FINN's XNOR-MVAU inference takes the activation offset as the output type's minimum (-2 for INT2), which
    # misreads a 3-level activation after a bipolar input: our W1A2 export feeds layer 0 a 2-bit-typed input
    # whose values stay +-1 (tools/check_finn.sh runs FINN itself on it).
    params = bnn.params.read_params(original_dir / "lfcW1A2")
    model = ModelWrapper(str(write_qonnx(params, tmp_path / "m.onnx", input_shape=(N, 784)))).transform(
        InferDataTypes()
    )
    first = next(n for n in model.graph.node if n.op_type == "MatMul")
    assert model.get_tensor_datatype(first.input[0]).name == "INT2"
    got = execute_onnx(model, {"global_in": mnist_test[0][:N].reshape(N, 784).astype(np.float32)}, True)
    assert set(np.unique(got[first.input[0]])) == {-1.0, 1.0}
    assert read_qonnx(tmp_path / "m.onnx").pixel_thresholds == (128,)  # read back as the bit it is


@pytest.mark.parametrize(("network", "pixels"), [("lfcW1A1", (200,)), ("lfcW1A2", (60, 190)), ("lfcW1A2", (0, 256))])
def test_other_pixel_quantizers_go_out_and_back_exactly(tmp_path, network, pixels):
    params = random_params(np.random.default_rng(6), network, (64, 256, 64), 10, 784, pixel_thresholds=pixels)
    images = np.random.default_rng(7).integers(0, 256, (300, 784), dtype=np.uint8)
    images[:, :256] = np.arange(256, dtype=np.uint8)  # every pixel value, at every step of the quantizer
    path = write_qonnx(params, tmp_path / "m.onnx", input_shape=(300, 784))
    got = execute_onnx(ModelWrapper(str(path)), {"global_in": images.astype(np.float32)})
    np.testing.assert_array_equal(got["scores"], ReferenceRuntime(params).run(images).scores)
    back = read_qonnx(path)
    assert back.pixel_thresholds == pixels and back.metadata["input_pixels"] == "0..255"
    np.testing.assert_array_equal(ReferenceRuntime(back).run(images).scores, got["scores"])


def test_cli_converts_to_qonnx_with_labelselect(original_dir, mnist_test, tmp_path):
    dest = tmp_path / "lfc.onnx"
    assert run("params", "convert", original_dir / "lfcW1A1", dest, "--topk", "--input-shape", "1,1,28,28").stdout
    meta = {p.key: p.value for p in onnx.load(dest).metadata_props}
    assert meta["bnn.network"] == "lfcW1A1" and meta["bnn.classes"].split("\n") == [str(i) for i in range(10)]
    model = ModelWrapper(str(dest))
    clf = bnn.Classifier("lfcW1A1", original_dir / "lfcW1A1", decision="argmax")
    for image in mnist_test[0][:5]:
        out = execute_onnx(model, {"global_in": image.reshape(1, 1, 28, 28).astype(np.float32)})
        assert int(out["global_out"][0, 0]) == int(clf.predict(image[None])[0])


# ---------------------------------------------------------------- import


@pytest.mark.parametrize("source", ["original", "shipped"])
@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_round_trip_through_qonnx_keeps_every_number(original_dir, mnist_test, tmp_path, source, network, runtime):
    params = bnn.params.read_params(original_dir / network) if source == "original" else _shipped(network)
    back = read_qonnx(write_qonnx(params, tmp_path / "m.onnx"))
    # Our export records what the graph does not hold (folding, padding, stored thresholds, decision rule).
    assert back.network == network and back.classes == params.classes and back.decision == params.decision
    images = mnist_test[0]
    want = ReferenceRuntime(params).run(images.reshape(-1, 784))
    got = bnn.Classifier(None, back, runtime[0], **options(*runtime)).infer(images)
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.bits, want.bits)
    np.testing.assert_array_equal(got.classes, want.classes)


@pytest.mark.parametrize("network", ["cnvW1A1", "cnvW1A2", "cnvW2A2"])
def test_cnv_sets_go_out_exact_and_come_back(cifar_test, tmp_path, network):
    # The original cifar10 sets as QONNX: qonnx's executor gives our scores (raw NCHW pixels in), and
    # the file read back gives every score, class and the decision rule.
    params = bnn.params.read_params(need(ORIGINAL_SETS / "cifar10" / network))
    path = write_qonnx(params, tmp_path / f"{network}.onnx")
    images = cifar_test[0][:40]
    ours = bnn.Classifier(network, params, "native").infer(images)
    model = ModelWrapper(str(path))
    for i in range(2):
        x = images[i : i + 1].transpose(0, 3, 1, 2).astype(np.float32)
        got = execute_onnx(model, {"global_in": x}, return_full_exec_context=True)
        np.testing.assert_array_equal(got["scores"][0], ours.scores[i])
        assert set(np.unique(got["out_in"] * 128)) <= set(range(-128, 128))  # the 8-bit fixed-point pixels
    back = read_qonnx(path)
    assert (back.network, back.decision, back.classes) == (network, "positive_max", params.classes)
    out = bnn.Classifier(None, back, "native").infer(images)
    np.testing.assert_array_equal(out.scores, ours.scores)
    np.testing.assert_array_equal(out.classes, ours.classes)


@pytest.mark.parametrize("network", ["lfcW1A1", "lfcW1A2"])
def test_original_set_through_qonnx_to_a_folder_is_byte_identical(original_dir, tmp_path, network):
    source = original_dir / network
    folder = bnn.params.write_params(read_qonnx(write_qonnx(read_params(source), tmp_path / "m.onnx")), tmp_path / "f")
    names = sorted(p.name for p in source.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == sorted([*names, "bnn-meta.json"])  # + provenance
    _, mismatch, errors = filecmp.cmpfiles(source, folder, names, shallow=False)
    assert mismatch == [] and errors == []


def test_a_changed_graph_is_read_as_it_computes_not_as_recorded(original_dir, mnist_test, tmp_path):
    from onnx import numpy_helper

    params = read_params(original_dir / "lfcW1A1")
    model = onnx.load(write_qonnx(params, tmp_path / "m.onnx"))
    for init in model.graph.initializer:  # changed elsewhere: one hidden neuron's threshold moved by 10
        if init.name == "bn1_mean":
            mean = numpy_helper.to_array(init).copy()
            mean[7] += 10
            init.CopyFrom(numpy_helper.from_array(mean, init.name))
    onnx.save(model, tmp_path / "changed.onnx")
    back = read_qonnx(tmp_path / "changed.onnx")
    assert back.decision == "argmax" and back.layers[0].mw == 784  # the record no longer applies
    moved = back.layers[1].effective_thresholds()[7] - params.layers[1].effective_thresholds()[7]
    assert moved.tolist() == [10]
    images = mnist_test[0][:60].reshape(-1, 784)
    graph = ModelWrapper(str(tmp_path / "changed.onnx")).transform(InferShapes())
    want = np.stack([execute_onnx(graph, {"global_in": im[None].astype(np.float32)})["scores"][0] for im in images])
    np.testing.assert_array_equal(ReferenceRuntime(back).run(images).scores, want)


brevitas = pytest.importorskip("brevitas") if not IN_CI else __import__("brevitas")


# Other depths of the same family: (weight, activation and input bits, hidden widths).
BREVITAS_FC_OTHER = {"fc_1w1a_5x64": (1, 1, 1, [64] * 5), "fc_1w2a_256_128": (1, 2, 2, [256, 128])}


@pytest.fixture(
    scope="module", params=["tfc_1w1a", "sfc_1w1a", "lfc_1w1a", "tfc_1w2a", "sfc_1w2a", "lfc_1w2a", *BREVITAS_FC_OTHER]
)
def brevitas_model(request, mnist_test, tmp_path_factory):
    """A Brevitas bnn_pynq FC network, seeded and trained on 1,000 images, exported with export_qonnx."""
    import torch
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    from brevitas_examples.bnn_pynq.models.FC import FC

    torch.manual_seed(0)
    if request.param in BREVITAS_FC_OTHER:
        w, a, i, hidden = BREVITAS_FC_OTHER[request.param]
        model = FC(
            weight_bit_width=w, act_bit_width=a, in_bit_width=i, in_channels=1, out_features=hidden, num_classes=10
        )
    else:
        model, _ = model_with_cfg(request.param, pretrained=False)
    images, labels = mnist_test  # stand-in training data: the test only needs trained statistics
    x = torch.from_numpy(images.copy()).float().unsqueeze(1) / 255
    path = tmp_path_factory.mktemp("brevitas") / f"{request.param}.onnx"
    return _train_and_export(model, x, labels, 1000, path)


def _train_and_export(model, x, labels, n_train: int, path):
    """Adam steps on batches of 100 of the first `n_train` images (trained batch-norm statistics), then
    `export_qonnx` to `path`; (path, the model's own outputs on every image of x)."""
    import torch
    from brevitas.export import export_qonnx

    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for s in range(0, n_train, 100):
        loss = torch.nn.functional.cross_entropy(
            model(x[s : s + 100]), torch.from_numpy(labels[s : s + 100].astype(np.int64))
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    export_qonnx(model, torch.zeros(1, *x.shape[1:]), str(path))
    with torch.no_grad():
        outputs = model(x).numpy()
    return path, outputs


def test_brevitas_models_run_here_bit_exact(brevitas_model, mnist_test, runtime):
    path, outputs = brevitas_model
    clf = bnn.Classifier(None, path, runtime[0], **options(*runtime))
    ours = clf.predict(mnist_test[0])
    # Brevitas' outputs are integer accumulators times one scale: classes tie; ours is one of its maxima
    # (the first, as argmax breaks ties by the lowest index).
    np.testing.assert_array_equal(outputs[np.arange(len(ours)), ours], outputs.max(axis=1))
    np.testing.assert_array_equal(ours, outputs.argmax(axis=1))


def test_brevitas_w1a2_takes_3_level_pixels(brevitas_model):
    path, _ = brevitas_model
    params = read_qonnx(path)
    assert params.metadata["input_pixels"] == "0..1"  # Brevitas' FC scales pixels to 0..1 first
    assert len(params.layers) == len(BREVITAS_FC_OTHER.get(path.stem, (0, 0, 0, [0] * 3))[3]) + 1
    if "1w2a" in path.name:
        # Its 2-bit input quantizer (scale learned from 1): (p/255 * 2 - 1) / s rounded to -1, 0, +1.
        assert params.network == "lfcW1A2" and len(params.pixel_thresholds) == 2
        low, high = params.pixel_thresholds
        assert 0 < low < 128 < high < 256
        shown = run("params", "show", path).stdout
        assert f"pixels: 3 levels: -1, 0 from p >= {low}, +1 from p >= {high}" in shown
    else:
        assert params.network == "lfcW1A1" and params.pixel_thresholds == (128,)


def test_brevitas_2_bit_weights_are_refused_with_the_reason(tmp_path):
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    model, _ = model_with_cfg("tfc_2w2a", pretrained=False)
    export_qonnx(model.eval(), torch.zeros(1, 1, 28, 28), str(tmp_path / "w2a2.onnx"))
    with pytest.raises(ParamsError, match=r"w2a2.onnx: 2-bit weights in a fully connected network: .*cnvW2A2"):
        read_qonnx(tmp_path / "w2a2.onnx")


@pytest.fixture(scope="module", params=["cnv_1w1a", "cnv_1w2a", "cnv_2w2a"])
def brevitas_cnv(request, cifar_test, tmp_path_factory):
    """A Brevitas bnn_pynq CNV network, seeded, two Adam steps on CIFAR-10 images (trained batch-norm
    statistics), exported with export_qonnx; its own outputs on 200 images."""
    import torch
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(0)
    model, _ = model_with_cfg(request.param, pretrained=False)
    images, labels = cifar_test
    x = torch.from_numpy(images[:200].copy()).permute(0, 3, 1, 2).float() / 255  # NCHW, 0..1
    return _train_and_export(model, x, labels, 200, tmp_path_factory.mktemp("brevitas-cnv") / f"{request.param}.onnx")


def test_brevitas_cnv_models_run_here_bit_exact(brevitas_cnv, cifar_test, runtime):
    path, outputs = brevitas_cnv
    clf = bnn.Classifier(None, path, runtime[0], **options(*runtime))
    images = cifar_test[0][: len(outputs)]  # HWC uint8: the model's NCHW input / 255
    out = clf.infer(images)
    np.testing.assert_array_equal(out.classes, outputs.argmax(axis=1))
    # Brevitas' outputs are our integer scores times one scale plus one offset (its TensorNorm).
    scores = out.scores.astype(np.float64)
    a, b = np.polyfit(scores.ravel(), outputs.ravel().astype(np.float64), 1)
    assert np.abs(a * scores + b - outputs).max() < 1e-5 * abs(a) and abs(a) > 0


def test_brevitas_cnv_geometry_and_network(brevitas_cnv):
    path, _ = brevitas_cnv
    params = read_qonnx(path)
    assert params.network == {"cnv_1w1a": "cnvW1A1", "cnv_1w2a": "cnvW1A2", "cnv_2w2a": "cnvW2A2"}[path.stem]
    assert [(layer.conv.channels, layer.conv.size, layer.conv.pool) for layer in params.layers[:6]] == [
        (3, 32, False),
        (64, 30, True),
        (64, 14, False),
        (128, 12, True),
        (128, 5, False),
        (256, 3, False),
    ]
    assert [layer.mh for layer in params.layers] == [64, 64, 128, 128, 256, 256, 512, 512, 16]
    assert params.layers[0].threshold_bits == 24 and params.metadata["input_pixels"] == "0..1"
    assert params.decision == "argmax" and params.layers[-1].n_thresholds == 0
    if path.stem == "cnv_2w2a":  # Brevitas' narrow 2-bit weights: -1, 0, +1
        assert set(np.unique(params.layers[3].weights)) == {-1, 0, 1}


def test_cnv_models_outside_bnn_pynq_are_refused_by_node(brevitas_cnv, tmp_path):
    path, _ = brevitas_cnv
    model = onnx.load(path)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    for a in conv.attribute:
        if a.name == "pads":
            a.ints[:] = [1, 1, 1, 1]
    onnx.save(model, tmp_path / "padded.onnx")
    with pytest.raises(ParamsError, match=r"padded.onnx: node .*\(Conv\): only stride 1, no padding"):
        read_qonnx(tmp_path / "padded.onnx")
    model = onnx.load(path)
    quant = next(n for n in model.graph.node if n.op_type == "Quant")  # the 8-bit input quantizer's scale
    scale = next(i for i in model.graph.initializer if i.name == quant.input[1])
    scale.CopyFrom(onnx.numpy_helper.from_array(np.float32(1 / 64), scale.name))
    onnx.save(model, tmp_path / "scale.onnx")
    with pytest.raises(ParamsError, match=r"scale.onnx: node .*\(Quant\): the 8-bit input quantizer does not give"):
        read_qonnx(tmp_path / "scale.onnx")


def test_a_model_with_external_data_loads(original_dir, mnist_test, tmp_path):
    params = bnn.params.read_params(original_dir / "lfcW1A1")
    model = onnx.load(write_qonnx(params, tmp_path / "inline.onnx"))
    onnx.save(model, tmp_path / "split.onnx", save_as_external_data=True, location="split.onnx.data", size_threshold=0)
    assert (tmp_path / "split.onnx.data").stat().st_size > 3_000_000  # the weights live beside the graph
    back = read_qonnx(tmp_path / "split.onnx")
    np.testing.assert_array_equal(
        bnn.Classifier(None, back).infer(mnist_test[0][:500]).scores,
        bnn.Classifier("lfcW1A1", params, decision="argmax").infer(mnist_test[0][:500]).scores,
    )


def test_bad_qonnx_files_are_named(tmp_path, original_dir):
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ParamsError, match=r"junk.onnx: not a readable ONNX model"):
        read_qonnx(tmp_path / "junk.onnx")
    path = write_qonnx(bnn.params.read_params(original_dir / "lfcW1A2"), tmp_path / "a2.onnx")
    with pytest.raises(UnknownNameError, match="a2.onnx is a lfcW1A2 set, not lfcW1A1"):
        bnn.Classifier("lfcW1A1", path)


def test_another_sets_record_is_ignored(original_dir, mnist_test, tmp_path):
    from bnn.formats.qonnx import to_qonnx

    params = read_params(original_dir / "lfcW1A1")
    model = onnx.load(write_qonnx(params, tmp_path / "m.onnx"))
    small = to_qonnx(random_params(np.random.default_rng(1), "lfcW1A1", (64, 32, 64)))
    foreign = {p.key: p.value for p in small.metadata_props}
    for prop in model.metadata_props:  # a record whose shapes do not fit this graph
        if prop.key in ("bnn.record", "bnn.pe", "bnn.simd"):
            prop.value = foreign[prop.key]
    onnx.save(model, tmp_path / "mixed.onnx")
    back = read_qonnx(tmp_path / "mixed.onnx")
    assert back.decision == "argmax" and back.layers[0].mw == 784  # read from the graph alone
    images = mnist_test[0][:500]
    want = bnn.Classifier(None, params, decision="argmax").infer(images).scores
    np.testing.assert_array_equal(bnn.Classifier(None, back).infer(images).scores, want)


def test_truncated_and_unsupported_models_are_named(tmp_path, original_dir):
    from onnx import helper, numpy_helper

    whole = write_qonnx(bnn.params.read_params(original_dir / "lfcW1A2"), tmp_path / "whole.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ParamsError, match=r"cut.onnx: not a readable ONNX model"):
        read_qonnx(tmp_path / "cut.onnx")
    model = onnx.load(tmp_path / "whole.onnx")
    for init in model.graph.initializer:  # 3-bit hidden activations
        if init.name == "bits2":
            init.CopyFrom(numpy_helper.from_array(np.float32(3), "bits2"))
    onnx.save(model, tmp_path / "a3.onnx")
    with pytest.raises(ParamsError, match=r"a3.onnx: node out_in_node \(Quant\): Quant of 3 bits .* only 1-bit"):
        read_qonnx(tmp_path / "a3.onnx")
    model = onnx.load(tmp_path / "whole.onnx")  # a convolution where a fully connected layer goes
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    matmul.CopyFrom(helper.make_node("Conv", list(matmul.input), list(matmul.output), name="conv0"))
    onnx.save(model, tmp_path / "conv.onnx")
    with pytest.raises(ParamsError, match=r"conv.onnx: node conv0 \(Conv\): a square convolution over a square map"):
        read_qonnx(tmp_path / "conv.onnx")


def test_a_falling_input_quantizer_is_refused(tmp_path, original_dir):
    from onnx import numpy_helper

    model = onnx.load(write_qonnx(bnn.params.read_params(original_dir / "lfcW1A1"), tmp_path / "m.onnx"))
    for init in model.graph.initializer:  # y = 1 - 2 p / 255: brighter pixels become -1
        if init.name in ("inv255", "one"):
            init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
    onnx.save(model, tmp_path / "falling.onnx")
    with pytest.raises(
        ParamsError, match=r"falling.onnx: node out_in_node \(BipolarQuant\): the input quantizer is not a rising"
    ):
        read_qonnx(tmp_path / "falling.onnx")


def test_cli_takes_onnx_wherever_a_set_goes(original_dir, mnist_test, tmp_path):
    model = write_qonnx(bnn.params.read_params(original_dir / "lfcW1A2"), tmp_path / "m.onnx")
    assert run("params", "show", model).stdout.startswith(f"lfcW1A2 at {model}")
    images = bnn.idx.write_idx(tmp_path / "i-idx3-ubyte", mnist_test[0][:20])
    from_onnx = run("classify", images, "-p", model, "--json").stdout  # the network comes from the file
    folder = tmp_path / "folder"
    run("params", "convert", model, folder)
    assert run("classify", images, "-p", folder, "-n", "lfcW1A2", "--json").stdout == from_onnx
