"""Parameter sets out as QONNX models, in the form Brevitas writes for its bnn_pynq FC networks.

Needs ``onnx`` (``pip install 'bitexact-bnn[qonnx]'``). The graph, per layer
of the set (raw pixels 0..255 in, float32, shape (1, 784) or (1, 1, 28, 28)):

    input:   Mul(1/255) -> Mul(2) -> Sub(1) -> BipolarQuant      pixel p -> +1 when p >= 128
    layer:   Gemm(x, BipolarQuant(W)) [+ the padding columns' fixed sum, layer 0]
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
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from ..bits import PIXEL_THRESHOLD
from ..errors import MissingExtraError
from ..paramset import PIXELS, ParamSet

__all__ = ["QONNX_DOMAIN", "to_qonnx", "write_qonnx"]

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

    `input_shape`: (1, 784) or (1, 1, 28, 28) as FINN's flows use; another batch size works too.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    params.validate()
    if PIXEL_THRESHOLD != 128:  # the input steps below encode p >= 128 as (p / 255) * 2 - 1 >= 0
        raise AssertionError("the input quantizer assumes a pixel threshold of 128")
    nodes, inits = [], []

    def const(name: str, value) -> str:
        if not any(init.name == name for init in inits):  # shared scalars (1/2, 1, ...) are written once
            inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output + "_node", domain=domain, **attrs))
        return output

    x = "global_in"
    batch = input_shape[0]
    if tuple(input_shape[1:]) not in ((PIXELS,), (1, 28, 28), (28, 28)):
        raise ValueError(f"input_shape {input_shape}: expected (B, 784) or (B, 1, 28, 28)")
    if len(input_shape) != 2:
        x = node("Reshape", [x, _int64(inits, "flat_shape", [batch, PIXELS])], "flat")
    x = node("Mul", [x, const("inv255", 1 / 255)], "scaled")
    x = node("Mul", [x, const("two", 2.0)], "doubled")
    x = node("Sub", [x, const("one", 1.0)], "centred")
    x = node("BipolarQuant", [x, const("unit", 1.0)], "out_in", QONNX_DOMAIN)
    n_classes = len(params.classes)
    last = len(params.layers) - 1
    for i, layer in enumerate(params.layers):
        signs = layer.weights.astype(np.float32) * 2 - 1
        rows = signs[:n_classes] if i == last else signs
        columns = rows[:, :PIXELS] if i == 0 else rows
        w = node("BipolarQuant", [const(f"w{i}_float", columns), "unit"], f"w{i}", QONNX_DOMAIN)
        y = node("Gemm", [x, w], f"dot{i}", transB=1)
        if i == 0 and layer.mw > PIXELS:  # the padding columns see -1: a fixed sum per neuron
            y = node("Add", [y, const("pad_sum", -rows[:, PIXELS:].sum(axis=1))], "dot0_padded")
        if params.activation_bits == 1:  # popcount(XNOR) = (dot + MW) / 2
            y = node("Add", [y, const(f"mw{i}", float(layer.mw))], f"dot{i}_offset")
            y = node("Mul", [y, const("half", 0.5)], f"acc{i}")
        else:
            y = node("Identity", [y], f"acc{i}")
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
    outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, n_classes])]
    nodes.append(helper.make_node("Identity", [x], ["scores"], name="scores_node"))
    if topk:
        k = _int64(inits, "k", [1])
        nodes.append(helper.make_node("TopK", ["scores", k], ["top_value", "global_out"], name="label_select"))
        outputs = [helper.make_tensor_value_info("global_out", TensorProto.INT64, [batch, 1])]
    graph = helper.make_graph(
        nodes,
        f"bnn_{params.network}",
        [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, list(input_shape))],
        outputs,
        inits,
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
        "bnn.pe": ",".join(str(layer.pe) for layer in params.layers),
        "bnn.simd": ",".join(str(layer.simd) for layer in params.layers),
        "bnn.last_layer_rows": str(params.layers[-1].mh),
    }
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


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
