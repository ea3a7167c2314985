#!/usr/bin/env bash
# What the tests need beyond pip: a headless browser for the page's test (Debian's chromium and
# its chromedriver), an aarch64 cross compiler with qemu-user for the NEON kernel's test
# (tools/check_arm.sh), and SIMDe's headers for the AVX-512 kernels' test on CPUs without AVX-512
# (tools/check_avx512.sh). Installs them only when missing; needs root or sudo.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null &&
  command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null &&
  [ -f /usr/include/simde/x86/avx512.h ]; then
  exit 0
fi
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver \
  g++-aarch64-linux-gnu qemu-user libsimde-dev
