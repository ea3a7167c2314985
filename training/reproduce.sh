#!/usr/bin/env bash
# Reproduce the shipped parameter sets from scratch: both networks side by
# side, one thread each, on a 2-core machine (about 110 minutes). Run from
# the repository root with ../shared beside it, after
#   pip install torch==2.13.0 '.[train]'
# Each run resumes from its checkpoint if interrupted; logs go to training/.
set -euo pipefail
cd "$(dirname "$0")/.."
for network in lfcW1A1 lfcW1A2; do
  bnn train --network "$network" --epochs 180 --threads 1 --seed 0 \
    --out "train-runs/$network" --export "src/bnn/params/mnist/$network" --overwrite \
    > "training/$network.log" 2>&1 &
done
wait
