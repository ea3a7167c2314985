"""Our QONNX exports through FINN's own front end, run by tools/check_finn.sh in a FINN environment.

For each export given: qonnx's cleanup, ConvertQONNXtoFINN, the tidy-up and
streamlining of FINN's end-to-end BNN-PYNQ test (Streamline,
ConvertBipolarMatMulToXnorPopcount, RoundAndClipThresholds; for
convolutions LowerConvsToMatMul and MakeMaxPoolNHWC), then its conversion
to hardware layers (InferBinaryMatrixVectorActivation,
InferQuantizedMatrixVectorActivation, InferThresholdingLayer; for
convolutions InferConvInpGen, InferStreamingMaxPool and RemoveCNVtoFCFlatten).
Prints the node types left, checks that every node is a FINN hardware layer
(but a CNV's input Transpose, NCHW -> NHWC, which FINN's own end-to-end test
leaves outside the hardware too), and runs the
result in FINN's executor on the images the export came with: the scores
must be ours exactly. One line per network, then PASS or FAIL.

    python finn_flow.py OUT_DIR lfcW1A1 lfcW1A2   (OUT_DIR/NET.onnx and OUT_DIR/NET.npz from check_finn.sh)
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import finn.transformation.fpgadataflow.convert_to_hw_layers as to_hw
import finn.transformation.streamline.absorb as absorb
import numpy as np
from finn.core.onnx_exec import execute_onnx
from finn.transformation.move_reshape import RemoveCNVtoFCFlatten
from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
from finn.transformation.streamline import Streamline
from finn.transformation.streamline.reorder import MakeMaxPoolNHWC, MoveScalarLinearPastInvariants
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import (
    GiveReadableTensorNames,
    GiveUniqueNodeNames,
    RemoveStaticGraphInputs,
    RemoveUnusedTensors,
)
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul
from qonnx.util.cleanup import cleanup_model

HW_DOMAIN = "finn.custom_op.fpgadataflow"


def to_hardware(model: ModelWrapper, convolutional: bool) -> ModelWrapper:
    model = cleanup_model(model).transform(ConvertQONNXtoFINN())
    for step in (InferShapes(), FoldConstants(), GiveUniqueNodeNames(), GiveReadableTensorNames(), InferDataTypes()):
        model = model.transform(step)
    model = model.transform(RemoveStaticGraphInputs())
    model.set_tensor_datatype(model.graph.input[0].name, DataType["UINT8"])  # our input: raw pixels 0..255
    model = model.transform(absorb.AbsorbSignBiasIntoMultiThreshold())
    model = model.transform(MoveScalarLinearPastInvariants())
    model = model.transform(Streamline())
    if convolutional:
        model = model.transform(LowerConvsToMatMul())
        model = model.transform(MakeMaxPoolNHWC())
        model = model.transform(absorb.AbsorbTransposeIntoMultiThreshold())
    model = model.transform(ConvertBipolarMatMulToXnorPopcount())
    model = model.transform(Streamline())
    model = model.transform(RoundAndClipThresholds())
    model = model.transform(InferDataLayouts())
    model = model.transform(RemoveUnusedTensors())
    model = model.transform(to_hw.InferBinaryMatrixVectorActivation())
    model = model.transform(to_hw.InferQuantizedMatrixVectorActivation())
    model = model.transform(to_hw.InferThresholdingLayer())
    if convolutional:
        model = model.transform(to_hw.InferConvInpGen())
        model = model.transform(to_hw.InferStreamingMaxPool())
        model = model.transform(RemoveCNVtoFCFlatten())
    model = model.transform(absorb.AbsorbConsecutiveTransposes())
    model = model.transform(GiveUniqueNodeNames())
    return model.transform(InferDataLayouts())


def main(out_dir: str, networks: list[str]) -> int:
    failed = 0
    for network in networks:
        data = np.load(Path(out_dir) / f"{network}.npz")
        model = to_hardware(ModelWrapper(str(Path(out_dir) / f"{network}.onnx")), network.startswith("cnv"))
        model.save(str(Path(out_dir) / f"{network}-finn-hw.onnx"))
        kinds = Counter(n.op_type for n in model.graph.node)
        # A CNV keeps its input's layout change (NCHW -> NHWC) outside the hardware, as in FINN's own
        # end-to-end test: one Transpose reading the graph input.
        foreign = sorted(
            {
                n.op_type
                for n in model.graph.node
                if n.domain != HW_DOMAIN and not (n.op_type == "Transpose" and n.input[0] == model.graph.input[0].name)
            }
        )
        name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
        shape = model.get_tensor_shape(name_in)
        got = np.concatenate(
            [execute_onnx(model, {name_in: im.reshape(shape).astype(np.float32)})[name_out] for im in data["images"]]
        )
        equal = np.array_equal(got.reshape(data["scores"].shape), data["scores"])
        ok = equal and not foreign
        failed += not ok
        layers = ", ".join(f"{k} x{v}" for k, v in kinds.items())
        print(
            f"{network}: {layers}; non-hardware nodes: {', '.join(foreign) or 'none'}; "
            f"scores on {len(data['images'])} images {'equal ours' if equal else 'DIFFER from ours'}: "
            f"{'PASS' if ok else 'FAIL'}",
            flush=True,
        )
        if not equal:
            print(f"  ours {data['scores'][:2].tolist()}\n  finn {got[:2].tolist()}")
    print(f"{'PASS' if not failed else 'FAIL'}: {len(networks) - failed} of {len(networks)} networks")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
