#!/usr/bin/env bash
# Every speed and accuracy number in the README, each side by side with the PyTorch reference
# in the same command. Needs a Python with torch, timm and safetensors (never in CI), e.g.
#   python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch timm safetensors torchvision
#   DVT_TORCH_PYTHON=/tmp/torchenv/bin/python DVT_TORCH_REFERENCE=scripts/reference/dvt_torch.py \
#     PLANTED=../shared/benchmarks/planted_seed0.safetensors scripts/bench.sh | tee bench.log
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
: "${DVT_TORCH_PYTHON:?set DVT_TORCH_PYTHON to a python with torch and timm}"
: "${DVT_TORCH_REFERENCE:?set DVT_TORCH_REFERENCE to dvt_torch.py}"
: "${PLANTED:?set PLANTED to planted_seed0.safetensors}"
export DVT_TORCH_PYTHON DVT_TORCH_REFERENCE
swift build -c release --product dvt
dvt=.build/release/dvt
run() { echo "\$ dvt $*"; "$dvt" "$@"; echo; }
run bench engine
run bench vit --arch vit_small_patch14_dinov2 --size 224 --batch 8 --steps 5
run bench vit --arch vit_base_patch14_dinov2 --size 518 --batch 1 --steps 3
run bench planted "$PLANTED" --set stage1.n_levels=8 --set stage1.log2_hashmap_size=16 --set stage1.max_resolution=256 --set stage1.num_iters=3000 --set stage1.pixel_bsz=2048
for seed in 1 2; do
  "$dvt" bench planted --generate-seed "$seed" --save-generated "/tmp/planted_seed$seed.safetensors" --n-levels 8 \
    --log2-hashmap-size 16 --finest-resolution 256 --num-iters 3000 --pixel-bsz 2048 | sed "s/^/seed $seed: /"
done
run bench planted --generate-seed 3 --dim 768 --views 16 --n-levels 16 --log2-hashmap-size 20 --finest-resolution 1024 --num-iters 20 --pixel-bsz 2048
run bench srt --arch vit_small_patch14_dinov2 --size 224 --dx 3 --dy 3
run bench denoiser
# Both stages on planted data (ours only: the reference has no stage-2-on-planted command).
run bench planted-stage2 Configs/planted.yaml --quiet --set output_dir=/tmp/dvt-planted-stage2
