#!/usr/bin/env bash
# The mini-benchmark study (about 2 hours on 2 CPU cores, plus the demo if it has not run):
#  1. on the generated toy latents, 3 seeds each: ALOE with and without the auxiliary
#     loss at label fractions 1.0 and 0.5, and the MLP and hierarchical ablations;
#  2. the ResNet row, which reads pixels (toy latents have none), next to the full model
#     on the demo's mini-CLEVRER: its tfds frames and MONet latents (`python -m aloe.demo`
#     is run first if workdirs/demo has not finished), one seed.
# Resumable: finished runs are skipped, interrupted ones resume from their checkpoints.
# Writes studies/mini/{fraction_1.0,fraction_0.5,pixels}/results.{json,md}.
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
  --override data.root=data/toy --seeds 0,1,2
"$PYTHON" -m aloe.study --out studies/mini/fraction_0.5 \
  --run full=configs/ablations.py:full,toy \
  --run no_auxiliary=configs/ablations.py:no_auxiliary,toy \
  --override data.root=data/toy --override data.labeled_fraction=0.5 --seeds 0,1,2

DEMO=workdirs/demo
if [[ ! -f "$DEMO/demo_results.json" ]]; then
  "$PYTHON" -m aloe.demo --workdir="$DEMO"
fi
"$PYTHON" -m aloe.data.frame_store --data_dir="$DEMO/tfds" --dataset=clevrer \
  --out="$DEMO/frames" --splits=train:train,validation:valid
"$PYTHON" -m aloe.study --out studies/mini/pixels \
  --run full=configs/ablations.py:full,toy \
  --run resnet=configs/ablations.py:resnet,toy \
  --override data.root="$DEMO/latents" --override data.frames_root="$DEMO/frames" --seeds 0
