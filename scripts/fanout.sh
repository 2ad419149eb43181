#!/usr/bin/env bash
# Runs many trainings (datasets x methods x seeds, or a list of settings), one per GPU, queueing the
# rest until a GPU frees up; on a machine without GPUs, one at a time on the CPU.
#
#   scripts/fanout.sh --datasets=cifar10_uniform_0.4,cifar100_uniform_0.8 --methods=ieg,l2r,supervised \
#       --seeds=1,2,3 --out=/data/sweep -- --network_name=wrn28-10 --max_epoch=200
#   scripts/fanout.sh --settings=runs.txt --out=/data/sweep --gpus=0,1,2,3
#
# --settings=FILE    one run per line: the flags of `python -m ieg.main` ('#' starts a comment).
#                    Combined with the grid below when both are given.
# --datasets, --methods, --seeds, --presets   comma lists; the grid is their product.
# --out=DIR          runs in DIR/runs/<name>, one log per run in DIR/logs/<name>.log, the summary
#                    in DIR/summary.txt and the results table in DIR/results.md (default ./fanout).
# --gpus=LIST|auto|none   GPU ids to use (auto: CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists).
# --gpus_per_run=K   GPUs per run (MirroredStrategy over them; default 1).
# --runs_per_gpu=N   runs sharing one GPU (small models; default 1).
# --python=PATH      the interpreter (default: $PYTHON, else python3).
# --dry_run          print the commands only.
# Everything after `--` is added to every run.
#
# Every run gets its own --checkpoint_path (DIR/runs/<name>) unless its line sets one, so seeds of
# one setting never share a run directory. Running the same command again resumes unfinished runs
# and leaves finished ones as they are. Ctrl-C (or SIGTERM) stops the running trainings cleanly:
# each saves a checkpoint and the next invocation resumes it. Exit status: 0 when every run
# succeeded, 1 when any failed, 130 when interrupted, 2 for bad arguments.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="fanout"
SETTINGS=""
DATASETS=""
METHODS=""
SEEDS=""
PRESETS=""
GPUS="auto"
GPUS_PER_RUN=1
RUNS_PER_GPU=1
PYTHON_BIN="${PYTHON:-python3}"
DRY_RUN=0
COMMON=()
EXIT_INTERRUPTED=75  # ieg.main stopped by a signal after saving a checkpoint: rerunning resumes

die() { echo "fanout: $*" >&2; exit 2; }

while (($#)); do
  case "$1" in
    --settings=*) SETTINGS="${1#*=}" ;;
    --datasets=*) DATASETS="${1#*=}" ;;
    --methods=*) METHODS="${1#*=}" ;;
    --seeds=*) SEEDS="${1#*=}" ;;
    --presets=*) PRESETS="${1#*=}" ;;
    --out=*) OUT="${1#*=}" ;;
    --gpus=*) GPUS="${1#*=}" ;;
    --gpus_per_run=*) GPUS_PER_RUN="${1#*=}" ;;
    --runs_per_gpu=*) RUNS_PER_GPU="${1#*=}" ;;
    --python=*) PYTHON_BIN="${1#*=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --) shift; COMMON=("$@"); break ;;
    -h|--help) sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help; flags for the runs go after --)" ;;
  esac
  shift
done
[[ "$GPUS_PER_RUN" =~ ^[1-9][0-9]*$ ]] || die "--gpus_per_run=$GPUS_PER_RUN must be a positive integer"
[[ "$RUNS_PER_GPU" =~ ^[1-9][0-9]*$ ]] || die "--runs_per_gpu=$RUNS_PER_GPU must be a positive integer"
[[ -z "$SETTINGS" || -r "$SETTINGS" ]] || die "--settings=$SETTINGS is not a readable file"

# ----- the runs: one line of flags each --------------------------------------------------------
RUNS=()
if [[ -n "$SETTINGS" ]]; then
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%%#*}"
    read -r -a words <<< "$line"  # flags are split on white space: values cannot contain spaces
    ((${#words[@]})) && RUNS+=("${words[*]}")
  done < "$SETTINGS"
fi
if [[ -n "$DATASETS$METHODS$SEEDS$PRESETS" ]]; then
  IFS=, read -r -a dataset_list <<< "${DATASETS:-}"
  IFS=, read -r -a method_list <<< "${METHODS:-}"
  IFS=, read -r -a seed_list <<< "${SEEDS:-}"
  IFS=, read -r -a preset_list <<< "${PRESETS:-}"
  ((${#dataset_list[@]})) || dataset_list=("")
  ((${#method_list[@]})) || method_list=("")
  ((${#seed_list[@]})) || seed_list=("")
  ((${#preset_list[@]})) || preset_list=("")
  for preset in "${preset_list[@]}"; do
    for dataset in "${dataset_list[@]}"; do
      for method in "${method_list[@]}"; do
        for seed in "${seed_list[@]}"; do
          line=""
          [[ -n "$preset" ]] && line+=" --preset=$preset"
          [[ -n "$dataset" ]] && line+=" --dataset=$dataset"
          [[ -n "$method" ]] && line+=" --method=$method"
          [[ -n "$seed" ]] && line+=" --seed=$seed"
          RUNS+=("${line# }")
        done
      done
    done
  done
fi
((${#RUNS[@]})) || die "no runs: give --settings=FILE and/or --datasets/--methods/--seeds/--presets"

# ----- the slots: a GPU group each, or the CPU ------------------------------------------------------
if [[ "$GPUS" == "auto" ]]; then
  if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
    GPUS="$CUDA_VISIBLE_DEVICES"
  elif [[ -z "${CUDA_VISIBLE_DEVICES+set}" ]] && command -v nvidia-smi > /dev/null 2>&1; then
    GPUS="$(nvidia-smi --query-gpu=index --format=csv,noheader 2> /dev/null | tr -d ' ' | paste -sd, -)"
  else
    GPUS=""
  fi
fi
[[ "$GPUS" == "none" ]] && GPUS=""
SLOTS=()
if [[ -z "$GPUS" ]]; then
  SLOTS=("cpu")  # TensorFlow would use every core for one run: running several at once only slows all
else
  IFS=, read -r -a gpu_list <<< "$GPUS"
  ((${#gpu_list[@]} >= GPUS_PER_RUN)) || die "--gpus_per_run=$GPUS_PER_RUN but only ${#gpu_list[@]} GPUs ($GPUS)"
  for ((i = 0; i + GPUS_PER_RUN <= ${#gpu_list[@]}; i += GPUS_PER_RUN)); do
    group="$(IFS=,; echo "${gpu_list[*]:i:GPUS_PER_RUN}")"
    for ((r = 0; r < RUNS_PER_GPU; r++)); do SLOTS+=("$group"); done
  done
fi

# ----- names, commands ------------------------------------------------------------------------------
run_name() {  # <index> <flags>: 007_cifar10_uniform_0.4_ieg_3 from the values of the flags
  local slug
  slug="$(echo "$2" | tr ' ' '\n' | sed -n 's/^--[^=]*=//p' | grep -v '/' | paste -sd_ - | tr -c 'A-Za-z0-9._\n-' '_')"
  printf '%03d_%s' "$1" "${slug:0:80}"
}

mkdir -p "$OUT/logs" "$OUT/runs" || die "cannot create $OUT"
OUT="$(cd "$OUT" && pwd)"
MANIFEST="$OUT/manifest.tsv"
: > "$MANIFEST"
NAMES=() ARGS_OF=() CKPT_OF=()
for i in "${!RUNS[@]}"; do
  name="$(run_name "$((i + 1))" "${RUNS[$i]}")"
  NAMES+=("$name")
  read -r -a args <<< "${RUNS[$i]}"
  args+=("${COMMON[@]}")
  checkpoint="$OUT/runs/$name"
  for a in "${args[@]}"; do [[ "$a" == --checkpoint_path=* ]] && checkpoint="${a#*=}"; done
  [[ " ${args[*]} " == *" --checkpoint_path="* ]] || args+=("--checkpoint_path=$checkpoint")
  ARGS_OF+=("${args[*]}")
  CKPT_OF+=("$checkpoint")
done

echo "fanout: ${#RUNS[@]} runs on ${#SLOTS[@]} slot(s): ${SLOTS[*]}; logs in $OUT/logs"
if ((DRY_RUN)); then
  for i in "${!NAMES[@]}"; do echo "  ${NAMES[$i]}: $PYTHON_BIN -m ieg.main ${ARGS_OF[$i]}"; done
  exit 0
fi

# ----- the queue ------------------------------------------------------------------------------------
declare -A PID_OF_SLOT=() RUN_OF_PID=() STARTED=()
STATUS=() SECONDS_OF=()
INTERRUPTED=0
on_signal() {
  INTERRUPTED=1
  echo "fanout: stopping: the running trainings save a checkpoint and stop (rerun the same command to resume)" >&2
  for pid in "${PID_OF_SLOT[@]}"; do [[ -n "$pid" ]] && kill -TERM "$pid" 2> /dev/null; done
}
trap on_signal INT TERM

launch() {  # <run index> <slot index>
  local i="$1" s="$2" device="${SLOTS[$2]}" log="$OUT/logs/${NAMES[$1]}.log"
  [[ "$device" == "cpu" ]] && device=""
  read -r -a args <<< "${ARGS_OF[$i]}"
  {
    echo "# $(date '+%F %T') CUDA_VISIBLE_DEVICES=$device $PYTHON_BIN -m ieg.main ${args[*]}"
  } >> "$log"
  (cd "$REPO" && CUDA_VISIBLE_DEVICES="$device" exec "$PYTHON_BIN" -m ieg.main "${args[@]}") >> "$log" 2>&1 &
  PID_OF_SLOT[$s]=$!
  RUN_OF_PID[$!]=$i
  STARTED[$i]=$(date +%s)
  echo "fanout: start ${NAMES[$i]} on ${SLOTS[$s]}"
}

reap() {  # frees the slots whose run has ended; records their status
  local s pid i code
  for s in "${!PID_OF_SLOT[@]}"; do
    pid="${PID_OF_SLOT[$s]}"
    [[ -z "$pid" ]] && continue
    kill -0 "$pid" 2> /dev/null && continue
    wait "$pid"
    code=$?
    i="${RUN_OF_PID[$pid]}"
    STATUS[$i]=$code
    SECONDS_OF[$i]=$(($(date +%s) - STARTED[$i]))
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${NAMES[$i]}" "$code" "${SECONDS_OF[$i]}" "${SLOTS[$s]}" "${CKPT_OF[$i]}" \
      "${ARGS_OF[$i]}" >> "$MANIFEST"
    if ((code == 0)); then echo "fanout: done  ${NAMES[$i]} (${SECONDS_OF[$i]} s)"
    elif ((code == EXIT_INTERRUPTED)); then echo "fanout: interrupted ${NAMES[$i]} (checkpoint saved)"
    else echo "fanout: FAILED ${NAMES[$i]} (exit $code, ${SECONDS_OF[$i]} s): $OUT/logs/${NAMES[$i]}.log"; fi
    PID_OF_SLOT[$s]=""
  done
}

free_slot() {  # prints a free slot index, or nothing
  local s
  for s in "${!SLOTS[@]}"; do
    [[ -z "${PID_OF_SLOT[$s]:-}" ]] && { echo "$s"; return; }
  done
}

busy() { local p; for p in "${PID_OF_SLOT[@]}"; do [[ -n "$p" ]] && return 0; done; return 1; }

next=0
while ((next < ${#NAMES[@]})) && ((!INTERRUPTED)); do
  reap
  slot="$(free_slot)"
  if [[ -n "$slot" ]]; then
    launch "$next" "$slot"
    next=$((next + 1))
  else
    sleep 1
  fi
done
while busy; do reap; busy && sleep 1; done
trap - INT TERM

# ----- summary and results ---------------------------------------------------------------------------
{
  failed=0
  echo "fanout summary: ${#NAMES[@]} runs in $OUT"
  for i in "${!NAMES[@]}"; do
    if [[ -z "${STATUS[$i]:-}" ]]; then state="not started"
    elif ((STATUS[$i] == 0)); then state="ok"
    elif ((STATUS[$i] == EXIT_INTERRUPTED)); then state="interrupted"
    else state="FAILED (exit ${STATUS[$i]})"; failed=$((failed + 1)); fi
    printf '  %-60s %-18s %6s s\n' "${NAMES[$i]}" "$state" "${SECONDS_OF[$i]:--}"
  done
  if ((failed)); then
    echo "$failed run(s) failed:"
    for i in "${!NAMES[@]}"; do
      [[ -n "${STATUS[$i]:-}" ]] && ((STATUS[$i] != 0 && STATUS[$i] != EXIT_INTERRUPTED)) || continue
      log="$OUT/logs/${NAMES[$i]}.log"
      reason="$(grep -m1 '^error: ' "$log" || grep -v '^\s*$' "$log" | tail -n 1)"
      echo "  ${NAMES[$i]}: ${reason:0:300}"
      echo "    log: $log"
    done
  fi
} | tee "$OUT/summary.txt"
failed="$(grep -c 'FAILED (exit' "$OUT/summary.txt")"

# The table needs only the standard library: any Python 3 will do.
TABLE_PYTHON="$(command -v python3 || command -v python || echo "$PYTHON_BIN")"
(cd "$REPO" && "$TABLE_PYTHON" scripts/results_table.py --manifest="$MANIFEST" --output="$OUT/results.md") \
  || echo "fanout: could not build the results table (see above)" >&2

((INTERRUPTED)) && exit 130
((failed)) && exit 1
exit 0
