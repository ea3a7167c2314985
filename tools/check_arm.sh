#!/usr/bin/env bash
# The NEON kernel, bit-exact, on an x86 machine: cross-compile the kernels and a test driver
# (tests/native/check_kernels.cpp) for aarch64 with Debian's g++-aarch64-linux-gnu, and run it
# under qemu-user on cases whose expected outputs come from the numpy reference: the MNIST test
# set with both original sets (when ../shared is there) and random geometries (hidden widths 64
# and 256, 1 to 5 hidden layers, inputs not a multiple of 64, both activations and decision rules,
# 1-bit and 3-level pixels).
# Usage: tools/check_arm.sh [python]   (python: one with bnn and the test dependencies)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends g++-aarch64-linux-gnu qemu-user
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" tools/kernel_cases.py "$work"
sources="src/native/network.cpp src/native/kernel_portable.cpp tests/native/check_kernels.cpp"
aarch64-linux-gnu-g++ -std=c++17 -O2 -static -pthread -DBNN_HAVE_NEON_KERNELS \
  $sources src/native/kernel_neon.cpp -o "$work/check-aarch64"
qemu-aarch64 "$work/check-aarch64" "$work"/*.case
