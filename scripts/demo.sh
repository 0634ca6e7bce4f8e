#!/usr/bin/env bash
# The demo: builds the release binary and runs the demo pipeline. Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
swift build -c release --product dvt
exec .build/release/dvt run Configs/demo.yaml "$@"
