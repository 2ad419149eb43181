#!/usr/bin/env bash
# Accuracy benchmark on real MNIST: every method against the standard (supervised) baseline on the
# seed's protocol (pytorch-SIGUA: mnist_cnn, 30 epochs, batch 256, Adam 1e-3 constant, gradient
# norm clipped at 5, no EMA, no weight decay; SIGUA with num_gradual 5, bad_weight 0.001 and
# tau = the noise rate), at symmetric 20% / 50% and pairflip 45% noise.
#
#   scripts/benchmark_mnist_methods.sh                       # everything (hours on a CPU)
#   METHODS="supervised sigua" NOISES=sym50 EPOCHS=3 scripts/benchmark_mnist_methods.sh
#
# Each run writes <OUT>/<noise>/<method>/...; re-running resumes unfinished runs and skips finished
# ones. The markdown table (final accuracy, accuracy per epoch, epochs where the baseline is behind
# SIGUA) goes to <OUT>/table.md. Extra flags for one method: EXTRA_<method>="--flag=value ...".
# DRY_RUN=1 prints the commands without running them.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${DATA_DIR:-/work/shared/data}"
OUT="${OUT:-/tmp/mnist_methods}"
METHODS="${METHODS:-supervised sigua sln absgd prl}"  # add ieg l2r (probe 2%): about 8x the cost
NOISES="${NOISES:-sym20 sym50 pair45}"
EPOCHS="${EPOCHS:-30}"
SEED="${SEED:-1}"
PROBE_RATIO="${PROBE_RATIO:-0.02}"  # IEG and L2R need a clean probe set; the others train on all 60000

declare -A DATASETS=([sym20]=mnist_symmetric_0.2 [sym50]=mnist_symmetric_0.5 [pair45]=mnist_pairflip_0.45)
# Methods with their own preset for this protocol; the others get the protocol's flags.
declare -A PRESETS=([sigua]=sigua_mnist [prl]=prl_mnist [sln]=sln_mnist [absgd]=absgd_mnist)
declare -A NEEDS_PROBE=([ieg]=1 [l2r]=1)

protocol_flags() {  # <method>
  local probe=0
  [[ -n "${NEEDS_PROBE[$1]:-}" ]] && probe="${PROBE_RATIO}"
  # One evaluation per pass over the training examples left after the probe holdout.
  local steps
  steps="$(python -c "import math; print((60000 - math.floor(60000 * ${probe})) // 256)")"
  echo "--network_name=mnist_cnn --optimizer=adam --learning_rate=0.001 --lr_schedule=constant" \
       "--batch_size=256 --eval_freq=${steps} --use_ema=false --weight_decay=0 --grad_clip_norm=5" \
       "--probe_dataset_hold_ratio=${probe}"
}

run_one() {  # <noise> <method>
  local noise="$1" method="$2" flags extra_var
  if [[ -n "${PRESETS[$method]:-}" ]]; then
    flags="--preset=${PRESETS[$method]}_${noise}"
  else
    flags="$(protocol_flags "$method")"
  fi
  extra_var="EXTRA_${method}"
  local log_dir="${OUT}/${noise}/${method}"
  mkdir -p "$log_dir"
  echo "== ${noise} ${method}: ${flags} ${!extra_var:-}"
  local start=$SECONDS
  if [[ -n "${DRY_RUN:-}" ]]; then
    echo "   python -m ieg.main --method=$method --dataset=${DATASETS[$noise]} --max_epoch=$EPOCHS --seed=$SEED" \
         "--data_dir=$DATA_DIR --checkpoint_path=$log_dir --distribution_strategy=one_device $flags ${!extra_var:-}"
    return
  fi
  # shellcheck disable=SC2086  (flags are word lists)
  (cd "$REPO" && python -m ieg.main --method="$method" --dataset="${DATASETS[$noise]}" --max_epoch="$EPOCHS" \
      --seed="$SEED" --data_dir="$DATA_DIR" --checkpoint_path="$log_dir" --distribution_strategy=one_device \
      $flags ${!extra_var:-}) > "${log_dir}/stdout.log" 2>&1 \
    && echo "   done in $((SECONDS - start)) s" \
    || echo "   FAILED after $((SECONDS - start)) s: see ${log_dir}/stdout.log"
}

for noise in $NOISES; do
  [[ -n "${DATASETS[$noise]:-}" ]] || { echo "unknown noise setting ${noise}: use sym20, sym50 or pair45" >&2; exit 2; }
  for method in $METHODS; do
    run_one "$noise" "$method"
  done
done

[[ -n "${DRY_RUN:-}" ]] && exit 0
python "${REPO}/scripts/mnist_methods_table.py" --root="$OUT" --noises="${NOISES// /,}" \
    --methods="${METHODS// /,}" --epochs="$EPOCHS" | tee "${OUT}/table.md"
