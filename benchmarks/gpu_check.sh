#!/usr/bin/env bash
# One call of the device tool does the whole GPU part of the torch runtime's checks:
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=540)
# It installs the package there, runs the torch tests on cuda (the shared exactness suite
# includes ("torch", "cuda") wherever CUDA is present) and the GPU benchmark; the results
# come back in $OUT (tests.log, gpu.md) to be pasted into BENCHMARKS.md.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q . pytest hypothesis 2>&1 | tail -3
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -x tests/test_torch_runtime.py tests/test_runtimes.py -k "torch or cuda" 2>&1 | tee "$OUT/tests.log" | tail -15
python3 benchmarks/bench_torch_gpu.py --out "$OUT/gpu.md"
