#!/usr/bin/env bash
# Bring up a real one-node SLURM cluster on this machine for CI: Debian's SLURM 22.05 packages,
# munge, mariadb + slurmdbd (so that sacct works: the executor plugin's default status command
# and the CI's checks both use it), and fake GPUs. As root, without systemd or cgroups.
#
# Idempotent: starts only what is not running and records the pid of every daemon it starts in
# $PRISM_SLURM_STATE (default /run/prism-slurm); down.sh stops exactly those. A daemon that this
# script started is restarted when its config file changed.
#
# Fake GPUs: GRES gpu:fake:N backed by character devices /dev/fakegpuK (mknod c 1 3, i.e. aliases of
# /dev/null), so `sbatch --gpus=1` is accepted and the job gets CUDA_VISIBLE_DEVICES; there is no
# GPU behind it, and CUDA builds of torch see none.
#
# Knobs: SLURM_FAKE_GPUS (2; 0 = none), SLURM_ACCOUNT (ci; created with root as its user and as
# root's default account), SLURM_PARTITION (debug; the default partition), SLURM_SMOKE (1: srun,
# sbatch, sacct and fake-GPU checks at the end).
set -euo pipefail
LOG_TAG=up.sh
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

SLURM_FAKE_GPUS=${SLURM_FAKE_GPUS:-2}
SLURM_ACCOUNT=${SLURM_ACCOUNT:-ci}
SLURM_PARTITION=${SLURM_PARTITION:-debug}
SLURM_SMOKE=${SLURM_SMOKE:-1}
DB_PASS=${SLURM_DB_PASS:-prism-ci}

die() {
  log "ERROR: $*"
  for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/slurm/slurmdbd.log; do
    [ -f "$f" ] && { echo "---- last lines of $f"; tail -5 "$f"; }
  done
  exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"
mkdir -p "$PRISM_SLURM_STATE"

# record NAME: remember that this script started NAME (its own pid file names the daemon)
record() { cp "${DAEMON_PIDFILE[$1]}" "$PRISM_SLURM_STATE/$1.pid"; }

# install_file DEST MODE OWNER:GROUP < content; DEST is added to CHANGED when its content changed
CHANGED=()
install_file() {
  local tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
    return 0
  fi
  install -D -m "$2" -o "${3%%:*}" -g "${3##*:}" "$tmp" "$1"
  rm -f "$tmp"
  CHANGED+=("$1")
}
changed() { printf '%s\n' "${CHANGED[@]}" | grep -qE "$1"; }

# restart_if_changed NAME PATTERN: a config matching PATTERN changed while NAME runs
restart_if_changed() {
  alive "$1" "${DAEMON_PIDFILE[$1]}" && changed "$2" || return 0
  ours "$1" || die "$1 is running, was not started by up.sh, and its config changed: stop it first"
  log "config of $1 changed: restarting it"
  stop_ours "$1"
}

# start NAME CMD...: start a forking daemon unless it runs, then record it
start() {
  local name=$1
  shift
  if alive "$name" "${DAEMON_PIDFILE[$name]}"; then
    log "$name already running (pid $(pid_of "${DAEMON_PIDFILE[$name]}"))"
    return 0
  fi
  rm -f "${DAEMON_PIDFILE[$name]}"
  "$@"
  wait_for 60 "$name writes its pid file" alive "$name" "${DAEMON_PIDFILE[$name]}" || die "$name did not start"
  record "$name"
  log "$name started (pid $(pid_of "${DAEMON_PIDFILE[$name]}"))"
}

# ------------------------------------------------------------------------------ packages
PKGS=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # the postinst scripts try invoke-rc.d, which policy-rc.d denies here: we start daemons ourselves
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/prism-slurm-apt.log 2>&1 \
    || { tail -30 /tmp/prism-slurm-apt.log; die "apt-get install failed"; }
fi
log "packages: $(dpkg-query -W -f='${Package}=${Version} ' "${PKGS[@]}")"

# ------------------------------------------------------------------------------ host facts
NODE=$(hostname -s)
getent hosts "$NODE" >/dev/null || { log "adding $NODE to /etc/hosts"; echo "127.0.0.1 $NODE" >>/etc/hosts; }
HW=$(slurmd -C | head -1) # the hardware line slurmd registers with
hw() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$HW"; }
# a node that reports less memory than configured is drained: configure 95 % of it
MEM=$(($(hw RealMemory) * 95 / 100))
NODE_LINE="NodeName=$NODE CPUs=$(hw CPUs) Boards=$(hw Boards) SocketsPerBoard=$(hw SocketsPerBoard)"
NODE_LINE+=" CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore) RealMemory=$MEM"
GRES_LINES=""
if [ "$SLURM_FAKE_GPUS" -gt 0 ]; then
  NODE_LINE+=" Gres=gpu:fake:$SLURM_FAKE_GPUS"
  # AccountingStorageTRES=gres/gpu makes sacct's AllocTRES show the GPUs (needs slurmdbd)
  GRES_LINES=$'GresTypes=gpu\nAccountingStorageTRES=gres/gpu'
fi
log "node: $NODE_LINE"
mkdir -p /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm /var/log/slurm /var/lib/slurm/slurmctld

# ------------------------------------------------------------------------------ config files
install_file /etc/slurm/slurm.conf 0644 root:root <<EOF
# written by prism-repro .ci/slurm/up.sh: one-node CI cluster, no systemd, no cgroups
ClusterName=ci
SlurmctldHost=$NODE
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/pgid
TaskPlugin=task/affinity
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
SlurmUser=slurm
SlurmdUser=root
SlurmctldPidFile=${DAEMON_PIDFILE[slurmctld]}
SlurmdPidFile=${DAEMON_PIDFILE[slurmd]}
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without it a job that gives no --mem is allotted the whole node's memory
DefMemPerCPU=1000
# squeue-based status checks need finished jobs kept >= 3 x the plugin's first-check delay
MinJobAge=300
# batch jobs may be requeued (sbatch --requeue, scontrol requeue): the preemption path
JobRequeue=1
InactiveLimit=0
KillWait=30
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
# keep sbatch --comment (the plugin writes rule_<rule>_wildcards_... there) for sacct
AccountingStoreFlags=job_comment
$GRES_LINES
$NODE_LINE State=UNKNOWN
PartitionName=$SLURM_PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

if [ "$SLURM_FAKE_GPUS" -gt 0 ]; then
  for i in $(seq 0 $((SLURM_FAKE_GPUS - 1))); do
    # slurmd rejects plain files ("is not a valid character or block device")
    [ -c "/dev/fakegpu$i" ] || { rm -f "/dev/fakegpu$i"; mknod "/dev/fakegpu$i" c 1 3; }
  done
  install_file /etc/slurm/gres.conf 0644 root:root <<EOF
# written by prism-repro .ci/slurm/up.sh: fake GPUs (character devices aliasing /dev/null)
AutoDetect=off
NodeName=$NODE Name=gpu Type=fake File=/dev/fakegpu[0-$((SLURM_FAKE_GPUS - 1))]
EOF
elif [ -f /etc/slurm/gres.conf ]; then
  rm -f /etc/slurm/gres.conf
  CHANGED+=(/etc/slurm/gres.conf)
fi

# slurmdbd refuses a slurmdbd.conf that is not owned by SlurmUser or is readable by others
install_file /etc/slurm/slurmdbd.conf 0600 slurm:slurm <<EOF
# written by prism-repro .ci/slurm/up.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
PidFile=${DAEMON_PIDFILE[slurmdbd]}
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
# slurmdbd logs "Database settings not recommended values: innodb_buffer_pool_size" (it wants
# gigabytes); harmless for CI, so the pool keeps its default
install_file /etc/mysql/mariadb.conf.d/99-prism-slurm.cnf 0644 root:root <<'EOF'
# written by prism-repro .ci/slurm/up.sh
[mysqld]
innodb_lock_wait_timeout=900
innodb_log_file_size=64M
EOF
[ ${#CHANGED[@]} -eq 0 ] || log "config written: ${CHANGED[*]}"

# ------------------------------------------------------------------------------ munged
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key # the postinst makes one
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge # /run/munge: systemd's RuntimeDirectory otherwise
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! alive munged "${DAEMON_PIDFILE[munged]}"; then rm -f /run/munge/munge.socket.2*; fi
start munged su -s /bin/sh munge -c /usr/sbin/munged
wait_for 10 "munge round trip" bash -c 'munge -n | unmunge' || die "munge does not work"

# ------------------------------------------------------------------------------ mariadb, slurmdbd
mkdir -p /run/mysqld /var/log/mysql # /var/log/mysql is missing with --no-install-recommends
chown mysql:mysql /run/mysqld
chown mysql:adm /var/log/mysql
restart_if_changed mariadbd '99-prism-slurm\.cnf'
[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
start mariadbd bash -c 'setsid nohup /usr/sbin/mariadbd --user=mysql \
  >/var/log/mysql/mariadbd.console.log 2>&1 </dev/null &'
wait_for 60 "mariadb answers" mariadb-admin ping || die "mariadb does not answer"
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
restart_if_changed slurmdbd 'slurmdbd\.conf'
start slurmdbd slurmdbd
# sacctmgr reads slurm.conf (AccountingStorageType=slurmdbd) and talks to slurmdbd directly
wait_for 60 "slurmdbd answers sacctmgr" sacctmgr -n list cluster || die "slurmdbd does not answer"

# ------------------------------------------------------------------------------ slurmctld, slurmd
restart_if_changed slurmctld 'slurm\.conf|gres\.conf'
restart_if_changed slurmd 'slurm\.conf|gres\.conf'
start slurmctld slurmctld # registers cluster "ci" in slurmdbd by itself
wait_for 30 "slurmctld answers" bash -c 'scontrol ping | grep -q UP' || die "slurmctld does not answer"
start slurmd slurmd
if sinfo -h -n "$NODE" -o '%t' | grep -qE 'down|drain|fail'; then # left so by an earlier run
  scontrol update NodeName="$NODE" State=RESUME || true
fi
wait_for 60 "node $NODE idle" bash -c "sinfo -h -n $NODE -o '%t' | grep -qE '^(idle|mix|alloc)'" \
  || die "node $NODE is $(sinfo -h -n "$NODE" -o '%t %E')"

# ------------------------------------------------------------------------------ account
sacctmgr -n -P list account "$SLURM_ACCOUNT" format=account | grep -qx "$SLURM_ACCOUNT" \
  || sacctmgr -i add account "$SLURM_ACCOUNT" Description=ci Organization=ci >/dev/null
sacctmgr -n -P list assoc user=root account="$SLURM_ACCOUNT" format=user | grep -qx root \
  || sacctmgr -i add user root Account="$SLURM_ACCOUNT" DefaultAccount="$SLURM_ACCOUNT" >/dev/null
log "associations: $(sacctmgr -n -P list assoc format=cluster,account,user | tr '\n' ' ')"

# ------------------------------------------------------------------------------ smoke test
if [ "$SLURM_SMOKE" = 1 ]; then
  cd /tmp
  out=$(srun -t 1 -n1 hostname) && [ "$out" = "$NODE" ] || die "srun hostname printed '$out'"
  jid=$(sbatch --parsable -t 1 -o /dev/null --wrap true) || die "sbatch failed"
  # (not sbatch --wait: it polls every 10 s)
  wait_for 30 "job $jid completes" bash -c "scontrol -o show job $jid | grep -q JobState=COMPLETED" \
    || die "job $jid: $(scontrol -o show job "$jid")"
  wait_for 30 "sacct sees job $jid" bash -c "sacct -X -n -P -j $jid -o State | grep -q COMPLETED" \
    || die "sacct does not see job $jid"
  if [ "$SLURM_FAKE_GPUS" -gt 0 ]; then
    g=$(srun -t 1 --gpus=1 printenv CUDA_VISIBLE_DEVICES) && [ "$g" = 0 ] \
      || die "a --gpus=1 step got CUDA_VISIBLE_DEVICES='$g'"
  fi
  log "smoke test passed: srun, sbatch, sacct$([ "$SLURM_FAKE_GPUS" -gt 0 ] && echo ', srun --gpus=1')"
fi
sinfo -o '%P %a %l %D %t %N %G'
log "SLURM is up; started by this script and recorded in $PRISM_SLURM_STATE:" \
  "$(cd "$PRISM_SLURM_STATE" && ls -- *.pid 2>/dev/null | sed 's/\.pid$//' | tr '\n' ' ')"
