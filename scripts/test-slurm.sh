#!/usr/bin/env bash
# Stage 1 as a Slurm array job on a real one-node cluster (munged + slurmctld + slurmd on
# localhost, started here and stopped on exit whatever happens), checked against one local run:
#   1. docs/slurm.md's array script, shrunk (4 photos, --array=0-1, tiny stage-1 settings), under
#      `sbatch --wait` gives byte-identical feature files and one manifest line per image;
#   2. the same job with array task 1 cancelled (scancel) after its first image, then resubmitted,
#      finishes the set with no duplicate manifest line and no partial file;
#   3. docs/slurm.md's stage-2 scripts, shrunk: one task, and 2 MPI ranks under srun --mpi=pmix.
# Installs slurm-wlm and munge when missing (needs root). Without root, or when the daemons do
# not start, it is skipped with a message naming what is missing; with CI=true it fails instead.
# Uses the debug build the suite made (.build/debug/dvt), or $DVT_BIN.
set -euo pipefail
test_name=test-slurm
source "$(dirname "$0")/test-lib.sh"
require_debs slurm-wlm munge
[ "$(id -u)" -eq 0 ] || skip "slurmd must run as root to launch job steps (not root)"
for c in munged slurmctld slurmd sbatch squeue scancel sinfo; do
  command -v "$c" >/dev/null 2>&1 || skip "$c not found after installing slurm-wlm and munge"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dvt-slurm.XXXXXX")
source scripts/slurm-local.sh
cleanup() {
  local rc=$?
  slurm_local_stop
  if [ $rc -ne 0 ]; then
    echo "test-slurm: logs kept in $tmp/cluster/log and $tmp/joblogs" >&2
    tail -n 20 "$tmp"/cluster/log/*.log "$tmp"/joblogs/* 2>/dev/null >&2 || true
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
slurm_local_start "$tmp/cluster" || skip "the Slurm daemons did not start (logs: $tmp/cluster/log)"
mkdir -p "$tmp/joblogs"

# 1500 steps: each image must take long enough (≈ 5 s here) for the cancel below to land while
# task 1 works on its second image; at 150 steps the faster stage-1 step (issue 12) finished
# both images between two polls and the test failed.
# Four photos, in sorted order: task 0 (shard 0/2) gets brick and chelsea, task 1 camera and coffee.
printf '%s\n' brick.jpg camera.jpg chelsea.jpg coffee.jpg > "$tmp/list.txt"
tiny=(model=vit_small_patch14_dinov2.lvd142m input_size=[56,56] stride_size=14 layer=2
      "data_root=$repo/Datasets/photos" "data_list=$tmp/list.txt"
      stage1.num_views=3 stage1.num_iters=${DVT_SLURM_TEST_ITERS:-1500} stage1.pixel_bsz=64 stage1.n_levels=4
      stage1.log2_hashmap_size=8 stage1.max_resolution=32 stage1.print_freq=50 stage1.warmup_iters=null)
export PATH="$(dirname "$dvt"):$PATH"

# docs/slurm.md's array script, shrunk: 2 tasks of 1 CPU, tiny settings, output folder from $OUT.
cat > "$tmp/stage1-array.sh" <<SCRIPT
#!/bin/bash
#SBATCH --job-name=dvt-stage1
#SBATCH --array=0-1
#SBATCH --cpus-per-task=1
#SBATCH --mem=500M
#SBATCH --time=00:10:00
#SBATCH --requeue
export DVT_NUM_THREADS=\$SLURM_CPUS_PER_TASK
srun dvt stage1 Configs/dvt-default.yaml --random-init 1 \\
     --set ${tiny[*]} output_dir=\$OUT
SCRIPT

echo "test-slurm: local reference run"
DVT_NUM_THREADS=1 dvt stage1 Configs/dvt-default.yaml --random-init 1 --set "${tiny[@]}" "output_dir=$tmp/ref" >"$tmp/joblogs/ref.log" 2>&1 \
  || fail "the local reference run failed (see $tmp/joblogs/ref.log)"

model=vit_small_patch14_dinov2.lvd142m
# Same feature files, byte for byte; one ok manifest line per image; no temporary files.
check_run() {
  local out=$1 what=$2 f
  for tree in raw_features denoised_features; do
    for stem in brick camera chelsea coffee; do
      f="$tree/$model/$stem.npy"
      [ -f "$out/$f" ] || fail "$what: $f missing"
      cmp -s "$tmp/ref/$f" "$out/$f" || fail "$what: $f differs from the local run"
    done
  done
  local lines images
  lines=$(wc -l < "$out/stage1_manifest.jsonl")
  images=$(grep -o '"image":"[^"]*"' "$out/stage1_manifest.jsonl" | sort -u | wc -l)
  [ "$lines" -eq 4 ] && [ "$images" -eq 4 ] || { cat "$out/stage1_manifest.jsonl" >&2; fail "$what: manifest has $lines lines for $images images, want 4 and 4"; }
  [ "$(grep -c '"status":"ok"' "$out/stage1_manifest.jsonl")" -eq 4 ] || fail "$what: not every manifest line is ok"
  [ -z "$(find "$out" -name '.*.tmp-*')" ] || fail "$what: partial files left: $(find "$out" -name '.*.tmp-*')"
}

echo "test-slurm: sbatch --wait of the 2-task array"
t0=$(date +%s)
OUT=$tmp/array sbatch --wait -o "$tmp/joblogs/array_%A_%a.out" "$tmp/stage1-array.sh" >/dev/null \
  || fail "the array job failed (see $tmp/joblogs)"
check_run "$tmp/array" "array job"
echo "test-slurm: array job matches the local run ($(( $(date +%s) - t0 )) s)"

echo "test-slurm: cancel task 1 after its first image, then resubmit"
job=$(OUT=$tmp/cancel sbatch --parsable -o "$tmp/joblogs/cancel_%A_%a.out" "$tmp/stage1-array.sh")
job=${job%%;*}
for _ in $(seq 600); do
  grep -q '"image":"camera"' "$tmp/cancel/stage1_manifest.jsonl" 2>/dev/null && break
  sleep 0.2
done
grep -q '"image":"camera"' "$tmp/cancel/stage1_manifest.jsonl" || fail "task 1 never finished its first image"
scancel "${job}_1"
for _ in $(seq 300); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.2; done
[ -z "$(squeue -h -j "$job")" ] || fail "job $job still queued 60 s after the cancel"
if grep -q '"image":"coffee"' "$tmp/cancel/stage1_manifest.jsonl"; then
  fail "task 1 finished coffee before the cancel landed; raise DVT_SLURM_TEST_ITERS so the cancel is mid-run"
fi
OUT=$tmp/cancel sbatch --wait -o "$tmp/joblogs/resubmit_%A_%a.out" "$tmp/stage1-array.sh" >/dev/null \
  || fail "the resubmitted array job failed (see $tmp/joblogs)"
check_run "$tmp/cancel" "cancelled and resubmitted job"

# docs/slurm.md's stage-2 scripts, shrunk, on the stage-1 outputs above: one task, then two MPI
# ranks started by srun --mpi=pmix (rank 0 writes; every rank logs its start line).
s2=(val_list=null stage2.batch_size=2 stage2.num_iters=4 stage2.save_freq=2 stage2.print_freq=1)
cat > "$tmp/stage2.sh" <<SCRIPT
#!/bin/bash
#SBATCH --job-name=dvt-stage2
#SBATCH --cpus-per-task=2
#SBATCH --time=00:10:00
#SBATCH --requeue
export DVT_NUM_THREADS=\$SLURM_CPUS_PER_TASK
srun dvt stage2 Configs/dvt-default.yaml --set ${tiny[*]} ${s2[*]} output_dir=\$OUT --resume
SCRIPT
cat > "$tmp/stage2-mpi.sh" <<SCRIPT
#!/bin/bash
#SBATCH --job-name=dvt-stage2-mpi
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
#SBATCH --time=00:10:00
#SBATCH --requeue
export DVT_NUM_THREADS=\$SLURM_CPUS_PER_TASK
srun --mpi=pmix dvt stage2 Configs/dvt-default.yaml --set ${tiny[*]} ${s2[*]} output_dir=\$OUT --resume
SCRIPT
check_stage2() {
  local out=$1 log=$2 what=$3
  [ -f "$out/stage2/denoiser.safetensors" ] || { cat "$log" >&2; fail "$what: no stage2/denoiser.safetensors"; }
  [ "$(wc -l < "$out/stage2/metrics.jsonl")" -eq 4 ] || { cat "$log" >&2; fail "$what: metrics.jsonl does not have 4 lines"; }
}
echo "test-slurm: stage 2, one task"
OUT=$tmp/array sbatch --wait -o "$tmp/joblogs/stage2.out" "$tmp/stage2.sh" >/dev/null || { cat "$tmp/joblogs/stage2.out" >&2; fail "the stage-2 job failed"; }
check_stage2 "$tmp/array" "$tmp/joblogs/stage2.out" "stage-2 job"
echo "test-slurm: stage 2, 2 MPI ranks (srun --mpi=pmix)"
OUT=$tmp/cancel sbatch --wait -o "$tmp/joblogs/stage2-mpi.out" "$tmp/stage2-mpi.sh" >/dev/null || { cat "$tmp/joblogs/stage2-mpi.out" >&2; fail "the MPI stage-2 job failed"; }
check_stage2 "$tmp/cancel" "$tmp/joblogs/stage2-mpi.out" "MPI stage-2 job"
grep -q "rank 0 of 2" "$tmp/joblogs/stage2-mpi.out" && grep -q "rank 1 of 2" "$tmp/joblogs/stage2-mpi.out" \
  || { cat "$tmp/joblogs/stage2-mpi.out" >&2; fail "MPI stage-2 job: not every rank logged its start line"; }
echo "test-slurm: OK (array, cancel + resubmit, stage 2 with 1 task and 2 MPI ranks; $(( $(date +%s) - t0 )) s of jobs)"
