#!/usr/bin/env bash
# Installs the Debian packages the build links against, when they are missing (needs root).
# Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
# libdnnl-dev: oneDNN, the engine's matmul backend.
# libopenmpi-dev (linked, found through pkg-config) and openmpi-bin (mpirun): stage 2 over MPI.
# The Slurm test installs slurm-wlm and munge itself (scripts/test-slurm.sh): the build needs neither.
pkgs=(libopenblas-dev liblapacke-dev libjpeg-dev libpng-dev libopenmpi-dev openmpi-bin pkg-config libdnnl-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing missing packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: ${missing[*]} missing and not running as root; install them with apt-get" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi
command -v swift >/dev/null 2>&1 || { echo "error: swift not found (install Swift 6.3)" >&2; exit 1; }
