#!/usr/bin/env bash
# The documented browser check of a report: renders REPORT (default runs/demo/report/index.html)
# in headless Chromium (Debian's package) and writes a PNG to look at. The token-similarity
# viewer starts with the centre token of the first image selected, so the picture shows it in a
# selected state. (scripts/test-report-browser.sh --screenshot PREFIX clicks a token through
# selenium first and writes the viewer alone.)
set -euo pipefail
report="${1:-runs/demo/report/index.html}"
out="${2:-report-screenshot.png}"
command -v chromium >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq chromium >/dev/null; }
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,3200 \
  --screenshot="$out" "file://$(realpath "$report")" 2>/dev/null
echo "wrote $out"
