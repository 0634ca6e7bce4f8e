# Sourced by the shell tests (test-onnx-export.sh, test-slurm.sh, test-report-browser.sh) after
# they set `test_name`: the repository root, the dvt binary, and one rule for what a missing
# prerequisite means. A test that cannot run is a visible skip with its reason, and with
# CI=true a failure, never a silent pass.
# Sets: repo (the checkout's root, also the working directory), dvt (the debug build the suite
# made, or $DVT_BIN).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
dvt=${DVT_BIN:-$repo/.build/debug/dvt}

skip() {
  if [ "${CI:-}" = true ]; then echo "$test_name: FAIL: $* (CI=true: this test must run)" >&2; exit 1; fi
  echo "$test_name: SKIPPED: $*" >&2
  exit 0
}
fail() { echo "$test_name: FAIL: $*" >&2; exit 1; }

[ -x "$dvt" ] || fail "no dvt executable at $dvt (run swift build first, or set DVT_BIN)"

# require_debs PKG…: installs the Debian packages not yet installed (needs root), or skips.
require_debs() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || skip "${missing[*]} not installed and not root (apt-get install ${missing[*]})"
  echo "$test_name: installing ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
    || skip "apt-get could not install ${missing[*]} (no network?)"
}
