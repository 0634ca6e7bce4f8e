#!/usr/bin/env bash
# The Python the transformers/timm cross-checks use (ConvertCLITests: `dvt convert` output loaded
# with strict=True in timm and compared with transformers): a venv outside the repository with
# torch (CPU), torchvision, timm, transformers and safetensors, at the versions the fixtures in
# Tests/Fixtures/hf were made with. Prints the venv's python on stdout; the rest goes to stderr.
#   DVT_HF_VENV   where the venv lives (default ~/.cache/dvt/venvs/hf)
set -euo pipefail
VENV="${DVT_HF_VENV:-$HOME/.cache/dvt/venvs/hf}"
PY="$VENV/bin/python"
check() { "$PY" -c "import torch, timm, transformers, safetensors" >/dev/null 2>&1; }
if [ -x "$PY" ] && check; then echo "$PY"; exit 0; fi
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install -q --upgrade pip >&2
# CPU wheels: torch and a torchvision built against it (timm imports torchvision).
"$VENV/bin/pip" install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu >&2
"$VENV/bin/pip" install -q "transformers==5.25.0" "timm==1.0.31" safetensors >&2
check || { echo "hf-venv.sh: $VENV cannot import torch, timm, transformers, safetensors" >&2; exit 1; }
echo "$PY"
