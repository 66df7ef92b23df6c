#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, for tests and for trying slurm/ by hand:
# munged, slurmctld and slurmd from Debian's packages, every file (config, state, logs, pid files,
# munge key and socket) inside STATEDIR. Not for production: one node, root, no accounting database.
#
#   scripts/slurm-local.sh start  STATEDIR   # writes STATEDIR/slurm.conf, starts the daemons, waits for "idle"
#   scripts/slurm-local.sh status STATEDIR   # daemons alive? and sinfo/squeue
#   scripts/slurm-local.sh stop   STATEDIR   # cancels its jobs, then TERM (later KILL) to the PIDs in STATEDIR
#   scripts/slurm-local.sh env    STATEDIR   # prints `export SLURM_CONF=...` for the client commands
#
# Clients (sbatch, squeue, sinfo, scontrol, sacct -c) find this cluster through SLURM_CONF=STATEDIR/slurm.conf;
# jobs inherit it. Needs root and the packages slurmctld slurmd slurm-client munge (scripts/setup-debian.sh).
# Environment: SFC_SLURM_PORT (slurmctld port, default 6817; slurmd uses the next one), SFC_SLURM_CPUS
# (CPUs the node offers, default all). Settings that matter are measured facts of docs/building.md.
# Stops only the processes it started, by the PIDs in its pid files.
set -euo pipefail

usage() { sed -n '6,10p' "$0" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
state=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$state/slurm.conf
export SLURM_CONF=$conf

log() { echo "slurm-local: $*" >&2; }

pid_of() {  # pid of a daemon from its pid file, empty if none or not running
  local f=$state/$1.pid p
  [ "$1" = munged ] && f=$state/munge/munged.pid  # munged (user munge) writes only in its own folder
  [ -s "$f" ] || return 0
  p=$(tr -dc '0-9' <"$f")
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
  return 0
}

stop_pid() {  # stop_pid NAME: TERM, wait up to 30 s, then KILL
  local name=$1 p i
  p=$(pid_of "$name")
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 300); do kill -0 "$p" 2>/dev/null || { log "stopped $name (pid $p)"; return 0; }; sleep 0.1; done
  log "$name (pid $p) did not stop on TERM in 30 s: KILL"
  kill -KILL "$p" 2>/dev/null || true
}

write_conf() {
  local host node_line cpus mem port
  host=$(hostname -s)
  port=${SFC_SLURM_PORT:-6817}
  # The node as slurmd sees it, with RealMemory below the real memory (else the node drains) and
  # optionally fewer CPUs.
  node_line=$(slurmd -C | head -n1)
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
  node_line=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<<"$node_line")
  if [ -n "${SFC_SLURM_CPUS:-}" ]; then
    cpus=$SFC_SLURM_CPUS
    node_line="NodeName=$host CPUs=$cpus RealMemory=$((mem * 9 / 10))"
  fi
  # A fresh tmp folder for every start: slurmstepd's PMIx keeps per-step folders there named by job id
  # (spmix_appdir_<uid>_<job>.<step>), which a clean start reuses from 1, and one left over by an
  # earlier cluster makes that step's launch fail. TmpFS holds the server's, mpi.conf the clients'.
  rm -rf "$state/tmp"
  mkdir -p "$state/ctld" "$state/spool" "$state/log" "$state/tmp"
  : >"$state/plugstack.conf"
  echo "PMIxCliTmpDirBase=$state/tmp" >"$state/mpi.conf"  # read from the folder of slurm.conf
  cat >"$conf" <<EOF
# Written by scripts/slurm-local.sh: a single-node cluster for tests. Do not edit; rerun start.
ClusterName=sfclocal
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=pmix
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
TmpFS=$state/tmp
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
PlugStackConfig=$state/plugstack.conf
MinJobAge=4
KillWait=5
MailProg=/bin/true
ReturnToService=2
InactiveLimit=0
$node_line State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  local m=$state/munge
  mkdir -p "$m"
  # munged refuses keys, sockets and logs in places others could write: its own 0711 folder, and
  # STATEDIR itself must be traversable for the munge user.
  chmod 0755 "$state"
  runuser -u munge -- test -x "$m" || { log "user munge cannot reach $state: make its parent folders searchable (chmod o+x)"; return 1; }
  [ -s "$m/munge.key" ] || dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$m"
  chmod 0711 "$m"
  chmod 0400 "$m/munge.key"
  runuser -u munge -- munged --socket="$m/munge.socket" --key-file="$m/munge.key" \
    --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed"
}

wait_idle() {
  local host i s=""
  host=$(hostname -s)
  for i in $(seq 300); do
    s=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case $s in
      idle|mixed|allocated) log "node $host is $s (SLURM_CONF=$conf)"; return 0 ;;
    esac
    sleep 0.1
  done
  log "node $host not idle after 30 s (state '${s:-no answer}'); last log lines:"
  tail -n 15 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
  return 1
}

case $cmd in
  start)
    [ "$(id -u)" = 0 ] || { log "needs root (munged as user munge, slurmd as root)"; exit 1; }
    for b in munged slurmctld slurmd sinfo; do
      command -v "$b" >/dev/null || { log "$b not found: apt-get install slurmctld slurmd slurm-client munge (scripts/setup-debian.sh)"; exit 1; }
    done
    for d in munged slurmctld slurmd; do
      if [ -n "$(pid_of "$d")" ]; then log "$d already running (pid $(pid_of "$d")) for $state: stop it first"; exit 1; fi
    done
    write_conf
    start_munge
    # -c: a clean start, no jobs or node states from an earlier cluster in the same folder.
    slurmctld -c -f "$conf"
    slurmd -f "$conf"
    if ! wait_idle; then "$0" stop "$state" || true; exit 1; fi
    ;;
  stop)
    if [ -n "$(pid_of slurmctld)" ]; then
      # Jobs first, so no slurmstepd outlives the cluster.
      jobs=$(squeue -h -o %i 2>/dev/null || true)
      if [ -n "$jobs" ]; then
        log "cancelling jobs $(echo $jobs)"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for i in $(seq 150); do [ -z "$(squeue -h -o %i 2>/dev/null || true)" ] && break; sleep 0.1; done
      fi
    fi
    stop_pid slurmd
    stop_pid slurmctld
    stop_pid munged
    ;;
  status)
    rc=0
    for d in munged slurmctld slurmd; do
      p=$(pid_of "$d")
      if [ -n "$p" ]; then echo "$d: running (pid $p)"; else echo "$d: not running"; rc=1; fi
    done
    if [ $rc = 0 ]; then sinfo; squeue; fi
    exit $rc
    ;;
  env)
    echo "export SLURM_CONF=$conf"
    ;;
  *) usage ;;
esac
