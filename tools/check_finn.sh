#!/usr/bin/env bash
# Our QONNX exports through FINN's own front end into its hardware layers (tools/finn_flow.py), checked
# against our scores. FINN is not on PyPI: give its source tree and the qonnx tree it pins.
#
#   tools/check_finn.sh FINN_TREE QONNX_TREE [IMAGES] [NETWORKS...]
#
# FINN_TREE: a checkout of Xilinx/finn (tested at 39f0c9a); QONNX_TREE: qonnx at the commit FINN's
# fetch-repos.sh pins (QONNX_COMMIT, fd61cfe for 39f0c9a). IMAGES: MNIST test images per network
# (default 3: FINN's python execution takes seconds per image). NETWORKS: default lfcW1A1 lfcW1A2; the cnv
# ones take CIFAR-10 images from $BNN_CIFAR (default ../shared/data/cifar10/test_batch_first932.bin).
# Builds a venv in $BNN_FINN_VENV (default .finn-venv) with what FINN's front end needs at the
# versions it pins (onnx 1.17.0, numpy 1.26), pyverilator stubbed (only its simulations need it;
# none runs here). Writes the exports with the project's own Python ($PYTHON, default .venv/bin/python).
# Prints one line per network and a last PASS or FAIL line; exits 1 on FAIL.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
finn=$(realpath "$1") qonnx=$(realpath "$2") images=${3:-3}
shift $(($# < 3 ? $# : 3))
networks=("${@:-lfcW1A1 lfcW1A2}")
read -r -a networks <<<"${networks[*]}"
python=${PYTHON:-.venv/bin/python}
venv=${BNN_FINN_VENV:-.finn-venv}
for need in "$finn/src/finn/transformation/fpgadataflow/convert_to_hw_layers.py" "$qonnx/src/qonnx/core/modelwrapper.py"; do
  [ -f "$need" ] || { echo "check_finn: $need not found: give a FINN source tree and a qonnx source tree" >&2; exit 2; }
done

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # FINN's requirements.txt pins onnx 1.17.0 and numpy 1.24 (no wheel for Python 3.11+: 1.26, its API);
  # qonnx's own pins (protobuf 3.20) conflict with FINN's, so qonnx's dependencies are named here.
  "$venv/bin/pip" install -q "numpy==1.26.4" "onnx==1.17.0" "onnxruntime>=1.18,<1.21" onnxoptimizer \
    attrs clize bitstring sigtools toposort scipy psutil dataclasses-json importlib-resources
fi
stub=$(mktemp -d)
trap 'rm -rf "$stub" "$work"' EXIT
work=$(mktemp -d)
# pyverilator (RTL simulation) is imported at module level by FINN's hardware layers; none is simulated here.
mkdir -p "$stub/pyverilator/util"
cat >"$stub/pyverilator/__init__.py" <<'PY'
class PyVerilator:  # a stand-in: FINN imports it, this check never simulates RTL
    def __init__(self, *args, **kwargs):
        raise RuntimeError("pyverilator is stubbed in tools/check_finn.sh: no RTL simulation here")
PY
cat >"$stub/pyverilator/util/__init__.py" <<'PY'
PY
cat >"$stub/pyverilator/util/axi_utils.py" <<'PY'
def _unavailable(*args, **kwargs):
    raise RuntimeError("pyverilator is stubbed in tools/check_finn.sh: no RTL simulation here")


_read_signal = reset_rtlsim = rtlsim_multi_io = toggle_clk = _unavailable
PY

# Our exports and our scores, written by the project's own environment.
"$python" - "$work" "$images" "${networks[@]}" <<'PY'
import os
import sys
from pathlib import Path

import numpy as np

import bnn
import bnn.datasets
import bnn.formats.cifar
from bnn.formats.qonnx import write_qonnx

out, n, networks = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
for network in networks:
    if network.startswith("cnv"):  # CIFAR-10 images, NCHW raw pixels as the export takes them
        clf = bnn.Classifier(network, "cifar10")
        images = bnn.formats.cifar.read_batch(os.environ.get("BNN_CIFAR", "../shared/data/cifar10/test_batch_first932.bin"))[0][:n]
        write_qonnx(clf.params, out / f"{network}.onnx", input_shape=(1, 3, 32, 32))
        taken, what = images.transpose(0, 3, 1, 2).reshape(n, 1, 3, 32, 32), "CIFAR-10"
    else:
        clf = bnn.Classifier(network, "mnist")
        images = bnn.idx.read_images(bnn.datasets.mnist_file("t10k-images-idx3-ubyte"))[:n]  # --data: BNN_DATA
        write_qonnx(clf.params, out / f"{network}.onnx", input_shape=(1, 784))
        taken, what = images.reshape(n, 1, 784), "MNIST"
    np.savez(out / f"{network}.npz", images=taken, scores=clf.infer(images).scores)
    print(f"{network}: exported ({clf.params.source}), our scores of {n} {what} test images kept", flush=True)
PY
echo "FINN $(git -C "$finn" rev-parse --short HEAD 2>/dev/null || echo "tree $finn"), qonnx $(git -C "$qonnx" rev-parse --short HEAD 2>/dev/null || echo "tree $qonnx")"
PYTHONPATH="$finn/src:$qonnx/src:$stub" FINN_ROOT="$finn" "$venv/bin/python" tools/finn_flow.py "$work" "${networks[@]}"
