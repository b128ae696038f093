#!/usr/bin/env bash
# Stop the daemons that up.sh started, by the pids it recorded in $PRISM_SLURM_STATE (default
# /run/prism-slurm); each pid is checked against /proc/PID/comm first (pid reuse). Never kills by
# name. With arguments, stops only those daemons (test.sh passes the ones its own up.sh started).
# Packages, config and state (/var/lib/slurm, /var/lib/mysql) stay: the next up.sh starts from them.
set -uo pipefail
LOG_TAG=down.sh
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
want=("$@")
for name in "${DAEMONS[@]}"; do
  if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then continue; fi
  stop_ours "$name" | while read -r line; do log "$line"; done
done
