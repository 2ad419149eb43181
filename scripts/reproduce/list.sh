#!/usr/bin/env bash
# Lists every recipe (one per table row) with the number its source reports.
#   scripts/reproduce/list.sh            # all rows
#   scripts/reproduce/list.sh sln        # the rows of one paper
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 2
printf '%-48s %-22s %s\n' "recipe" "reported" "source"
for script in ${1:-*}/*.sh; do
  paper="$(sed -n 's/^PAPER="\(.*\)"$/\1/p' "$script")"
  source="$(sed -n 's/^SOURCE="\(.*\)"$/\1/p' "$script")"
  printf '%-48s %-22s %s\n' "$script" "$paper" "$source"
done
