#!/usr/bin/env bash
# `make slurm-test`: bring up the one-node SLURM cluster (up.sh), run the end-to-end test (e2e.sh),
# then stop exactly the daemons this invocation started (a cluster that was already up stays up).
# PRISM_SLURM_KEEP=1 leaves everything running. As root.
set -euo pipefail
LOG_TAG=slurm-test
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
HERE=$(dirname "$0")

# name:pid of every daemon recorded as started by up.sh
records() {
  local n
  for n in "${DAEMONS[@]}"; do
    [ -s "$PRISM_SLURM_STATE/$n.pid" ] && echo "$n:$(pid_of "$PRISM_SLURM_STATE/$n.pid")"
  done
  return 0
}
BEFORE=$(records)
teardown() {
  local rc=$? started=() r
  for r in $(records); do grep -qx "$r" <<<"$BEFORE" || started+=("${r%%:*}"); done
  if [ "${PRISM_SLURM_KEEP:-0}" = 1 ]; then
    log "PRISM_SLURM_KEEP=1: leaving ${started[*]:-nothing} running"
  elif [ ${#started[@]} -gt 0 ]; then
    t=$(date +%s%N)
    "$HERE/down.sh" "${started[@]}"
    log "tear-down: $((($(date +%s%N) - t) / 1000000)) ms"
  else
    log "this run started no daemon; nothing to stop"
  fi
  exit $rc
}
trap teardown EXIT

t=$(date +%s%N)
"$HERE/up.sh"
log "bring-up: $((($(date +%s%N) - t) / 1000000)) ms"
t=$(date +%s%N)
"$HERE/e2e.sh"
log "end-to-end: $((($(date +%s%N) - t) / 1000000000)) s"
