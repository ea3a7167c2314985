#!/usr/bin/env bash
# Reproduce the shipped parameter sets from scratch: both networks side by
# side, one thread each, on a 2-core machine (about 110 minutes). Run from
# the repository root with ../shared beside it, after
#   pip install torch==2.13.0 '.[train]'
# Each run resumes from its checkpoint if interrupted; logs go to training/.
set -euo pipefail
cd "$(dirname "$0")/.."
for network in lfcW1A1 lfcW1A2; do
  bnn train --network "$network" --epochs 180 --threads 1 --seed 0 --data ../shared/data/mnist \
    --out "train-runs/$network" --export "src/bnn/params/mnist/$network" --overwrite \
    > "training/$network.log" 2>&1 &
done
wait
# The recipes tried since (MODEL_CARD.md, "Every run tried"), one W1A1 run each:
#   bnn train -n lfcW1A1 --epochs 100 --threads 1 --validation 5000 --label-smoothing 0.1 --data ../shared/data/mnist \
#     --out train-runs/w1a1-ls --export train-runs/w1a1-ls/export
#   bnn train -n lfcW1A1 --epochs 80 --threads 1 --validation 5000 --distill 0.5 --data ../shared/data/mnist \
#     --out train-runs/w1a1-kd --export train-runs/w1a1-kd/export
#   bnn train -n lfcW1A1 --epochs 100 --lr 1e-3 --threads 1 --validation 5000 --label-smoothing 0.1 \
#     --init train-runs/w1a1-ls --data ../shared/data/mnist --out train-runs/w1a1-ls2-lr1e-3 --export train-runs/w1a1-ls2-lr1e-3/export
#   (and --lr 3e-3 --out train-runs/w1a1-ls2-lr3e-3: a second cycle from the `ls` run's selected epoch)
#   bnn train -n lfcW1A1 --epochs 400 --threads 1 --validation 5000 [--label-smoothing 0.1] --data ../shared/data/mnist \
#     --out train-runs/w1a1-400 --export train-runs/w1a1-400/export      (w1a1-ls-400 with label smoothing; resumable)
