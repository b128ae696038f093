#!/usr/bin/env bash
# The prepared GPU check: everything that needs a GPU to be measured or tested, in one script
# that fits in about 8 minutes on a machine with one GPU and many cores (README, "Benchmarks").
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--mirror DIR]   # on a GPU machine
#   bash benchmarks/gpu_check.sh --cpu-smoke                   # reduced form on CPU (CI)
#   bash benchmarks/gpu_check.sh --keep-going ...               # a failing step does not stop the rest
#   bash benchmarks/gpu_check.sh --steps bench,sharing,cost --step-timeout 180 ...
#                                       # only these steps (machine always), each killed after 180 s
#
# Steps (each one's output in DIR/<step>.log, the key lines in DIR/summary.txt):
#   1. machine     GPU, driver, CPU model, torch and CUDA versions
#   2. cuda-tests  pytest -m cuda: determinism and resume equality on CUDA, uniformity tiles,
#                  fused Adam, full-ranking memory at AmazonBook size
#   3. bench       `make bench` on the GPU (engine vs released-style loop on Gowalla)
#   4. sharing     Gowalla MF + DirectAU / BPR with k = 1, 2, 4, 8 runs sharing the GPU: seconds
#                  per epoch and runs per hour for each k (benchmarks/bench_sharing.py); the
#                  k = 1 seconds go to DIR/epoch_seconds.csv
#   5. cost        the paper preset's runs and device-hours from those seconds
#   6. tiny        the tiny preset's runs end to end on the GPU, 4 runs sharing it at a time;
#                  every run's recorded device and GPU slot
#   7. bench-amazonbook  the AmazonBook-sized engine workload
# The order puts what the cost needs first, so that a lease cut short still yields it.
# --cpu-smoke runs every step's command at toy size on the CPU (the CUDA tests skip, the bench
# and the sharing batch use a small synthetic dataset and a simulated GPU, the tiny preset is a
# dry run), so that the script does not rot; its numbers mean nothing.
# Gowalla comes from --mirror (default ../shared/data, as make bench); python is the venv's
# where there is one (no install is attempted: a GPU machine brings its CUDA build of torch).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

MODE=gpu
KEEP_GOING=0
STEPS=all
STEP_TIMEOUT=0
FAILED=()
OUT=benchmarks/out/gpu_check
MIRROR=${MIRROR:-../shared/data}
while [ $# -gt 0 ]; do
  case $1 in
    --cpu-smoke) MODE=smoke ;;
    --keep-going) KEEP_GOING=1 ;;
    --steps) STEPS=$2; shift ;;
    --step-timeout) STEP_TIMEOUT=$2; shift ;;
    --out) OUT=$2; shift ;;
    --mirror) MIRROR=$2; shift ;;
    *) echo "usage: $0 [--cpu-smoke] [--keep-going] [--steps A,B,..] [--step-timeout S] [--out DIR] [--mirror DIR]" >&2; exit 2 ;;
  esac
  shift
done
[ "$MODE" = smoke ] && [ "$OUT" = benchmarks/out/gpu_check ] && OUT=benchmarks/out/gpu_check_smoke
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MIRROR=$(cd "$MIRROR" 2>/dev/null && pwd || echo "$MIRROR")
if [ -x .venv/bin/python ]; then export PATH="$REPO/.venv/bin:$PATH"; fi
PY=python
command -v "$PY" >/dev/null || PY=python3
CORES=$(nproc)
ALL_STEPS=machine,cuda-tests,bench,sharing,cost,tiny,bench-amazonbook
[ "$STEPS" = all ] && STEPS=$ALL_STEPS
STEPS=machine,$STEPS
for s in ${STEPS//,/ }; do
  case ",$ALL_STEPS," in *",$s,"*) ;; *) echo "gpu_check: unknown step '$s' in --steps (steps: $ALL_STEPS)" >&2; exit 2 ;; esac
done
[[ $STEP_TIMEOUT =~ ^[0-9]+$ ]] || { echo "gpu_check: --step-timeout wants whole seconds, got '$STEP_TIMEOUT'" >&2; exit 2; }
export OUT MODE CORES PY
rm -f "$OUT"/*.log
: >"$OUT/summary.txt"
T_ALL=$(date +%s)

# host memory left and GPU memory in use after each step: a lease that wedges shows where
memory() {
  local host gpu=""
  host=$(awk '/MemAvailable/ {a=$2} /MemTotal/ {t=$2} END {printf "%d of %d MiB available", a/1024, t/1024}' /proc/meminfo)
  command -v nvidia-smi >/dev/null && gpu="; GPU $(nvidia-smi --query-gpu=memory.used --format=csv,noheader | paste -sd, -) used"
  echo "   memory: host $host$gpu"
}

# step NAME CMD...: run (a shell function too), tee to NAME.log, record seconds and memory;
# a failing or timed-out step fails the script unless --keep-going
step() {
  local name=$1 t0 rc
  shift
  case ",$STEPS," in *",$name,"*) ;; *) echo "== $name: skipped (--steps)" | tee -a "$OUT/summary.txt"; return 0 ;; esac
  echo "== $name: $*"
  t0=$(date +%s)
  local run=("$@")
  declare -F "$1" >/dev/null && run=(bash -c "set -euo pipefail; $(declare -f "$1"); $*")
  [ "$STEP_TIMEOUT" -gt 0 ] && run=(timeout -k 10 "$STEP_TIMEOUT" "${run[@]}")
  set +e
  "${run[@]}" 2>&1 | tee "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" = 124 ] && [ "$STEP_TIMEOUT" -gt 0 ] && echo "gpu_check: step $name ran past --step-timeout $STEP_TIMEOUT s" | tee -a "$OUT/summary.txt" >&2
  echo "== $name: $(($(date +%s) - t0)) s (exit $rc)" | tee -a "$OUT/summary.txt"
  memory | tee -a "$OUT/summary.txt"
  [ "$rc" = 0 ] && return 0
  echo "gpu_check: step $name failed (log: $OUT/$name.log)" | tee -a "$OUT/summary.txt" >&2
  # one lease is often all there is: with --keep-going, the later steps still get measured
  [ "$KEEP_GOING" = 1 ] || exit "$rc"
  FAILED+=("$name")
}
keep() { grep -shE "$1" "$OUT/$2.log" >>"$OUT/summary.txt" || true; }

machine() {
  date -u +%Y-%m-%dT%H:%M:%SZ
  grep -m1 'model name' /proc/cpuinfo || true
  echo "cores: $CORES"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count(), *(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))"
}
step machine machine
keep "model name|torch|NVIDIA|cores" machine
if [ "$MODE" = gpu ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: torch sees no GPU (use --cpu-smoke on a CPU machine)" >&2
  exit 2
fi

# 2. CUDA-only tests (they skip without a GPU; on a GPU a skip is a failure)
step cuda-tests "$PY" -m pytest -q -m cuda -rs -s -p no:cacheprovider tests/test_cuda.py
keep "passed|failed|skipped|largest relative|peak .* MiB" cuda-tests
if [ "$MODE" = gpu ] && grep -sq "skipped" "$OUT/cuda-tests.log"; then
  echo "gpu_check: CUDA tests were skipped on a GPU machine" | tee -a "$OUT/summary.txt" >&2
  [ "$KEEP_GOING" = 1 ] || exit 1
  FAILED+=(cuda-tests-skipped)
fi

# 3. make bench on the GPU (the same module and flags as `make bench BENCH_ARGS=...`)
if [ "$MODE" = gpu ]; then
  step bench "$PY" -m prism_repro.bench --device cuda --epochs 3 --mirror "$MIRROR"
else
  step bench "$PY" -m prism_repro.bench --device cpu --synthetic --epochs 1 --max-batches 1
fi
keep "device=|workload|speedup|peak" bench

# 4. Gowalla runs sharing the GPU, k = 1, 2, 4, 8
if [ "$MODE" = gpu ]; then
  step sharing "$PY" benchmarks/bench_sharing.py --device cuda --k 1 2 4 8 --epochs 3 \
    --losses directau bpr --mirror "$MIRROR" --seconds-out "$OUT/epoch_seconds.csv"
else
  step sharing env PRISM_FAKE_GPUS=1 "$PY" benchmarks/bench_sharing.py --device auto --synthetic \
    --synthetic-size 300 400 --k 1 2 --epochs 1 --max-batches 1 --losses bpr \
    --seconds-out "$OUT/epoch_seconds.csv"
fi
keep "gpu=|dataset=|workload" sharing

# 5. what the paper grid costs at those speeds (Gowalla MF cells; the rest is not measured)
if [ "$MODE" = gpu ]; then
  step cost "$PY" -m prism_repro cost --preset paper --seconds "$OUT/epoch_seconds.csv" --devices 1
else
  step cost "$PY" -m prism_repro cost --preset gowalla-cpu --devices 1
fi
keep "^total" cost

# 6. the tiny preset on the GPU, in a fresh copy of the workflow
tiny() {
  local dir=$OUT/tiny-workflow
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r Snakefile config.yaml workflow profiles envs "$dir/"
  local args=(--cores "$CORES" --config preset=tiny runs_per_gpu=4 "train={device: cuda}")
  if [ "$MODE" = smoke ]; then
    (cd "$dir" && snakemake runs -n --quiet rules "${args[@]}")
    return
  fi
  local gpus
  gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
  (cd "$dir" && snakemake runs --resources gpu=$((gpus * 4)) "${args[@]}")
  # every run's device and slot, as recorded in its metrics
  "$PY" - "$dir/results/tiny/runs" <<'EOF'
import sys
from pathlib import Path
import pandas as pd
runs = pd.concat([pd.read_parquet(p) for p in Path(sys.argv[1]).glob("*/*/metrics.parquet")])
print(runs.groupby(["device", "gpu_device", "gpu_slot"]).size().to_string())
bad = runs[~runs["device"].astype(str).str.startswith("cuda")]
print(f"tiny: {len(runs)} runs, {len(bad)} not on a GPU")
sys.exit(1 if len(bad) else 0)
EOF
}
step tiny tiny
keep "tiny:|train  " tiny

# 7. the AmazonBook-sized engine workload on the GPU (last: the Gowalla steps feed the cost)
if [ "$MODE" = gpu ]; then
  step bench-amazonbook "$PY" -m prism_repro.bench --device cuda --amazonbook-sized --epochs 2
  keep "workload|speedup|peak" bench-amazonbook
fi

echo "== all steps: $(($(date +%s) - T_ALL)) s; failed: ${FAILED[*]:-none}" | tee -a "$OUT/summary.txt"
echo "---- $OUT/summary.txt"
cat "$OUT/summary.txt"
[ ${#FAILED[@]} = 0 ]
