#!/usr/bin/env bash
# The report in a real browser: runs a tiny `dvt run` (random weights, 6×6 tokens, a few seconds
# of stage 1 and 2), opens its report/index.html over file:// in Debian's headless Chromium
# through chromium-driver and selenium, and checks it with scripts/report_browser_check.py: a
# clicked token's similarity panels equal the cosines of the run's .npy files within the storage
# and colour quantisation, in both rows and at another block; the arrow keys; a caption on every
# picture; no JavaScript error. Installs chromium and chromium-driver (apt, as root) and selenium +
# numpy (PyPI, into a venv outside the repository: $DVT_BROWSER_VENV, default
# ~/.cache/dvt/venv-report-browser). Missing browser or network = skipped with the reason, or a
# failure when CI=true. Uses the debug build the suite made (.build/debug/dvt), or $DVT_BIN.
# With --screenshot PREFIX it also writes PREFIX-viewer.png and PREFIX-page.png; --keep DIR keeps
# the run (config, features, report) in DIR.
set -euo pipefail
test_name=test-report-browser
source "$(dirname "$0")/test-lib.sh"
shot=()
keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --screenshot) shot=(--screenshot "$(realpath -m "$2")"); shift 2 ;;
    --keep) keep=$(realpath -m "$2"); shift 2 ;;
    *) echo "usage: $0 [--screenshot PREFIX] [--keep DIR]" >&2; exit 2 ;;
  esac
done

require_debs chromium chromium-driver python3-venv
command -v chromium >/dev/null && command -v chromedriver >/dev/null || skip "chromium or chromedriver not on PATH after installing"

venv=${DVT_BROWSER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dvt/venv-report-browser}
if ! "$venv/bin/python" -c "import selenium, numpy" 2>/dev/null; then
  python3 -m venv "$venv" || skip "python3 -m venv failed"
  "$venv/bin/pip" install -q selenium numpy || skip "pip could not install selenium and numpy (no network?)"
fi

if [ -n "$keep" ]; then
  tmp=$keep
  mkdir -p "$tmp"
else
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/dvt-report-browser.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
fi
printf '%s\n' chelsea.jpg rocket.jpg coffee.jpg > "$tmp/train.txt"
printf '%s\n' camera.jpg brick.jpg > "$tmp/val.txt"
cat > "$tmp/tiny.yaml" <<YAML
model: vit_small_patch14_dinov2.lvd142m
random_init: 2
input_size: [84, 84]
layer: 9
data_root: $repo/Datasets/photos
data_list: $tmp/train.txt
val_list: $tmp/val.txt
output_dir: $tmp/out
seed: 1
stage1:
  num_views: 2
  num_iters: 20
  pixel_bsz: 32
  n_levels: 2
  log2_hashmap_size: 6
  max_resolution: 16
  print_freq: 10
stage2:
  num_iters: 6
  batch_size: 2
  save_freq: 3
  val_freq: 3
  print_freq: 3
srt:
  dx: 1
  dy: 1
YAML
"$dvt" run "$tmp/tiny.yaml" --quiet --threads 2 > "$tmp/run.log" 2>&1 || { tail -n 30 "$tmp/run.log" >&2; fail "dvt run of the tiny config failed"; }
"$venv/bin/python" scripts/report_browser_check.py "$tmp/out" vit_small_patch14_dinov2.lvd142m "${shot[@]}"
