#!/bin/sh
# A one-node SLURM for the test suite (Debian bookworm's slurmctld, slurmd, slurm-client, munge; as root,
# without systemd or cgroups). Usage: scripts/slurm_ci.sh start|stop|status
# start: installs the packages when missing (apt-get), writes slurm.conf, starts munged, slurmctld and slurmd,
# waits until the node is idle and a job runs. stop: kills the daemons this script started, by their pid files.
# State, logs and pid files live in $SLURM_DIR (default /var/tmp/sciseg-slurm).
set -eu
S=${SLURM_DIR:-/var/tmp/sciseg-slurm}
HOST=$(hostname -s)

start() {
  [ "$(id -u)" = 0 ] || { echo "slurm_ci.sh: start needs root" >&2; exit 1; }
  if ! command -v slurmctld >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
  fi
  mkdir -p "$S/state" "$S/spool" "$S/log"
  getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  if ! munge -n >/dev/null 2>&1; then  # started here: its pid is kept for stop
    su -s /bin/sh munge -c /usr/sbin/munged
    cp /run/munge/munged.pid "$S/munged.pid"
  fi
  MEM=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) * 8 / 10 ))
  mkdir -p /etc/slurm
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
SlurmdTimeout=30
KillWait=5
MinJobAge=60
NodeName=$HOST CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  [ -s "$S/slurmctld.pid" ] && kill -0 "$(cat "$S/slurmctld.pid")" 2>/dev/null || /usr/sbin/slurmctld
  [ -s "$S/slurmd.pid" ] && kill -0 "$(cat "$S/slurmd.pid")" 2>/dev/null || /usr/sbin/slurmd
  i=0
  until sinfo -h -o %T 2>/dev/null | grep -qx idle; do
    i=$((i + 1))
    [ $i -le 60 ] || { echo "slurm_ci.sh: SLURM did not come up" >&2; cat "$S"/log/*.log >&2; exit 1; }
    sleep 0.5
  done
  srun -t 1 hostname >/dev/null
  echo "slurm_ci.sh: one-node SLURM up on $HOST ($(nproc) CPUs, ${MEM} MB), state in $S"
}

stop() {
  for f in slurmd slurmctld munged; do
    if [ -s "$S/$f.pid" ]; then
      kill "$(cat "$S/$f.pid")" 2>/dev/null || true
      rm -f "$S/$f.pid"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo -h -o "%P %T %D" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
