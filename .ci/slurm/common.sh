# Shared by up.sh, down.sh and test.sh (sourced, not run).
# Daemons that up.sh starts are recorded as $PRISM_SLURM_STATE/<name>.pid; nothing else is ever
# signalled, and never by name.
PRISM_SLURM_STATE=${PRISM_SLURM_STATE:-/run/prism-slurm}
# stop order; up.sh starts them in reverse
DAEMONS=(slurmd slurmctld slurmdbd mariadbd munged)
# where each daemon writes its own pid file
declare -A DAEMON_PIDFILE=(
  [munged]=/run/munge/munged.pid [mariadbd]=/run/mysqld/mysqld.pid [slurmdbd]=/run/slurmdbd.pid
  [slurmctld]=/run/slurmctld.pid [slurmd]=/run/slurmd.pid
)

_T0=${_T0:-$(date +%s%N)}
log() {
  local ms=$((($(date +%s%N) - _T0) / 1000000))
  printf '[%s %3d.%01ds] %s\n' "${LOG_TAG:-slurm}" $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}

# live PID: exists and is not a zombie (PID 1 here reaps orphans lazily, so a stopped daemon
# lingers as a zombie for a second or two)
live() {
  local st
  st=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# pid_of PIDFILE: the digits in the file (empty if none)
pid_of() { [ -s "$1" ] && tr -dc '0-9' <"$1"; }

# alive NAME PIDFILE: PIDFILE names a live process whose command is exactly NAME
alive() {
  local pid
  pid=$(pid_of "$2") || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && live "$pid"
}

# ours NAME: the daemon is running and was started by up.sh
ours() { alive "$1" "$PRISM_SLURM_STATE/$1.pid"; }

# stop_ours NAME: SIGTERM (SIGKILL after 30 s) the recorded pid, after checking it is still NAME
stop_ours() {
  local name=$1 rec="$PRISM_SLURM_STATE/$1.pid" pid comm
  pid=$(pid_of "$rec") || { echo "$name: not started by up.sh, left alone"; return 0; }
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  if [ "$comm" != "$name" ] || ! live "$pid"; then
    echo "$name: recorded pid $pid is not running ($comm); record removed"
    rm -f "$rec"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 300); do live "$pid" || break; sleep 0.1; done
  if live "$pid"; then
    echo "$name: pid $pid ignored SIGTERM for 30 s, sending SIGKILL"
    kill -KILL "$pid"
  fi
  rm -f "$rec"
  # slurmctld and slurmdbd leave their pid file behind; a stale /run/slurmctld.pid makes the
  # Debian prerm script fail on `apt-get purge`. Remove it only if it still names our pid.
  local own=${DAEMON_PIDFILE[$name]}
  [ "$(pid_of "$own" || true)" = "$pid" ] && rm -f "$own"
  echo "$name: stopped pid $pid"
}

# wait_for SECONDS WHAT CMD...: poll CMD every 0.25 s
wait_for() {
  local end=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      log "timed out after the wait for: $what"
      return 1
    fi
    sleep 0.25
  done
}
