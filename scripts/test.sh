#!/usr/bin/env bash
# The whole test suite (debug build). Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
swift build --build-tests
swift test --skip-build "$@"
# Stage 1 as a Slurm array on a real one-node cluster (skipped with a reason off CI).
if [ $# -eq 0 ]; then ./scripts/test-slurm.sh; fi
# The ONNX exports run in onnxruntime (a throwaway venv; skipped with a reason off CI).
if [ $# -eq 0 ]; then ./scripts/test-onnx-export.sh; fi
