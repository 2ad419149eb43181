#!/usr/bin/env bash
# co-PRL-G (per-example gradient norms), CIFAR-10, symmetric 50% noise, GroupNorm ResNet-32 (the
# README's command for PRL-G).
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="> 74.49"
SOURCE="PRL paper (ICML 2021) table not retrieved; co-teaching on the identical pipeline reports 74.49 (bhanML/Co-teaching README) and the paper reports co-PRL above co-teaching"
SEEDS_DEFAULT=1,2,3
recipe --preset=prl_g_cifar10_sym50 -- "$@"
