# Shared by the recipes in this folder (source it; do not run it). A recipe is one row of a paper's
# table: the exact flags, the number the paper (or the named source) reports, and the seeds it
# averages over. It runs the seeds through scripts/fanout.sh (one per GPU; one at a time on a CPU)
# and ends with the table of what this framework got, next to the reported number.
#
# Environment:  SEEDS=1,2,3   seeds to run (default: as many as the source averages)
#               OUT=DIR       where the runs go (default ./reproduce_runs); each row in DIR/<row>
#               GPUS=0,1      GPUs to use (default: all); DATA_DIR=PATH adds --data_dir=PATH
#               PYTHON=PATH   the interpreter; DRY_RUN=1 prints the commands only
# Extra flags after the recipe's name are added last, so they override the recipe's:
#   scripts/reproduce/sln/sln_mo_lc_cifar10_sym40.sh --max_epoch=1     # a smoke test of the row
set -u -o pipefail
RECIPES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$RECIPES_DIR/../.." && pwd)"

# recipe <flags of the row...> [-- <the user's extra flags>]; needs PAPER, SOURCE and SEEDS_DEFAULT.
recipe() {
  local row out status
  row="$(basename "${BASH_SOURCE[1]}" .sh)"
  out="${OUT:-$PWD/reproduce_runs}/$row"
  local flags=() extra=() seen_separator=0
  for arg in "$@"; do
    if [[ "$arg" == "--" && $seen_separator == 0 ]]; then seen_separator=1; continue; fi
    if ((seen_separator)); then extra+=("$arg"); else flags+=("$arg"); fi
  done
  [[ -n "${DATA_DIR:-}" ]] && flags+=("--data_dir=$DATA_DIR")
  echo "recipe $row: the source reports $PAPER ($SOURCE); seeds ${SEEDS:-$SEEDS_DEFAULT}"
  local dry=()
  [[ "${DRY_RUN:-0}" == 1 ]] && dry=(--dry_run)
  "$REPO_DIR/scripts/fanout.sh" --seeds="${SEEDS:-$SEEDS_DEFAULT}" --out="$out" ${GPUS:+--gpus=$GPUS} "${dry[@]}" \
    -- "${flags[@]}" "${extra[@]}"
  status=$?
  echo "recipe $row: the source reports $PAPER ($SOURCE); this framework: $out/results.md (final and best top-1)"
  return $status
}
