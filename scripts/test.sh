#!/usr/bin/env bash
# The whole test suite (debug build). Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
swift build --build-tests
swift test --skip-build "$@"
# Stage 1 as a Slurm array on a real one-node cluster, and the report in headless Chromium
# (each skipped with a reason off CI when it cannot run).
if [ $# -eq 0 ]; then ./scripts/test-slurm.sh; ./scripts/test-report-browser.sh; fi
