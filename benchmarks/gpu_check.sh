#!/usr/bin/env bash
# The GPU part of the checks, in one call of the device tool, from a plain copy of the checkout: nothing
# is installed and no registry is needed (the torch runtime is Python; PYTHONPATH=src).
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=540, carry=[".gpu-data"])
# Before the call, to bring data the copy does not carry (../shared is outside the checkout):
#   mkdir -p .gpu-data/shared/data && cp -r ../shared/data/{mnist,cifar10,bnn-pynq-params} .gpu-data/shared/data/
# and, when the GPU host's Python is this machine's, the built extension: cp build/*/_native*.so src/bnn/
# Steps, each writing its output to $OUT as it goes: benchmarks/gpu_checks.py (exactness, no pytest
# needed), the pytest torch/cuda tests when pytest is there (with the carried data), the GPU benchmark,
# and, where the extension is importable and runs the avx512 kernel, benchmarks/bench_bitslice.py
# --kernel avx512 on MNIST and CIFAR-10 (AVX512_BENCH=0 leaves them out).
# The last line printed is one PASS or FAIL line with the counts.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
[ -d .gpu-data/shared ] && export BNN_SHARED="$PWD/.gpu-data/shared"
py=${PYTHON:-python3}
failed=0 ran=0
step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log as it goes, count
  local name=$1
  shift
  ran=$((ran + 1))
  echo "== $name" | tee -a "$OUT/summary.log"
  if "$@" 2>&1 | tee "$OUT/$name.log"; then
    echo "$name: ok" | tee -a "$OUT/summary.log"
  else
    failed=$((failed + 1))
    echo "$name: FAILED" | tee -a "$OUT/summary.log"
  fi
}
step exactness "$py" benchmarks/gpu_checks.py
if "$py" -c "import pytest, hypothesis" 2>/dev/null; then
  step pytest "$py" -m pytest -q -x -p no:cacheprovider tests/test_torch_runtime.py tests/test_runtimes.py -k "(torch or cuda) and not gpu_check"
else
  echo "pytest or hypothesis not installed here: the pytest step is left out" | tee -a "$OUT/summary.log"
fi
step benchmark "$py" benchmarks/bench_torch_gpu.py --out "$OUT/gpu.md"
# The extension says whether the CPU runs the kernel (/proc/cpuinfo spells the flag avx512_vpopcntdq).
if [ "${AVX512_BENCH:-1}" != 0 ] && "$py" -c "import sys; from bnn.runtimes import native; sys.exit('avx512' not in native.available_kernels())" 2>/dev/null; then
  data="${BNN_SHARED:-../shared}/data"
  step avx512-lfc "$py" benchmarks/bench_bitslice.py --kernel avx512 --rounds 9 --data "$data/mnist"
  step avx512-cnv "$py" benchmarks/bench_bitslice.py --kernel avx512 --rounds 7 --cifar "$data/cifar10/test_batch_first932.bin"
fi
if [ "$failed" = 0 ]; then echo "PASS: $ran of $ran steps"; else echo "FAIL: $failed of $ran steps failed"; fi
[ "$failed" = 0 ]
