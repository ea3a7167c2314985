#!/usr/bin/env bash
# Reproduce the shipped parameter sets from scratch: both networks side by
# side, one thread each, on a 2-core machine (W1A1 about 5.2 hours, W1A2
# about 95 minutes). Run from the repository root with ../shared beside it,
# after
#   pip install torch==2.13.0 '.[train]'
# Each run resumes from its checkpoint if interrupted (run this again); logs
# go to training/.
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data/mnist
# W1A1: 400 epochs with label smoothing; the epoch is chosen on 5,000 held-out training images.
bnn train --network lfcW1A1 --epochs 400 --threads 1 --seed 0 --validation 5000 --label-smoothing 0.1 \
  --data "$data" --out train-runs/w1a1-ls-400 --export src/bnn/params/mnist/lfcW1A1 --overwrite \
  >> training/lfcW1A1-ls-400.log 2>&1 &
# W1A2: 180 epochs on all 60,000 training images, the last epoch.
bnn train --network lfcW1A2 --epochs 180 --threads 1 --seed 0 \
  --data "$data" --out train-runs/lfcW1A2 --export src/bnn/params/mnist/lfcW1A2 --overwrite \
  >> training/lfcW1A2.log 2>&1 &
wait
# The other recipes tried (MODEL_CARD.md, "Every run tried"), one W1A1 run each:
#   bnn train -n lfcW1A1 --epochs 180 --threads 1 --data $data --out train-runs/lfcW1A1   (shipped until 2026-11-29)
#   bnn train -n lfcW1A1 --epochs 400 --threads 1 --validation 5000 --data $data \
#     --out train-runs/w1a1-400 --export train-runs/w1a1-400/export
#   bnn train -n lfcW1A1 --epochs 100 --threads 1 --validation 5000 --label-smoothing 0.1 --data $data \
#     --out train-runs/w1a1-ls --export train-runs/w1a1-ls/export
#   bnn train -n lfcW1A1 --epochs 80 --threads 1 --validation 5000 --distill 0.5 --data $data \
#     --out train-runs/w1a1-kd --export train-runs/w1a1-kd/export
#   bnn train -n lfcW1A1 --epochs 100 --lr 1e-3 --threads 1 --validation 5000 --label-smoothing 0.1 \
#     --init train-runs/w1a1-ls --data $data --out train-runs/w1a1-ls2-lr1e-3 --export train-runs/w1a1-ls2-lr1e-3/export
#   (and --lr 3e-3 --out train-runs/w1a1-ls2-lr3e-3: a second cycle from the `ls` run's selected epoch)
