#!/usr/bin/env bash
# What the tests need beyond pip: a headless browser for the draw-a-digit page's test
# (Debian's chromium and its chromedriver), and an aarch64 cross compiler with qemu-user for
# the NEON kernel's test (tools/check_arm.sh). Installs them only when missing; needs root or sudo.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null &&
  command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null; then
  exit 0
fi
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver \
  g++-aarch64-linux-gnu qemu-user
