#!/usr/bin/env bash
# co-PRL-L, CIFAR-10, symmetric 20% noise, 9-layer CNN, Adam 1e-3 with the co-teaching linear plan,
# 200 epochs.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="> 82.18"
SOURCE="PRL paper (ICML 2021) table not retrieved; co-teaching on the identical pipeline reports 82.18 (bhanML/Co-teaching README) and the paper reports co-PRL above co-teaching"
SEEDS_DEFAULT=1,2,3
recipe --preset=prl_cifar10_sym20 -- "$@"
