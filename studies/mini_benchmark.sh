#!/usr/bin/env bash
# The mini-benchmark study on the generated toy latents (about 90 minutes on 2 CPU cores):
# ALOE with and without the auxiliary loss at label fractions 1.0 and 0.5, and the
# MLP and hierarchical ablations (the ResNet row needs frames, which toy latents lack).
# Resumable: finished runs are skipped, interrupted ones resume from their checkpoints.
# Writes studies/mini/fraction_{1.0,0.5}/results.{json,md}.
#
#   bash studies/mini_benchmark.sh [PYTHON]
set -euo pipefail
PYTHON="${1:-python}"
cd "$(dirname "$0")/.."
if [[ ! -f data/toy/valid.json ]]; then
  "$PYTHON" -m aloe.synthetic.toy_latents --out data/toy --num_train 1000 --num_valid 200 --seed 0
fi
"$PYTHON" -m aloe.study --out studies/mini/fraction_1.0 \
  --run full=configs/ablations.py:full,toy \
  --run no_auxiliary=configs/ablations.py:no_auxiliary,toy \
  --run mlp=configs/ablations.py:mlp,toy \
  --run hierarchical=configs/ablations.py:hierarchical,toy \
  --override data.root=data/toy --seeds 0
"$PYTHON" -m aloe.study --out studies/mini/fraction_0.5 \
  --run full=configs/ablations.py:full,toy \
  --run no_auxiliary=configs/ablations.py:no_auxiliary,toy \
  --override data.root=data/toy --override data.labeled_fraction=0.5 --seeds 0
