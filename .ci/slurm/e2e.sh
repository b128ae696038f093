#!/usr/bin/env bash
# SLURM end to end, on a running cluster (up.sh; `make slurm-test` brings one up around this):
#  1. `make slurm-profile` into a private XDG_CONFIG_HOME, then `snakemake --profile slurm`
#     verbatim, with the workflow profile profiles/default picked up by itself;
#  2. a fake-GPU step: CUDA_VISIBLE_DEVICES is set, torch sees no GPU, device auto means CPU;
#  3. the tiny preset through SLURM beside a local run: every non-local job ran inside a SLURM job
#     that sacct reports COMPLETED, training asked for a GPU, the metrics are equal;
#  4. preemption: a long training job is requeued mid-run (scontrol requeue, what preemption with
#     --requeue does) and resumes from its checkpoint, then cancelled (scancel) and resubmitted by
#     Snakemake (retries), resuming again; its curve and metrics equal an uninterrupted local run's.
# Each workflow runs in its own copy (Snakefile, config.yaml, workflow/, profiles/, envs/) under a
# temporary folder, removed on success and kept on failure.
set -euo pipefail
LOG_TAG=e2e
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
# the workflow files to copy (default: this checkout)
SRC=${PRISM_WORKFLOW_SRC:-$REPO}
# jobs inherit the submitting environment (sbatch --export=ALL): the venv must be first on PATH
export PATH="$REPO/.venv/bin:$PATH"
CHECK="python $REPO/.ci/slurm/check.py"
WORK=$(mktemp -d /tmp/prism-slurm-e2e.XXXXXX)
export XDG_CONFIG_HOME=$WORK/xdg
# the run that the preemption test trains (README's single-run example); long enough to interrupt
RUN=mf_bpr_full0.0001_xavier_lr0.01_s123
TARGET=results/tiny/runs/Synthetic/$RUN/metrics.parquet
# (a config file: `--config train={...}` would pass the numbers as strings)
RESUME_CONFIG=(--configfile "$WORK/resume.yaml" --config preset=tiny)
cat >"$WORK/resume.yaml" <<'EOF'
presets:
  tiny:
    train: {max_epochs: 1500, patience: 1500, checkpoint_every: 50, device: auto}
EOF
# faster first status poll than the profile's default (40 s); keep logs of successful jobs too
SLURM_FLAGS=(--slurm-init-seconds-before-status-checks 5 --slurm-keep-successful-logs --verbose)

# Snakemake runs: `timeout -s INT` (on SIGTERM Snakemake waits for its running jobs; on SIGINT
# it cancels them), SIGKILL 30 s later; started with `env -C` so that $! is the timeout process
BG=()
cleanup() {
  local rc=$? pid
  for pid in "${BG[@]}"; do pkill -INT -P "$pid" 2>/dev/null || true; kill -INT "$pid" 2>/dev/null || true; done
  # jobs of our runs that are still queued or running (only after a failure)
  for id in $(grep -ho 'SLURM run ID: \S*' "$WORK"/*.log 2>/dev/null | awk '{print $4}'); do
    scancel --name="$id" 2>/dev/null || true
  done
  if [ $rc = 0 ] && [ "${PRISM_E2E_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT

copy_workflow() {
  mkdir -p "$1"
  for f in Snakefile config.yaml workflow profiles envs; do cp -r "$SRC/$f" "$1/"; done
}
# slurm_snakemake DIR LOG ARGS...: the cluster profile by name, as a user types it
slurm_snakemake() {
  local dir=$1 out=$2
  shift 2
  env -C "$dir" timeout -s INT -k 30 1800 snakemake --profile slurm "${SLURM_FLAGS[@]}" "$@" >"$out" 2>&1
}
local_snakemake() {
  local dir=$1 out=$2
  shift 2
  env -C "$dir" timeout -s INT -k 30 1800 snakemake "$@" >"$out" 2>&1
}
show_fail() {
  log "FAIL: $1"
  [ -n "${2:-}" ] && [ -f "$2" ] && { echo "---- last lines of $2"; tail -40 "$2"; }
  exit 1
}
seconds() { echo $((($(date +%s%N) - $1) / 1000000000)); }

log "workdir $WORK; cluster: $(sinfo -h -o '%P %D %t %G' | tr '\n' ' ')"
for d in local slurm resume-local resume-slurm; do copy_workflow "$WORK/$d"; done

# ---------------------------------------------------------------------------- 1. the profile
make -s -C "$REPO" slurm-profile
[ "$(readlink "$XDG_CONFIG_HOME/snakemake/slurm")" = "$REPO/profiles/slurm" ] || show_fail "make slurm-profile did not link"

# ---------------------------------------------------------------------------- 2. fake GPU
out=$(cd "$WORK" && srun -t 2 --gpus=1 python -c "import os, torch
from prism_repro.train import resolve_device
print(os.environ.get('CUDA_VISIBLE_DEVICES'), torch.cuda.is_available(), resolve_device('auto'))")
log "srun --gpus=1: CUDA_VISIBLE_DEVICES, torch.cuda.is_available(), device auto = $out"
[ "$out" = "0 False cpu" ] || show_fail "expected '0 False cpu' from a fake-GPU step"

# ---------------------------------------------------------------------------- 3. tiny preset
# the local reference runs go on meanwhile
(local_snakemake "$WORK/local" "$WORK/local.log" --cores 2 --config preset=tiny \
  && local_snakemake "$WORK/resume-local" "$WORK/resume-local.log" --cores 1 "${RESUME_CONFIG[@]}" -- "$TARGET") &
BG+=($!)
t=$(date +%s%N)
log "snakemake --profile slurm --config preset=tiny  (log: $WORK/slurm.log)"
slurm_snakemake "$WORK/slurm" "$WORK/slurm.log" --config preset=tiny || show_fail "SLURM run failed" "$WORK/slurm.log"
grep -m1 "^Using profile" "$WORK/slurm.log"
log "tiny preset through SLURM: $(seconds "$t") s; sbatch submissions:"
$CHECK submissions "$WORK/slurm.log"
log "sacct of the run's jobs:"
$CHECK slurm-run "$WORK/slurm.log" || show_fail "SLURM run check"

# ---------------------------------------------------------------------------- 4. preemption
t=$(date +%s%N)
D=$WORK/resume-slurm
CKPT=$D/results/tiny/runs/Synthetic/$RUN/work/checkpoint.pt
TRAIN_LOG=$D/results/tiny/logs/train/Synthetic/$RUN.log
log "preemption: snakemake --profile slurm ${RESUME_CONFIG[*]} -- $TARGET  ($(tr -s ' \n' ' ' <"$WORK/resume.yaml"))"
slurm_snakemake "$D" "$WORK/resume-slurm.log" "${RESUME_CONFIG[@]}" -- "$TARGET" &
SMK=$!
BG+=($SMK)
running() { kill -0 "$SMK" 2>/dev/null; }
wait_for 600 "the first checkpoint" bash -c "[ -s '$CKPT' ] || ! kill -0 $SMK" && running \
  || show_fail "no checkpoint before the run ended" "$WORK/resume-slurm.log"
uuid=$(grep -o 'SLURM run ID: \S*' "$WORK/resume-slurm.log" | awk '{print $4}')
jid=$(squeue -h --name="$uuid" -o '%i %k' | awk '$2 ~ /train/ {print $1}')
[ -n "$jid" ] || show_fail "no running training job" "$WORK/resume-slurm.log"
log "checkpoint written ($(grep -c ' epoch ' "$TRAIN_LOG") epochs logged): scontrol requeue $jid"
scontrol requeue "$jid"
# a requeued job becomes eligible after 120 s; start it now
wait_for 60 "job $jid pending again" bash -c "squeue -h -j $jid -o %T | grep -q PENDING" || show_fail "job $jid not requeued"
scontrol update JobId="$jid" StartTime=now
wait_for 300 "job $jid resumes" grep -q "resumed from" "$TRAIN_LOG" || show_fail "job $jid did not resume" "$TRAIN_LOG"
first=$($CHECK resumed "$TRAIN_LOG")
grep -m1 "resumed from" "$TRAIN_LOG"
inode=$(stat -c %i "$CKPT")
wait_for 300 "a checkpoint after the resume" bash -c "[ \"\$(stat -c %i '$CKPT' 2>/dev/null)\" != $inode ]" \
  || show_fail "no checkpoint after resuming" "$TRAIN_LOG"
running && squeue -h -j "$jid" -o %T | grep -q RUNNING || show_fail "job $jid ended before scancel" "$WORK/resume-slurm.log"
log "requeued job $jid resumed at epoch $first and wrote a new checkpoint: scancel $jid"
scancel "$jid"
wait "$SMK" || show_fail "the run did not complete after scancel" "$WORK/resume-slurm.log"
second=$($CHECK resumed "$TRAIN_LOG")
grep -m1 "resumed from" "$TRAIN_LOG"
[ "$second" -gt "$first" ] || show_fail "second resume at epoch $second, not after $first"
grep -m2 -e "Error in group" -e "Trying to restart job" "$WORK/resume-slurm.log" || true
sacct -D -X -P --name="$uuid" -o JobID,State,ExitCode,AllocTRES,Start,End | sed 's/|/   /g'
log "preemption test through SLURM: $(seconds "$t") s"

# ---------------------------------------------------------------------------- results
t=$(date +%s%N)
wait "${BG[0]}" || show_fail "local reference runs failed" "$WORK/local.log"
log "waited $(seconds "$t") s for the local reference runs"
log "tiny preset, SLURM vs local:"
$CHECK same-results "$WORK/slurm" "$WORK/local"
log "resumed at epoch $first (requeue) and $second (scancel) through SLURM vs uninterrupted local:"
$CHECK same-results "$D" "$WORK/resume-local"
log "PASS"
