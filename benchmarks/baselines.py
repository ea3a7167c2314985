"""Float32 baselines for the benchmark: the same network as PyTorch and onnxruntime matrix products.

They decide by argmax of the last layer's accumulators, so the benchmark
checks them against the reference with the argmax rule. Kept out of the
installed package: they are what `bnn` is measured against, not part of it.
"""

from __future__ import annotations

import numpy as np

from bnn.bits import dot_thresholds
from bnn.params import ParamSet


def torch_runner(params: ParamSet, threads: int):
    """The network as float32 matrix products in PyTorch (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    weights = [torch.from_numpy(2.0 * layer.weights.T.astype(np.float32) - 1) for layer in params.layers]
    thresholds = [torch.from_numpy(_dot_thresholds(params, i)) for i in range(len(params.layers))]
    n_classes = len(params.classes)

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(images).float()
            x = torch.where(x >= 128, 1.0, -1.0)
            x = torch.nn.functional.pad(x, (0, weights[0].shape[0] - x.shape[1]), value=-1.0)
            for w, t in zip(weights[:-1], thresholds[:-1]):
                y = x @ w
                x = (
                    (y > t[:, 0]).float() * 2 - 1
                    if t.shape[1] == 1
                    else (y > t[:, 0]).float() + (y > t[:, 1]).float() - 1
                )
            return (x @ weights[-1])[:, :n_classes].argmax(dim=1).numpy()

    return run


def _dot_thresholds(params: ParamSet, i: int) -> np.ndarray:
    """Layer i's thresholds in signed dot-product units, float32."""
    layer = params.layers[i]
    return dot_thresholds(layer.effective_thresholds(), layer.mw, params.activation_bits).astype(np.float32)


def onnx_runner(params: ParamSet, threads: int):
    """The network as float32 MatMul + Greater nodes in onnxruntime (None without it)."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    nodes, inits = [], []
    mw0 = params.layers[0].mw
    inits.append(numpy_helper.from_array(np.full((1, mw0 - 784), -1.0, np.float32), "pad"))
    inits.append(numpy_helper.from_array(np.array(127.5, np.float32), "half"))
    inits.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
    inits.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    nodes += [
        helper.make_node("Cast", ["images"], ["pf"], to=TensorProto.FLOAT),
        helper.make_node("Greater", ["pf", "half"], ["pb"]),
        helper.make_node("Cast", ["pb"], ["p01"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["p01", "two"], ["p02"]),
        helper.make_node("Sub", ["p02", "one"], ["pix"]),
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Slice", ["shape", "z0", "z1"], ["n"]),
        helper.make_node("Concat", ["n", "padw"], ["padshape"], axis=0),
        helper.make_node("Expand", ["pad", "padshape"], ["padx"]),
        helper.make_node("Concat", ["pix", "padx"], ["x0"], axis=1),
    ]
    inits += [
        numpy_helper.from_array(np.array([0], np.int64), "z0"),
        numpy_helper.from_array(np.array([1], np.int64), "z1"),
        numpy_helper.from_array(np.array([mw0 - 784], np.int64), "padw"),
    ]
    x = "x0"
    for i, layer in enumerate(params.layers):
        inits.append(numpy_helper.from_array(2.0 * layer.weights.T.astype(np.float32) - 1, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"y{i}"]))
        if i == len(params.layers) - 1:
            break
        t = _dot_thresholds(params, i)
        outs = []
        for k in range(t.shape[1]):
            inits.append(numpy_helper.from_array(t[:, k].copy(), f"t{i}_{k}"))
            nodes += [
                helper.make_node("Greater", [f"y{i}", f"t{i}_{k}"], [f"g{i}_{k}"]),
                helper.make_node("Cast", [f"g{i}_{k}"], [f"c{i}_{k}"], to=TensorProto.FLOAT),
            ]
            outs.append(f"c{i}_{k}")
        if len(outs) == 1:
            nodes += [
                helper.make_node("Mul", [outs[0], "two"], [f"m{i}"]),
                helper.make_node("Sub", [f"m{i}", "one"], [f"x{i + 1}"]),
            ]
        else:
            nodes += [
                helper.make_node("Add", outs, [f"m{i}"]),
                helper.make_node("Sub", [f"m{i}", "one"], [f"x{i + 1}"]),
            ]
        x = f"x{i + 1}"
    n_classes = len(params.classes)
    inits += [
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([n_classes], np.int64), "c1"),
    ]
    last = f"y{len(params.layers) - 1}"
    nodes += [
        helper.make_node("Slice", [last, "c0", "c1", "z1"], ["scores"]),
        helper.make_node("ArgMax", ["scores"], ["classes"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "lfc",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 784])],
        [helper.make_tensor_value_info("classes", TensorProto.INT64, ["N"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del onnx
    return lambda images: session.run(["classes"], {"images": images})[0]


def all_baselines() -> dict:
    """The baselines by the name their rows carry (versions read when they are installed)."""
    names = {}
    try:
        import torch

        names["PyTorch " + torch.__version__.split("+")[0]] = torch_runner
    except ImportError:
        pass
    try:
        import onnxruntime

        names["onnxruntime " + onnxruntime.__version__] = onnx_runner
    except ImportError:
        pass
    return names
