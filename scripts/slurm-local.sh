#!/usr/bin/env bash
# A throwaway one-node Slurm cluster on localhost, for tests: munged, slurmctld and slurmd with
# their config, state, sockets and logs under one folder. Sourced by scripts/test-slurm.sh.
#   slurm_local_start DIR   writes DIR/slurm.conf and a munge key, starts the daemons, waits for
#                           the node to be idle; exports SLURM_CONF so sbatch/squeue/scancel use it.
#   slurm_local_stop        stops the daemons it started (by their pids), whatever state they are in.
# Returns non-zero with a message on stderr naming what failed; the logs stay under DIR/log.

SLURM_LOCAL_PIDS=()

slurm_local_start() {
  local dir=$1
  mkdir -p "$dir"/{munge,log,state,spool,run}
  chmod 700 "$dir/munge"
  # A fresh random key for this cluster only (munge insists on 0400 and a private folder).
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  local sock="$dir/munge/munge.socket"
  munged --force --key-file="$dir/munge/munge.key" --socket="$sock" --pid-file="$dir/munge/munged.pid" \
         --seed-file="$dir/munge/munged.seed" --log-file="$dir/log/munged.log" \
    || { echo "munged did not start (see $dir/log/munged.log)" >&2; return 1; }
  SLURM_LOCAL_PIDS+=("$(cat "$dir/munge/munged.pid")")
  local host port=$(( 20000 + RANDOM % 20000 ))
  host=$(hostname -s)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=dvttest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -D -c -f "$SLURM_CONF" >"$dir/log/slurmctld.stdout" 2>&1 &
  SLURM_LOCAL_PIDS+=("$!")
  slurmd -D -N localhost -f "$SLURM_CONF" >"$dir/log/slurmd.stdout" 2>&1 &
  SLURM_LOCAL_PIDS+=("$!")
  local i state=""
  for i in $(seq 60); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    [ "$state" = idle ] && return 0
    sleep 1
  done
  echo "the Slurm node did not become idle within 60 s (state '${state}'; see $dir/log/slurmctld.log and slurmd.log)" >&2
  return 1
}

slurm_local_stop() {
  local pid
  for pid in "${SLURM_LOCAL_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SLURM_LOCAL_PIDS[@]}"; do
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
  SLURM_LOCAL_PIDS=()
}
