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
# torch and the torchvision built against it (timm imports torchvision), from PyPI: the only
# Python registry CI reaches. PyPI's Linux wheels are the CUDA builds (about 5.7 GiB installed,
# about 4 minutes here); they run on the CPU. A CPU-only torch wheel cannot be paired with PyPI's
# torchvision, whose compiled ops are linked against the CUDA build.
"$VENV/bin/pip" install -q "torch==2.15.0" "torchvision==0.29.2" >&2
"$VENV/bin/pip" install -q "transformers==5.25.0" "timm==1.0.31" safetensors >&2
check || { echo "hf-venv.sh: $VENV cannot import torch, timm, transformers, safetensors" >&2; exit 1; }
echo "$PY"
