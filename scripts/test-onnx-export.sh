#!/usr/bin/env bash
# The ONNX exports checked against onnxruntime, a runtime that shares no code with dvt:
#   1. `dvt export` of the fixture denoiser (native grid 6x6) run in onnxruntime equals
#      `dvt denoise` within 1e-4 relative at a smaller (4x5) and a larger (9x8) token grid,
#      with a batch of two maps; and equals PyTorch's official Denoiser on the fixtures' inputs
#      (Tests/Fixtures/denoiser, and Tests/Fixtures/pth/denoiser_official.pth as the source);
#      a two-block denoiser on a non-square native grid too;
#   2. `dvt export-extractor` of a DINOv2-with-registers ViT (fixed --size), of a plain ViT and
#      of CLIP with QuickGELU (dynamic size) with a denoiser, run on a bundled photo, equals
#      `dvt extract` followed by `dvt denoise` within 1e-4 relative (raw and denoised features);
#      the same for the real DINOv2 ViT-S/14 of scripts/fetch-real-vit.sh (downloaded once and
#      cached outside the repo; skipped with the reason when it cannot be fetched, off CI);
#   3. a RoPE family (DINOv3) is refused with a clear error.
# The ViTs use seeded random weights at small sizes (the CLI's --arch presets; the tiny timm
# fixtures are checked against timm by the Swift suite), the denoisers for them are written here
# in the official layout with numpy. onnxruntime, numpy and Pillow come from PyPI into a
# throwaway venv outside the repo ($DVT_ONNX_VENV, default $TMPDIR/dvt-onnx-venv). When they
# cannot be installed the test is skipped with the reason; with CI=true it fails instead.
# Uses the debug build the suite made (.build/debug/dvt), or $DVT_BIN.
set -euo pipefail
test_name=test-onnx-export
source "$(dirname "$0")/test-lib.sh"
venv=${DVT_ONNX_VENV:-${TMPDIR:-/tmp}/dvt-onnx-venv}
py=$venv/bin/python
if ! "$py" -c "import onnxruntime, numpy, PIL" >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || skip "python3 not found"
  python3 -m venv "$venv" >/dev/null 2>&1 || skip "python3 -m venv $venv failed (is python3-venv installed, is the folder writable?)"
  "$venv/bin/pip" install -q onnxruntime numpy pillow >"$venv.pip.log" 2>&1 \
    || skip "pip install onnxruntime numpy pillow failed: $(tail -n 2 "$venv.pip.log" | tr '\n' ' ')"
fi
"$py" -c "import onnxruntime" >/dev/null 2>&1 || skip "onnxruntime does not import in $venv"
echo "test-onnx-export: onnxruntime $("$py" -c 'import onnxruntime; print(onnxruntime.__version__)')"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dvt-onnx.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export DVT_ONNX_TMP=$tmp

# 1. The fixture denoiser at two grids around its native 6x6.
den=Tests/Fixtures/denoiser/weights.safetensors
"$dvt" export "$den" --out "$tmp/denoiser.onnx" >/dev/null
"$py" scripts/onnx_export_check.py maps "$tmp/maps" 64 4x5 9x8
"$dvt" denoise --denoiser "$den" --features "$tmp/maps" --out "$tmp/maps_denoised" --batch 2 >/dev/null
"$py" scripts/onnx_export_check.py denoiser "$tmp/denoiser.onnx" "$tmp/maps" "$tmp/maps_denoised"
# ... and against PyTorch itself: the fixtures' outputs come from the official DVT Denoiser
# (native grid and 5x7), also for the official .pth checkpoint layout as the export's source.
"$py" scripts/onnx_export_check.py reference "$tmp/denoiser.onnx" Tests/Fixtures/denoiser/io.safetensors
"$dvt" export Tests/Fixtures/pth/denoiser_official.pth --out "$tmp/official.onnx" >/dev/null
"$py" scripts/onnx_export_check.py reference "$tmp/official.onnx" Tests/Fixtures/pth/denoiser_io.safetensors
# Two blocks (denoiser.0.*, denoiser.1.*, an nn.Sequential) on a non-square 3x5 native grid.
"$py" scripts/onnx_export_check.py random-denoiser "$tmp/two_blocks.safetensors" 128 3x5 2
"$py" scripts/onnx_export_check.py maps "$tmp/maps128" 128 4x4
"$dvt" export "$tmp/two_blocks.safetensors" --out "$tmp/two_blocks.onnx" >/dev/null
"$dvt" denoise --denoiser "$tmp/two_blocks.safetensors" --features "$tmp/maps128" --out "$tmp/maps128_denoised" >/dev/null
"$py" scripts/onnx_export_check.py denoiser "$tmp/two_blocks.onnx" "$tmp/maps128" "$tmp/maps128_denoised"

# 2. The extractor: a bundled photo resized once (Pillow bicubic, as dvt would) so that both
#    sides read the same pixels.
"$py" scripts/onnx_export_check.py photo Datasets/photos/chelsea.jpg 70x84 "$tmp/photo_70x84/chelsea.png"
"$py" scripts/onnx_export_check.py photo Datasets/photos/chelsea.jpg 64x80 "$tmp/photo_64x80/chelsea.png"
run_extractor() {  # name arch size dim grid export-size-flags...
  local name=$1 arch=$2 size=$3 dim=$4 grid=$5; shift 5
  local h=${size%x*} w=${size#*x}
  "$py" scripts/onnx_export_check.py random-denoiser "$tmp/$name.denoiser.safetensors" "$dim" "$grid"
  local vit=(--arch "$arch" --random-init 7 --layer 2)
  "$dvt" export-extractor "${vit[@]}" "$@" --denoiser "$tmp/$name.denoiser.safetensors" --out "$tmp/$name.onnx" >/dev/null
  "$dvt" extract "${vit[@]}" --size "$h" "$w" --images "$tmp/photo_$size" --out "$tmp/$name.raw" >/dev/null 2>&1
  "$dvt" denoise --denoiser "$tmp/$name.denoiser.safetensors" --features "$tmp/$name.raw" --out "$tmp/$name.denoised" >/dev/null
  "$py" scripts/onnx_export_check.py extractor "$tmp/$name.onnx" "$tmp/photo_$size/chelsea.png" "$tmp/$name.raw/chelsea.npy" "$tmp/$name.denoised/chelsea.npy"
}
# DINOv2 with registers, fixed 70x84 input (grid 5x6), denoiser trained on 4x4.
run_extractor dinov2_reg vit_small_patch14_reg4_dinov2.lvd142m 70x84 384 4x4 --size 70 84
# Plain ViT (DINO ViT-B/16, class token, pos_embed with its class row), dynamic input, run at 64x80.
run_extractor vit_plain vit_base_patch16_224.dino 64x80 768 3x3
# CLIP (norm_pre, QuickGELU, no patch-embedding bias, CLIP mean/std), dynamic input.
run_extractor clip vit_base_patch16_clip_quickgelu_224.openai 64x80 768 4x4

# Real weights: the DINOv2 ViT-S/14 of scripts/fetch-real-vit.sh (a transformers Dinov2Model read
# from ONNX; positions resampled by transformers' plain bicubic), all 12 blocks, 224x182 input
# (grid 16x13), with a denoiser on its native 37x37 grid.
if real=$(scripts/fetch-real-vit.sh 2>"$tmp/fetch.log"); then
  "$py" scripts/onnx_export_check.py photo Datasets/photos/chelsea.jpg 224x182 "$tmp/photo_224x182/chelsea.png"
  "$py" scripts/onnx_export_check.py random-denoiser "$tmp/real.denoiser.safetensors" 384 37x37
  "$dvt" export-extractor --weights "$real" --denoiser "$tmp/real.denoiser.safetensors" --out "$tmp/real.onnx" >/dev/null
  "$dvt" extract --weights "$real" --size 224 182 --images "$tmp/photo_224x182" --out "$tmp/real.raw" >/dev/null 2>&1
  "$dvt" denoise --denoiser "$tmp/real.denoiser.safetensors" --features "$tmp/real.raw" --out "$tmp/real.denoised" >/dev/null
  "$py" scripts/onnx_export_check.py extractor "$tmp/real.onnx" "$tmp/photo_224x182/chelsea.png" "$tmp/real.raw/chelsea.npy" "$tmp/real.denoised/chelsea.npy"
else
  [ "${CI:-}" = true ] && fail "the real DINOv2 could not be fetched: $(cat "$tmp/fetch.log")"
  echo "test-onnx-export: SKIPPED the real-weights case: $(cat "$tmp/fetch.log")" >&2
fi

# 3. A RoPE family is refused, naming the reason; nothing is written.
if "$dvt" export-extractor --arch vit_small_patch16_dinov3.lvd1689m --random-init 1 --layer 0 \
     --denoiser "$tmp/dinov2_reg.denoiser.safetensors" --out "$tmp/rope.onnx" >"$tmp/rope.log" 2>&1; then
  fail "a DINOv3 (RoPE) export was not refused"
fi
grep -q "RoPE" "$tmp/rope.log" || fail "the DINOv3 refusal does not name RoPE: $(cat "$tmp/rope.log")"
[ ! -e "$tmp/rope.onnx" ] || fail "a refused export left $tmp/rope.onnx"
echo "test-onnx-export: OK"
