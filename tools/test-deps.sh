#!/usr/bin/env bash
# What the tests need beyond pip: a headless browser for the draw-a-digit page's test
# (Debian's chromium and its chromedriver). Installs them only when missing; needs root or sudo.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
