"""Parameter sets in and out as QONNX models, in the form Brevitas writes for its bnn_pynq networks.

Needs ``onnx`` (``pip install 'bitexact-bnn[qonnx]'``). A CNV set's graph
(convolutions on 8-bit fixed-point pixels) is described at `_cnv_to_qonnx`;
a fully connected set's, per layer (raw pixels 0..255 in, float32, shape
(1, 784) or (1, 1, 28, 28)):

    input:   Mul(1/255) -> Mul(2) -> Sub(1) -> BipolarQuant      pixel p -> +1 when p >= 128
             [another pixel threshold t: Sub(t - 1/2) -> BipolarQuant;
              3-level pixels (t0, t1): Sub, Mul -> Quant(2 bits), steps half-way between pixel values;
              W1A2: a bit as the 3-level form with t0 = t1, values +-1 typed 2-bit (for FINN, see to_qonnx)]
    layer:   MatMul(x, BipolarQuant(W)) [+ the padding columns' fixed sum, layer 0]
             [W1A1: Add(MW) -> Mul(1/2)]            -> the hardware's accumulator acc
             BatchNormalization -> BipolarQuant      one threshold:  acc > T
                                -> Quant(2 bits)     two thresholds: (acc > T0) + (acc > T1) - 1
    output:  the last layer's accumulators for the set's classes = `Classifier.infer(x).scores`
             [TopK(k=1): FINN's LabelSelect, with ``topk=True``]

Each threshold becomes a BatchNormalization whose output crosses the
quantizer's step half-way between the two integer accumulators it
separates (at T + 0.5), so float32 evaluation gives exactly the integer
comparison. Tensors are named ``acc{i}`` (accumulators) and ``out{i}``
(activations) for per-layer checks.

The model's metadata records what the graph computes with but does not
hold: folding, layer 0's padding columns, the last layer's extra rows,
every stored threshold, the decision rule, classes.txt's layout
(``bnn.record`` and friends). Reading such a model back gives the set
exactly, files byte for byte, as long as the graph still computes what the
record says (checked at every reachable accumulator); a graph changed
since is read as it computes.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from ..bits import PIXEL_THRESHOLD, accumulator_thresholds, accumulators, cnv_pixel_values, last_layer_thresholds
from ..errors import MissingExtraError, ParamsError
from ..paramset import PIXELS, Conv, Layer, ParamSet, network_with_bits
from ..thresholding import fold_steps

__all__ = ["QONNX_DOMAIN", "read_qonnx", "to_qonnx", "write_qonnx"]

QONNX_DOMAIN = "qonnx.custom_op.general"
_EPS = 1e-5


def _onnx():
    try:
        import onnx
    except ImportError:
        raise MissingExtraError("QONNX models need onnx: pip install 'bitexact-bnn[qonnx]'") from None
    return onnx


def _threshold_norm(thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of a BatchNormalization (bias 0, variance 1) putting the quantizer's steps at T + 0.5.

    One threshold: y = (acc - (T + 0.5)) / sqrt(1 + eps), whose sign is exactly acc > T.
    Two (T0 <= T1, the 3-level activation): y = (acc - c) / s with c = (T0 + T1 + 1) / 2 and
    s = T1 - T0, so that y = -0.5 at T0 + 0.5 and +0.5 at T1 + 0.5; an integer acc is at
    least 0.5 / s away from either step, far beyond float32's error. T0 = T1 (no 0 level)
    gets a steep scale (the level 0 is then never reached).
    """
    t = thresholds.astype(np.float64)
    if t.shape[1] == 1:
        return t[:, 0] + 0.5, np.ones(len(t))
    lo, hi = np.minimum(t[:, 0], t[:, 1]), np.maximum(t[:, 0], t[:, 1])
    spread = np.where(hi > lo, hi - lo, 1e-3)
    return (lo + hi + 1) / 2, 1.0 / spread


def to_qonnx(params: ParamSet, *, input_shape: tuple[int, ...] = (1, PIXELS), topk: bool = False):
    """The QONNX `onnx.ModelProto` of `params` (see the module docstring for its form).

    `input_shape`: (1, 784) or (1, 1, 28, 28) as FINN's flows use; another batch size works too. A CNV
    set takes (B, 3, 32, 32) raw pixels (NCHW; only B is read from `input_shape`), see `_cnv_to_qonnx`.
    """
    _onnx()  # a clear "install" message when onnx is missing
    from onnx import helper, numpy_helper

    params.validate()
    if params.spec.convolutional:
        return _cnv_to_qonnx(params, topk=topk, batch=input_shape[0])
    nodes, inits = [], []
    shapes: dict[str, tuple[int, ...]] = {}  # every tensor's shape, stored in the graph (executors need them)

    def const(name: str, value) -> str:
        if not any(init.name == name for init in inits):  # shared scalars (1/2, 1, ...) are written once
            inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
            shapes[name] = np.shape(value)
        return name

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output + "_node", domain=domain, **attrs))
        if op == "MatMul":
            shapes[output] = (*shapes[inputs[0]][:-1], shapes[inputs[1]][-1])
        elif op == "Reshape":
            shapes[output] = tuple(int(v) for v in numpy_helper.to_array(next(i for i in inits if i.name == inputs[1])))
        else:  # elementwise, BatchNormalization and the quantizers keep their first input's shape
            shapes[output] = shapes[inputs[0]]
        return output

    x = "global_in"
    shapes[x] = tuple(input_shape)
    batch = input_shape[0]
    if tuple(input_shape[1:]) not in ((PIXELS,), (1, 28, 28), (28, 28)):
        raise ValueError(f"input_shape {input_shape}: expected (B, 784) or (B, 1, 28, 28)")
    if len(input_shape) != 2:
        x = node("Reshape", [x, _int64(inits, "flat_shape", [batch, PIXELS])], "flat")
    # W1A2: layer 0's input is typed 2-bit (its values stay +-1). FINN's InferBinaryMatrixVectorActivation
    # takes an XNOR layer's activation offset as its output type's minimum (-2 for INT2), so a 3-level
    # {-1, 0, +1} activation after a bipolar input would come out shifted by one; a 2-bit input makes
    # layer 0 a quantized MVAU, whose offset FINN reads from the thresholds' own bias (exact).
    x = _input_quantizer(params.pixel_thresholds, x, const, node, two_bits=params.activation_bits == 2)
    n_classes = len(params.classes)
    last = len(params.layers) - 1
    for i, layer in enumerate(params.layers):
        signs = layer.weights.astype(np.float32) * 2 - 1
        rows = signs[:n_classes] if i == last else signs
        columns = rows[:, :PIXELS] if i == 0 else rows
        # MatMul with (K, N) weights, the form qonnx's ConvertBipolarMatMulToXnorPopcount and FINN take.
        w = node("BipolarQuant", [const(f"w{i}_float", columns.T.copy()), "unit"], f"w{i}", QONNX_DOMAIN)
        # dot product -> accumulator, each step an (op, operand, name); the last step is named acc{i}
        # (the last layer's: scores). No Identity nodes: FINN's absorptions look for Mul/Add where they sit.
        chain = [("MatMul", w, f"dot{i}")]
        if i == 0 and layer.mw > PIXELS:  # the padding columns see -1: a fixed sum per neuron
            chain.append(("Add", const("pad_sum", -rows[:, PIXELS:].sum(axis=1)), "dot0_padded"))
        if params.activation_bits == 1:  # popcount(XNOR) = (dot + MW) / 2
            chain += [("Add", const(f"mw{i}", float(layer.mw)), f"dot{i}_offset"), ("Mul", const("half", 0.5), "")]
        y = x
        for k, (op, operand, name) in enumerate(chain):
            y = node(op, [y, operand], name if k < len(chain) - 1 else "scores" if i == last else f"acc{i}")
        if i == last:
            x = y
            break
        mean, scale = _threshold_norm(layer.effective_thresholds())
        y = node(
            "BatchNormalization",
            [
                y,
                const(f"bn{i}_scale", scale),
                const(f"bn{i}_bias", np.zeros(layer.mh)),
                const(f"bn{i}_mean", mean),
                const(f"bn{i}_var", np.ones(layer.mh)),
            ],
            f"norm{i}",
            epsilon=_EPS,
        )
        if layer.n_thresholds == 1:
            x = node("BipolarQuant", [y, "unit"], f"out{i}", QONNX_DOMAIN)
        else:
            inputs = [y, "unit", const("zero", 0.0), const("bits2", 2.0)]
            x = node("Quant", inputs, f"out{i}", QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND")
    record = {
        "bnn.pe": ",".join(str(layer.pe) for layer in params.layers),
        "bnn.simd": ",".join(str(layer.simd) for layer in params.layers),
        "bnn.last_layer_rows": str(params.layers[-1].mh),
        "bnn.record": _record(params),
    }
    return _model(params, nodes, inits, shapes, batch, n_classes, topk, tuple(input_shape), record)


def _cnv_to_qonnx(params: ParamSet, *, topk: bool, batch: int):
    """A CNV set as QONNX in Brevitas' form (see `to_qonnx`): raw pixels (0..255, float32, NCHW
    (B, 3, 32, 32) as ONNX convolutions take them) -> Mul(1/255), Mul(2), Sub(1), Quant(8 bits, scale
    1/128): the FPGA's fixed-point pixels; per layer a Conv (or MatMul after a Reshape) with
    BipolarQuant or 2-bit Quant weights, the accumulator (layer 0: Mul(256), its 1/256 units; W1A1:
    popcount), a BatchNormalization placing each threshold at T + 0.5, the activation's quantizer, and
    a MaxPool where the layer pools; the last layer's accumulators are the scores (exact: no score of
    these geometries reaches the 16 bits the hardware wraps at)."""
    _onnx()  # a clear "install" message when onnx is missing
    from onnx import helper, numpy_helper

    nodes, inits, shapes = [], [], {}

    def const(name: str, value) -> str:
        if not any(init.name == name for init in inits):
            inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
            shapes[name] = np.shape(value)
        return name

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output + "_node", domain=domain, **attrs))
        first = shapes[inputs[0]]
        if op == "Conv":
            k = shapes[inputs[1]][2]
            shapes[output] = (first[0], shapes[inputs[1]][0], first[2] - k + 1, first[3] - k + 1)
        elif op == "MaxPool":
            shapes[output] = (*first[:2], first[2] // 2, first[3] // 2)
        elif op == "MatMul":
            shapes[output] = (*first[:-1], shapes[inputs[1]][-1])
        elif op == "Reshape":
            shapes[output] = tuple(int(v) for v in numpy_helper.to_array(next(i for i in inits if i.name == inputs[1])))
        else:
            shapes[output] = first
        return output

    size, channels = params.layers[0].conv.size, params.layers[0].conv.channels
    x = "global_in"
    shapes[x] = (batch, channels, size, size)
    const("unit", 1.0)
    x = node("Mul", [x, const("inv255", 1 / 255)], "scaled")
    x = node("Mul", [x, const("two", 2.0)], "doubled")
    x = node("Sub", [x, const("one", 1.0)], "centred")
    inputs = [x, const("pixel_scale", 1 / 128), const("zero", 0.0), const("bits8", 8.0)]
    x = node("Quant", inputs, "out_in", QONNX_DOMAIN, signed=1, narrow=0, rounding_mode="ROUND")
    n_classes, last = len(params.classes), len(params.layers) - 1
    fmap = None  # the (C, H, W) map the first fully connected layer flattens
    for i, layer in enumerate(params.layers):
        values = layer.weight_values().astype(np.float32)
        rows = values[:n_classes] if i == last else values
        if layer.conv is not None:  # (O, I, k, k) from columns (ky, kx, channel)
            k, c = layer.conv.kernel, layer.conv.channels
            tensor = rows.reshape(len(rows), k, k, c).transpose(0, 3, 1, 2).copy()
        else:
            if fmap is not None:  # our columns (y, x, c); the flattened NCHW map's (c, y, x)
                c, h, w_ = fmap
                rows = rows.reshape(len(rows), h, w_, c).transpose(0, 3, 1, 2).reshape(len(rows), -1)
                x = node("Reshape", [x, _int64(inits, f"flat{i}", [batch, c * h * w_])], f"flat{i}_out")
                fmap = None
            tensor = rows.T.copy()
        if layer.weight_bits == 1:
            w = node("BipolarQuant", [const(f"w{i}_float", tensor), "unit"], f"w{i}", QONNX_DOMAIN)
        else:
            quant = [const(f"w{i}_float", tensor), "unit", "zero", const("bits2", 2.0)]
            w = node("Quant", quant, f"w{i}", QONNX_DOMAIN, signed=1, narrow=0, rounding_mode="ROUND")
        chain = [("Conv" if layer.conv is not None else "MatMul", w, f"dot{i}")]
        if i == 0:  # pixels q/128: the hardware's accumulator holds 2 dot = 256 (dot / 128)
            chain.append(("Mul", const("fixed_point", 256.0), ""))
        elif params.activation_bits == 1:  # popcount(XNOR) = (dot + MW) / 2
            chain += [("Add", const(f"mw{i}", float(layer.mw)), f"dot{i}_offset"), ("Mul", const("half", 0.5), "")]
        y = x
        for step, (op, operand, name) in enumerate(chain):
            # A Conv states its geometry (FINN's LowerConvsToMatMul reads every attribute).
            attrs = _conv_attributes(layer.conv.kernel) if op == "Conv" else {}
            y = node(op, [y, operand], name if step < len(chain) - 1 else "scores" if i == last else f"acc{i}", **attrs)
        if i == last:
            break
        mean, scale = _threshold_norm(layer.effective_thresholds())
        norm = [y, const(f"bn{i}_scale", scale), const(f"bn{i}_bias", np.zeros(layer.mh))]
        norm += [const(f"bn{i}_mean", mean), const(f"bn{i}_var", np.ones(layer.mh))]
        y = node("BatchNormalization", norm, f"norm{i}", epsilon=_EPS)
        if layer.n_thresholds == 1:
            x = node("BipolarQuant", [y, "unit"], f"out{i}", QONNX_DOMAIN)
        else:
            quant = [y, "unit", "zero", const("bits2", 2.0)]
            x = node("Quant", quant, f"out{i}", QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND")
        if layer.conv is not None and layer.conv.pool:
            x = node("MaxPool", [x], f"pool{i}", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=0)
        if layer.conv is not None:
            fmap = (layer.mh, layer.conv.out_size, layer.conv.out_size)
    return _model(params, nodes, inits, shapes, batch, n_classes, topk, (batch, channels, size, size), {})


def _conv_attributes(kernel: int) -> dict:
    """A BNN-PYNQ convolution's ONNX attributes: kernel x kernel, stride 1, no padding, one group."""
    return {"kernel_shape": [kernel, kernel], "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1}


def _model(params, nodes, inits, shapes, batch, n_classes, topk, input_shape, record: dict):
    """The checked ModelProto of `nodes` ("global_in" to "scores", or "global_out" with `topk`) and its
    metadata: the set's network, classes, decision rule and pixel convention, and `record`."""
    onnx = _onnx()
    from onnx import TensorProto, helper

    outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, n_classes])]
    if topk:
        k = _int64(inits, "k", [1])
        nodes.append(helper.make_node("TopK", ["scores", k], ["top_value", "global_out"], name="label_select"))
        outputs = [helper.make_tensor_value_info("global_out", TensorProto.INT64, [batch, 1])]
        shapes["top_value"] = (batch, 1)
    known = {"global_in", *(o.name for o in outputs)} | {init.name for init in inits}
    graph = helper.make_graph(
        nodes,
        f"bnn_{params.network}",
        [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, list(input_shape))],
        outputs,
        inits,
        value_info=[
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
            for name, shape in shapes.items()
            if name not in known
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)],
        producer_name="bnn",
    )
    meta = {
        "bnn.network": params.network,
        "bnn.classes": "\n".join(params.classes),
        "bnn.decision": params.decision,
        "bnn.input_pixels": "0..255",
        # classes.txt's layout, so that a folder written back has the same bytes
        "bnn.classes_newline": params.classes_newline,
        "bnn.classes_final_newline": str(params.classes_trailing_newlines),
        **record,
    }
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def _record(params: ParamSet) -> str:
    """What the graph computes with but does not hold, for a parameter folder written back byte for byte:
    layer 0's padding columns, the last layer's rows past the classes and every stored threshold
    (int64, as in the files), as base64 of a compressed .npz."""
    arrays = {
        "padding": np.packbits(params.layers[0].weights[:, PIXELS:], axis=1),
        "padding_columns": np.int64(params.layers[0].mw - PIXELS),
        "extra_rows": np.packbits(params.layers[-1].weights[len(params.classes) :], axis=1),
    }
    arrays.update({f"thresholds{i}": layer.thresholds for i, layer in enumerate(params.layers)})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _input_quantizer(thresholds: tuple[int, ...], x: str, const, node, *, two_bits: bool = False) -> str:
    """The nodes quantizing raw pixels (0..255) as `bnn.bits.pixel_values` does; returns the output's name.

    `two_bits`: a bit (one threshold t) written as a 2-bit Quant whose 0 level is never reached,
    i.e. the 3-level form with t0 = t1 = t (see `to_qonnx`).
    """
    const("unit", 1.0)
    if two_bits and len(thresholds) == 1:
        thresholds = (thresholds[0], thresholds[0])
    if thresholds == (PIXEL_THRESHOLD,):  # Brevitas' own form: (p / 255) * 2 - 1 >= 0 exactly when p >= 128
        x = node("Mul", [x, const("inv255", 1 / 255)], "scaled")
        x = node("Mul", [x, const("two", 2.0)], "doubled")
        x = node("Sub", [x, const("one", 1.0)], "centred")
        return node("BipolarQuant", [x, "unit"], "out_in", QONNX_DOMAIN)
    if len(thresholds) == 1:  # p - (t - 1/2) >= 0 exactly when p >= t
        x = node("Sub", [x, const("pixel_step", thresholds[0] - 0.5)], "centred")
        return node("BipolarQuant", [x, "unit"], "out_in", QONNX_DOMAIN)
    # 3 levels: y = (p - c) / s is -1/2 at p = t0 - 1/2 and +1/2 at t1 - 1/2 (as `_threshold_norm`);
    # an integer pixel is at least 1/(2 s) away from either step, so ROUND gives the levels exactly.
    mean, scale = _threshold_norm(np.array([[thresholds[0] - 1, thresholds[1] - 1]]))
    x = node("Sub", [x, const("pixel_centre", mean[0])], "centred")
    x = node("Mul", [x, const("pixel_scale", scale[0])], "normalised")
    return node(
        "Quant",
        [x, "unit", const("zero", 0.0), const("bits2", 2.0)],
        "out_in",
        QONNX_DOMAIN,
        signed=1,
        narrow=1,
        rounding_mode="ROUND",
    )


def _int64(inits: list, name: str, value) -> str:
    from onnx import numpy_helper

    inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
    return name


def write_qonnx(params: ParamSet, path: str | os.PathLike, **options) -> Path:
    """Write `params` as a QONNX file (atomically); `options` as for `to_qonnx`."""
    model = to_qonnx(params, **options)
    path = Path(path)
    with atomic_write(path) as f:
        f.write(model.SerializeToString())
    return path


# ---------------------------------------------------------------- import


def _quant_levels(op: str, y: np.ndarray, node, consts: dict, where: str) -> np.ndarray:
    """The integer levels (-1/+1, or -1/0/+1) a quantizer node gives for float32 inputs y."""
    scale = consts[node.input[1]]
    if np.any(scale <= 0) or np.size(scale) != 1:
        raise ParamsError(f"{where}: quantizer scale {scale.tolist()}: only one positive scale per tensor")
    if op == "BipolarQuant":
        return np.where(y >= 0, 1, -1).astype(np.int64)
    attrs = {a.name: a for a in node.attribute}
    zero, bits = _scalar(consts[node.input[2]], where), _scalar(consts[node.input[3]], where)
    signed = attrs["signed"].i if "signed" in attrs else 1
    narrow = attrs["narrow"].i if "narrow" in attrs else 0
    mode = attrs["rounding_mode"].s.decode() if "rounding_mode" in attrs else "ROUND"
    if (bits, signed, narrow, zero, mode) != (2.0, 1, 1, 0.0, "ROUND"):
        raise ParamsError(
            f"{where}: Quant of {bits:g} bits (signed={signed}, narrow={narrow}, zero point {zero:g}, {mode}): "
            "only 1-bit (BipolarQuant) and 2-bit narrow signed (-1, 0, +1) activations are supported"
        )
    return np.clip(np.round(y / np.float32(scale)), -1, 1).astype(np.int64)


_PIXEL_SCALES = {"0..255": np.float32(1), "0..1": np.float32(255)}


def _pixel_quantizer(op: str, prefix, node, consts: dict, meta: dict, where: str) -> tuple[str, tuple[int, ...]]:
    """(pixel scale, `ParamSet.pixel_thresholds`) of the input quantizer `node` after the float32 `prefix`.

    The model's pixels are 0..255 when its metadata says so (our export), else the convention whose
    quantizer is the original's p >= 128, else 0..1 (Brevitas', torchvision's ToTensor), else 0..255.
    """
    pixels = np.arange(256, dtype=np.float32)
    found = {}
    for name, divisor in _PIXEL_SCALES.items():
        levels = _quant_levels(op, prefix((pixels / divisor).astype(np.float32)), node, consts, where)
        if (np.diff(levels) >= 0).all():  # a rising step function of the pixel (perhaps a constant)
            # The first pixel at each step: level +1 (a bit), or levels >= 0 and +1 (3 levels).
            steps = (1,) if op == "BipolarQuant" else (0, 1)
            found[name] = tuple(dict.fromkeys(int(np.searchsorted(levels, s)) for s in steps))  # no 0 level: a bit
    said = meta.get("bnn.input_pixels", "0..255" if "bnn.network" in meta else None)
    order = [said] if said else [k for k, t in found.items() if t == (PIXEL_THRESHOLD,)] + ["0..1", "0..255"]
    chosen = next((name for name in order if name in found), None)
    if chosen is None:
        raise ParamsError(
            f"{where}: the input quantizer is not a rising step function of the pixel (0..255"
            + (", as the model's metadata says)" if said else ", nor of pixels scaled to 0..1)")
        )
    return chosen, found[chosen]


def _fixed_point_pixels(prefix, node, consts: dict, meta: dict, where: str) -> str:
    """The pixel scale ("0..255" or "0..1") under which the 8-bit input quantizer `node` after `prefix`
    gives exactly CNV layer 0's fixed-point values (`bnn.bits.cnv_pixel_values`); ParamsError otherwise."""
    attrs = {a.name: a for a in node.attribute}
    zero, bits = _scalar(consts[node.input[2]], where), _scalar(consts[node.input[3]], where)
    scale = _scalar(consts[node.input[1]], where)
    signed = attrs["signed"].i if "signed" in attrs else 1
    mode = attrs["rounding_mode"].s.decode() if "rounding_mode" in attrs else "ROUND"
    if (bits, signed, zero, mode) != (8.0, 1, 0.0, "ROUND") or scale <= 0:
        raise ParamsError(f"{where}: an input quantizer of {bits:g} bits: CNV layer 0 takes 8-bit signed pixels")
    narrow = attrs["narrow"].i if "narrow" in attrs else 0
    low = -127 if narrow else -128
    pixels = np.arange(256, dtype=np.float32)
    want = cnv_pixel_values(pixels.astype(np.uint8)).astype(np.int64)
    said = meta.get("bnn.input_pixels")
    for name, divisor in _PIXEL_SCALES.items():
        if said and name != said:
            continue
        y = prefix((pixels / divisor).astype(np.float32))
        levels = np.clip(np.round(y / np.float32(scale)), low, 127).astype(np.int64)
        if np.array_equal(levels, want):
            return name
    raise ParamsError(
        f"{where}: the 8-bit input quantizer does not give the FPGA's pixel values q = round(256 p / 255) - 128 "
        "(saturated at 127) for pixels p of 0..255 or scaled to 0..1"
    )


def _weight_levels(op: str, node, consts: dict, where: str) -> tuple[np.ndarray, int]:
    """(integer weight levels, bits) of a weight quantizer: +-1 (BipolarQuant) or 2-bit -2..1 (Quant)."""
    w = consts[node.input[0]]
    scale = _scalar(consts[node.input[1]], where)
    if op == "BipolarQuant":
        return np.where(w >= 0, 1, -1).astype(np.int8), 1
    attrs = {a.name: a for a in node.attribute}
    zero, bits = _scalar(consts[node.input[2]], where), _scalar(consts[node.input[3]], where)
    signed = attrs["signed"].i if "signed" in attrs else 1
    narrow = attrs["narrow"].i if "narrow" in attrs else 0
    mode = attrs["rounding_mode"].s.decode() if "rounding_mode" in attrs else "ROUND"
    if (bits, signed, zero, mode) != (2.0, 1, 0.0, "ROUND") or scale <= 0:
        raise ParamsError(
            f"{where}: weights of {bits:g} bits (signed={signed}, zero point {zero:g}, {mode}): only 1-bit "
            "(BipolarQuant) and 2-bit signed weights are supported"
        )
    return np.clip(np.round(w / np.float32(scale)), -1 if narrow else -2, 1).astype(np.int8), 2


def _channel_vector(value: np.ndarray) -> np.ndarray:
    """A per-channel constant of an NCHW tensor, (1, C, 1, 1), as the (C,) vector that the layer's
    (dots, neurons) arrays take; others unchanged."""
    value = np.asarray(value)
    return value.reshape(-1) if value.ndim == 4 and value.shape[0] == value.shape[2] == value.shape[3] == 1 else value


def _scalar(value: np.ndarray, where: str) -> float:
    if np.size(value) != 1:
        raise ParamsError(f"{where}: expected one value per tensor, got shape {np.shape(value)}")
    return float(np.asarray(value).reshape(-1)[0])


def _elementwise(node, x_is_first: bool, consts: dict):
    """A float32 function for Mul/Div/Add/Sub/BatchNormalization with constant operands."""
    op = node.op_type
    if op == "BatchNormalization":
        scale, bias, mean, var = (consts[n].astype(np.float32) for n in node.input[1:5])
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        std = np.sqrt(var + np.float32(eps)).astype(np.float32)
        return lambda v: ((v - mean) / std * scale + bias).astype(np.float32)
    other = _channel_vector(consts[node.input[1] if x_is_first else node.input[0]]).astype(np.float32)
    ops = {
        "Mul": lambda v: v * other,
        "Add": lambda v: v + other,
        "Sub": (lambda v: v - other) if x_is_first else (lambda v: other - v),
        "Div": (lambda v: v / other) if x_is_first else (lambda v: other / v),
    }
    return lambda v: ops[op](v).astype(np.float32)


def read_qonnx(path: str | os.PathLike, *, classes: list[str] | None = None) -> ParamSet:
    """A `ParamSet` from a QONNX model of a binarized fully connected network (Brevitas' bnn_pynq FC, or ours).

    The graph: an input prefix of scalar Mul/Sub/Add/Div (and Reshape) then
    a BipolarQuant, which must amount to pixel >= 128 for raw pixels (0..255)
    or for pixels scaled to 0..1 (Brevitas' convention); then per layer a
    Gemm or MatMul with BipolarQuant weights, elementwise Mul/Add/Sub/Div and
    BatchNormalization, and a BipolarQuant or 2-bit Quant; the last layer's
    output (after an optional per-tensor TensorNorm, and TopK) is its score.
    Each hidden layer's float function is evaluated at every reachable dot
    product and folded into thresholds (`bnn.thresholding`); a negative scale
    flips the neuron, and for the last layer the rows (argmax of a falling
    function is an argmin). The set decides by argmax, unless it is our export with
    its record intact (see the module docstring). ParamsError names the
    file and the node that does not fit.
    """
    onnx = _onnx()
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))  # external data (model.onnx.data beside it) loads too
    except Exception as exc:  # noqa: BLE001 - protobuf and IO errors alike: say which file
        raise ParamsError(f"{path}: not a readable ONNX model: {exc}") from None
    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    meta = {p.key: p.value for p in model.metadata_props}
    tensors: dict[str, tuple] = {graph.input[0].name: ("input", lambda v: v)}
    layers: list[dict] = []
    input_scale, pixel_thresholds, fixed_point = None, None, False
    weight_scales: dict[str, tuple[float, int]] = {}  # quantized weights: (scale, bits)
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    fmap = tuple(dims[1:]) if len(dims) == 4 else None  # the (C, H, W) map a Conv would read
    flattened = None  # the map a Reshape flattened: the next Gemm's columns are (c, y, x), ours (y, x, c)
    for node in graph.node:
        op, where = node.op_type, f"{path}: node {node.name or node.op_type} ({node.op_type})"
        if op == "Constant":
            continue
        args = [tensors.get(name) for name in node.input]
        live = [i for i, a in enumerate(args) if a is not None]
        if op in ("BipolarQuant", "Quant") and node.input[0] in consts:  # weights
            levels, bits = _weight_levels(op, node, consts, where)
            scale = _scalar(consts[node.input[1]], where)
            consts[node.output[0]] = levels.astype(np.float32) * np.float32(scale)
            weight_scales[node.output[0]] = (scale, bits)
            continue
        if not live:
            continue
        kind, value = args[live[0]][0], args[live[0]][1:]
        if op in ("Reshape", "Flatten", "Identity"):
            if kind == "act" and fmap is not None and op != "Identity":
                flattened, fmap = fmap, None
            tensors[node.output[0]] = args[0]
        elif op in ("Mul", "Div", "Add", "Sub", "BatchNormalization") and kind in ("input", "pre"):
            fn = _elementwise(node, live[0] == 0, consts)
            inner = value[-1]
            tensors[node.output[0]] = (kind, *value[:-1], lambda v, f=fn, g=inner: f(g(v)))
        elif op in ("BipolarQuant", "Quant") and kind == "input":
            if layers:
                raise ParamsError(f"{where}: a second input quantizer")
            if op == "Quant" and _scalar(consts[node.input[3]], where) == 8:  # CNV: 8-bit fixed-point pixels
                input_scale = _fixed_point_pixels(value[-1], node, consts, meta, where)
                pixel_thresholds, fixed_point = (PIXEL_THRESHOLD,), True
            else:
                input_scale, pixel_thresholds = _pixel_quantizer(op, value[-1], node, consts, meta, where)
            scale = _scalar(consts[node.input[1]], where)
            # +-1 values (step 2 between reachable dots), -1/0/+1 or 8-bit levels (step 1), times the scale.
            tensors[node.output[0]] = ("act", scale, 2 if op == "BipolarQuant" else 1)
        elif op in ("Gemm", "MatMul", "Conv") and kind == "act":
            w = consts.get(node.input[1])
            if w is None:
                raise ParamsError(f"{where}: weights are not a constant")
            attrs = {a.name: a for a in node.attribute}
            conv = None
            if op == "Conv":
                conv, fmap = _convolution(w, attrs, fmap, where)
                w = w.transpose(0, 2, 3, 1).reshape(len(w), -1)  # columns (ky, kx, channel)
            else:
                w = w if op == "Gemm" and "transB" in attrs and attrs["transB"].i else w.T
                if flattened is not None:
                    w = w.reshape(len(w), *flattened).transpose(0, 2, 3, 1).reshape(len(w), -1)
                    flattened = None
            scale_w, bits = weight_scales.get(node.input[1], (float(np.abs(w).max()) or 1.0, 1))
            alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
            bias = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            bias = (
                np.zeros(w.shape[0], np.float32)
                if bias is None
                else bias * (attrs["beta"].f if "beta" in attrs else 1.0)
            )
            in_scale, step = value[0], value[1]
            factor = np.float32(in_scale * scale_w * alpha)
            levels = np.round(w / np.float32(scale_w)).astype(np.int64)
            largest_input = 128 if fixed_point and not layers else 1
            layers.append(
                {
                    "weights": levels.astype(np.int8) if bits == 2 else (levels > 0).astype(np.uint8),
                    "step": 1 if bits == 2 else step,
                    # the largest |dot product| any input reaches
                    "span": int(np.abs(levels).sum(axis=1).max()) * largest_input,
                    "node": where,
                    "conv": conv,
                    "bits": bits,
                }
            )
            tensors[node.output[0]] = (
                "pre",
                len(layers) - 1,
                lambda d, f=factor, b=bias: (d * f + b).astype(np.float32),
            )
        elif op == "MaxPool" and kind == "act":
            conv = layers[-1]["conv"] if layers else None
            if conv is None or conv.pool or fmap is None:
                raise ParamsError(f"{where}: a max pool goes after a convolution's activation, once")
            _check_pool(node, fmap, where)
            layers[-1]["conv"] = Conv(conv.channels, conv.size, conv.kernel, pool=True)
            fmap = (fmap[0], fmap[1] // 2, fmap[2] // 2)
            tensors[node.output[0]] = args[live[0]]
        elif op in ("BipolarQuant", "Quant") and kind == "pre":
            index, fn = value
            layer = layers[index]
            d = _reachable(layer)
            y = fn(np.repeat(d[:, None].astype(np.float32), layer["weights"].shape[0], axis=1))
            levels = _quant_levels(op, y, node, consts, where).T  # (neurons, len(d))
            n_steps = 1 if op == "BipolarQuant" else 2
            above = [levels > 0] if n_steps == 1 else [levels > -1, levels > 0]
            layer["thresholds_dot"], layer["falling"] = fold_steps(above, d, where=where)
            scale = _scalar(consts[node.input[1]], where)
            tensors[node.output[0]] = ("act", scale, 2 if n_steps == 1 else 1)
        elif op == "TopK" and kind == "pre":
            tensors[node.output[1]] = tensors[node.output[0]] = args[live[0]]
        else:
            raise ParamsError(f"{where}: not part of a binarized network that bnn can run")
    if len(layers) < 2 or "thresholds_dot" in layers[-1]:
        raise ParamsError(f"{path}: expected hidden layers ending in quantizers and a last layer without one")
    # The last layer: argmax of its output must be argmax of the integer dot products.
    last, fn = layers[-1], tensors[graph.output[0].name][2] if tensors.get(graph.output[0].name) else None
    if fn is None:
        raise ParamsError(f"{path}: the graph output is not the last layer's scores")
    d = _reachable(last).astype(np.float32)
    y = fn(np.repeat(d[:, None], last["weights"].shape[0], axis=1))
    if not (y == y[:, :1]).all():
        raise ParamsError(
            f"{last['node']}: the output scale differs between classes: argmax of the integer "
            "accumulators would not be the model's"
        )
    rising, falling = (np.diff(y[:, 0]) > 0).all(), (np.diff(y[:, 0]) < 0).all()
    if not (rising or falling):
        raise ParamsError(f"{last['node']}: the output is not strictly monotone in the dot product")
    if falling:  # argmax of a falling function is the argmin: negate the rows
        last["weights"] = _negated(last["weights"], np.ones(len(last["weights"]), bool), last["node"])
    if fixed_point or any(layer["conv"] is not None for layer in layers):
        return _assemble_convolutional(layers, classes, meta, path, input_scale, fixed_point)
    if any(layer["bits"] == 2 for layer in layers):
        raise ParamsError(
            f"{path}: 2-bit weights in a fully connected network: bnn runs 2-bit weights in the CNV "
            "network (cnvW2A2) only"
        )
    return _assemble(layers, classes, meta, path, input_scale, pixel_thresholds)


def _recorded_layers(meta: dict, folded: list, parsed: list[dict], bits: int) -> list | None:
    """The layers as our export recorded them (`_record`: folding, padding, stored thresholds), when the
    graph still computes exactly what they do; None otherwise (no record, or the graph was changed)."""
    try:
        with np.load(io.BytesIO(base64.b64decode(meta["bnn.record"]))) as npz:
            record = {k: npz[k] for k in npz.files}
        pe = [int(v) for v in meta["bnn.pe"].split(",")]
        simd = [int(v) for v in meta["bnn.simd"].split(",")]
    except Exception:  # noqa: BLE001 - absent or unreadable: the graph alone decides
        return None
    if len(pe) != len(folded) or len(simd) != len(folded):
        return None
    layers = []
    try:  # a record that does not fit this graph's shapes (another set's, or a graph reshaped since)
        for i, (layer, fold) in enumerate(zip(folded, parsed)):
            w = layer.weights
            if i == 0:  # layer 0's padding columns
                pad = np.unpackbits(record["padding"], axis=1, count=int(record["padding_columns"]))
                if len(pad) != len(w):
                    return None
                w = np.concatenate([w, pad], axis=1)
            if i == len(folded) - 1:
                extra = np.unpackbits(record["extra_rows"], axis=1, count=w.shape[1])
                w = np.concatenate([w[: fold["weights"].shape[0]], extra])
            t = np.asarray(record[f"thresholds{i}"])
            if t.dtype != np.int64 or t.ndim != 2 or len(t) != len(w) or t.shape[1] != layer.n_thresholds:
                return None
            recorded = Layer(np.ascontiguousarray(w, dtype=np.uint8), t, pe=pe[i], simd=simd[i])
            recorded.check("record")
            layers.append(recorded)
    except (KeyError, ValueError, TypeError, ParamsError):
        return None
    # The recorded thresholds must give the folded layer's outputs at every reachable dot product.
    for layer, fold in zip(layers[:-1], parsed[:-1]):
        if fold["falling"].any():  # flipped neurons: not the rows the record describes
            return None
        k = fold["weights"].shape[1]
        d = np.arange(-k, k + 1, fold["step"], dtype=np.int64)
        pad_dot = -(2 * layer.weights[:, k:].astype(np.int64) - 1).sum(axis=1)  # padding columns see -1
        acc = accumulators(d[None, :] + pad_dot[:, None], layer.mw, bits)
        t = layer.effective_thresholds()
        for q in range(t.shape[1]):
            if not np.array_equal(acc > t[:, q : q + 1], d[None, :] > fold["thresholds_dot"][:, q : q + 1]):
                return None
    return layers


def _fold_width(n: int, most: int = 64) -> int:
    """The widest folding (PE or SIMD) of at most `most` that divides n."""
    return max(f for f in range(1, most + 1) if n % f == 0)


def _activation_bits(layers: list[dict], path) -> int:
    steps = {layer["thresholds_dot"].shape[1] for layer in layers[:-1]}
    if len(steps) != 1:
        raise ParamsError(f"{path}: hidden layers mix 1-bit and 3-level activations")
    return 1 if steps == {1} else 2


def _reachable(layer: dict) -> np.ndarray:
    """Every dot product the layer's inputs can reach, ascending and symmetric about 0 (int64)."""
    return np.arange(-layer["span"], layer["span"] + 1, layer["step"], dtype=np.int64)


def _negated(weights: np.ndarray, rows: np.ndarray, where: str) -> np.ndarray:
    """`weights` with the given rows negated: bits flipped, or 2-bit values negated (-2 has no negation)."""
    if weights.dtype == np.uint8:
        return np.where(rows[:, None], 1 - weights, weights).astype(np.uint8)
    if (weights[rows] == -2).any():
        raise ParamsError(f"{where}: a falling neuron with a weight of -2: its negation (+2) is not a 2-bit weight")
    return np.where(rows[:, None], -weights, weights).astype(np.int8)


def _convolution(w: np.ndarray, attrs: dict, fmap, where: str):
    """(Conv, the output map) of an ONNX Conv with weights (O, I, k, k) over the map fmap = (C, H, W)."""

    def ints(name, default):
        return list(attrs[name].ints) if name in attrs else default

    if w.ndim != 4 or fmap is None or w.shape[1] != fmap[0] or fmap[1] != fmap[2] or w.shape[2] != w.shape[3]:
        raise ParamsError(f"{where}: a square convolution over a square map of its input channels is expected")
    k = w.shape[2]
    if (
        ints("strides", [1, 1]) != [1, 1]
        or any(ints("pads", [0, 0, 0, 0]))
        or ints("dilations", [1, 1]) != [1, 1]
        or (attrs["group"].i if "group" in attrs else 1) != 1
        or k > fmap[1]
    ):
        raise ParamsError(f"{where}: only stride 1, no padding, no dilation, one group (BNN-PYNQ's convolutions)")
    side = fmap[1] - k + 1
    return Conv(fmap[0], fmap[1], k), (w.shape[0], side, side)


def _check_pool(node, fmap, where: str) -> None:
    attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
    if attrs.get("kernel_shape") != [2, 2] or attrs.get("strides") != [2, 2] or any(attrs.get("pads", [0])):
        raise ParamsError(f"{where}: only 2x2 max pools of stride 2 (BNN-PYNQ's)")
    if fmap[1] % 2 or fmap[2] % 2:
        raise ParamsError(f"{where}: a 2x2 pool of an odd map ({fmap[1]} x {fmap[2]})")


def _assemble_convolutional(layers, classes, meta, path, input_scale, fixed_point: bool) -> ParamSet:
    """A CNV `ParamSet` of the parsed layers: layer 0's thresholds in its accumulator's 1/256 units
    (24 bits), the others folded as the hardware compares them, the last one without thresholds."""
    bits = _activation_bits(layers, path)
    weight_bits = max(layer["bits"] for layer in layers)
    name = {(1, 1): "cnvW1A1", (2, 1): "cnvW1A2", (2, 2): "cnvW2A2"}.get((bits, weight_bits))
    if name is None:
        raise ParamsError(f"{path}: 2-bit weights with 1-bit activations: BNN-PYNQ's CNV has W1A1, W1A2, W2A2 only")
    if not fixed_point or layers[0]["conv"] is None:
        raise ParamsError(f"{path}: a CNV network starts with a convolution on 8-bit pixels (an input Quant of 8 bits)")
    out = []
    for i, layer in enumerate(layers[:-1]):
        w = _negated(layer["weights"], layer["falling"], layer["node"])
        t = layer["thresholds_dot"]
        if i == 0:  # the accumulator holds 2 dot (1/256 units): 2 dot > 2 t exactly when dot > t
            t, threshold_bits = np.clip(2 * t, -(1 << 23), (1 << 23) - 1), 24
        else:
            t, threshold_bits = np.clip(accumulator_thresholds(t, w.shape[1], bits), -32768, 32767), 16
        mh, mw = w.shape
        out.append(
            Layer(
                w,
                t,
                pe=_fold_width(mh),
                simd=_fold_width(mw, 64 // layer["bits"]),
                conv=layer["conv"],
                threshold_bits=threshold_bits,
            )
        )
    w = layers[-1]["weights"]
    n_classes, mw = w.shape
    rows = -(-n_classes // 8) * 8
    last = np.zeros((rows, mw), dtype=w.dtype)
    last[:n_classes] = w
    out.append(
        Layer(last, np.zeros((rows, 0), np.int64), pe=_fold_width(rows), simd=_fold_width(mw, 64 // layers[-1]["bits"]))
    )
    names = classes or (
        meta["bnn.classes"].split("\n") if "bnn.classes" in meta else [str(i) for i in range(n_classes)]
    )
    if len(names) != n_classes:
        raise ParamsError(f"{path}: {len(names)} class names for {n_classes} outputs")
    ours = "bnn.network" in meta  # our export: its decision rule and classes.txt layout
    params = ParamSet(
        name,
        out,
        list(names),
        decision=meta.get("bnn.decision", "argmax") if ours else "argmax",
        metadata={"imported_from": path.name, "format": "qonnx", "input_pixels": input_scale},
        source=path,
        classes_newline=meta.get("bnn.classes_newline", "\n") if ours else "\n",
    )
    params.validate()
    return params


def _assemble(layers, classes, meta, path, input_scale, pixel_thresholds) -> ParamSet:
    """The `ParamSet` of the parsed layers (hidden thresholds folded, last layer padded to a multiple of 8)."""
    bits = _activation_bits(layers, path)
    spec = network_with_bits(bits)
    out = []
    for layer in layers[:-1]:
        w = _negated(layer["weights"], layer["falling"], layer["node"])
        t = accumulator_thresholds(layer["thresholds_dot"], w.shape[1], bits)
        out.append(Layer(w, np.clip(t, -32768, 32767), pe=_fold_width(w.shape[0]), simd=_fold_width(w.shape[1])))
    w = layers[-1]["weights"]
    n_classes, mw = w.shape
    rows = -(-n_classes // 8) * 8
    last = np.zeros((rows, mw), dtype=np.uint8)
    last[:n_classes] = w
    # Output bits: dot > 0 (they serve only the highest-bit rule; these sets decide by argmax).
    t = last_layer_thresholds(rows, mw, bits)
    out.append(Layer(last, t, pe=_fold_width(rows), simd=_fold_width(mw)))
    decision, newline, trailing = "argmax", "\n", 1
    recorded = _recorded_layers(meta, out, layers, bits)
    if recorded is not None:  # our export, unchanged: the set as it was, decision rule included
        out = recorded
        decision = meta.get("bnn.decision", decision)
        newline = meta.get("bnn.classes_newline", newline)
        raw = meta.get("bnn.classes_final_newline", "1")  # line endings after the last name (was 0 or 1)
        trailing = int(raw) if raw.isdigit() else 1
    names = classes or (
        meta["bnn.classes"].split("\n") if "bnn.classes" in meta else [str(i) for i in range(n_classes)]
    )
    if len(names) != n_classes:
        raise ParamsError(f"{path}: {len(names)} class names for {n_classes} outputs")
    params = ParamSet(
        spec.name,
        out,
        list(names),
        decision=decision,
        metadata={"imported_from": path.name, "format": "qonnx", "input_pixels": input_scale},
        source=path,
        classes_newline=newline,
        classes_trailing_newlines=trailing,
        pixel_thresholds=pixel_thresholds,
    )
    params.validate()
    return params
