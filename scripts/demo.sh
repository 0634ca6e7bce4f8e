#!/usr/bin/env bash
# The demo: builds the release binary, runs planted segmentation (ground truth: does the artifact
# disappear, and does a linear probe gain from it?) and then the demo pipeline, whose report shows
# both in its Downstream section. Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
swift build -c release --product dvt
# Planted segmentation at two artifact strengths, sized for the demo (docs/evaluation.md has the
# full-size numbers): 6 + 3 cases each, stage 1 500 steps, stage 2 800 steps.
.build/release/dvt bench probe Configs/planted.yaml \
    --set stage1.num_iters=500 stage2.num_iters=800 output_dir=runs/demo-planted \
    --strengths 1,4 --train-cases 6 --val-cases 3 --views 48 --json runs/demo/probe/planted.json
exec .build/release/dvt run Configs/demo.yaml "$@"
