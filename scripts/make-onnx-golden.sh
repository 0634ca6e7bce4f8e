#!/usr/bin/env bash
# Regenerates Tests/Fixtures/onnx (the golden features of the real DINOv2 at 224 × 224) with
# onnxruntime. Not run by the tests or CI; run it by hand when the photo, the preprocessing or
# the model changes, and commit the result.
#   1. fetch the model (scripts/fetch-real-vit.sh);
#   2. write dvt's own network input for the photo with `dvt extract --save-inputs` (random
#      weights: only the input is kept, and it does not depend on the weights);
#   3. run onnxruntime on that exact input (scripts/make_onnx_golden.py) in a venv outside the
#      repository (DVT_ONNX_VENV, default /work/venvs/ort; made if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTO=chelsea.jpg
MODEL=$(./scripts/fetch-real-vit.sh)
VENV="${DVT_ONNX_VENV:-/work/venvs/ort}"
if ! "$VENV/bin/python" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q onnx onnxruntime numpy
fi
swift build -j 1 --product dvt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/photos"
cp "Datasets/photos/$PHOTO" "$tmp/photos/"
.build/debug/dvt extract --random-init 0 --arch vit_small_patch14_dinov2.lvd142m --size 224 224 \
    --images "$tmp/photos" --out "$tmp/features" --save-inputs "$tmp/inputs" >/dev/null
"$VENV/bin/python" scripts/make_onnx_golden.py "$MODEL" "$tmp/inputs/${PHOTO%.*}.npy" Tests/Fixtures/onnx "$PHOTO"
