#!/usr/bin/env bash
# Build the native extension with AddressSanitizer + UndefinedBehaviorSanitizer
# and run the tests that exercise it. Usage: tools/sanitize.sh [python]
# (python: an interpreter with the test dependencies, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
target=$(mktemp -d)
trap 'rm -rf "$target"' EXIT
"$py" -m pip install -q --no-deps --target "$target" \
  -Ccmake.define.BNN_SANITIZE=address,undefined -Cbuild-dir=build/sanitize .
export PYTHONPATH="$target"
export LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
# CPython itself is not leak-clean: leaks off; any other error aborts the run.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"$py" -m pytest -q -p no:cacheprovider tests/test_runtimes.py \
  tests/test_reliability.py -k "(native or Native or runtime or threads or random or batch or original) and not memory" "${@:2}"
# (the RSS-growth test is left out: ASan's quarantine keeps freed memory by design)
