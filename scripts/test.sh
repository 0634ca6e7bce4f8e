#!/usr/bin/env bash
# The whole test suite (debug build). Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
swift build --build-tests
swift test --skip-build "$@"
