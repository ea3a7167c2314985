#!/usr/bin/env bash
# The AVX-512 kernels (avx512 and avx512-bitslice, the real src/native/kernel_avx512.cpp), bit-exact,
# on a CPU without AVX-512: the file is compiled against SIMDe (SIMD Everywhere, Debian's libsimde-dev),
# whose portable code stands in for the intrinsics (tools/simde/immintrin.h adds the few SIMDe 0.7.4
# lacks), and the kernels' driver (tests/native/check_kernels.cpp) runs every kernel on the cases of
# tools/kernel_cases.py (random geometries; the MNIST test set when ../shared is there), comparing
# classes, scores and bits with the numpy reference. This checks the kernels' logic on any x86-64;
# their speed needs a real AVX-512 CPU. Prints one line per case and kernel; exits 1 on a mismatch.
# Usage: tools/check_avx512.sh [python]   (python: one with bnn and the test dependencies)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
if [ ! -f /usr/include/simde/x86/avx512.h ]; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends libsimde-dev
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" tools/kernel_cases.py "$work"
common=(-std=c++17 -O2 -pthread -Wno-psabi -DBNN_HAVE_X86_KERNELS)
# The AVX-512 file without any AVX-512 flag: SIMDe's code in place of the instructions.
g++ "${common[@]}" -I tools/simde -c src/native/kernel_avx512.cpp -o "$work/kernel_avx512.o"
g++ "${common[@]}" -mavx2 -mpopcnt -c src/native/kernel_avx2.cpp -o "$work/kernel_avx2.o"
g++ "${common[@]}" -DBNN_EMULATED_AVX512 src/native/network.cpp src/native/kernel_portable.cpp \
  tests/native/check_kernels.cpp "$work/kernel_avx512.o" "$work/kernel_avx2.o" -o "$work/check-avx512"
"$work/check-avx512" "$work"/*.case
