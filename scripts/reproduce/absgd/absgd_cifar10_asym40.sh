#!/usr/bin/env bash
# ABSGD (ABSCE loss), CIFAR-10, asymmetric noise 40%, the SCE 8-layer CNN protocol of the authors'
# script.
# The original's 8-layer SCE CNN is approximated by the 9-layer CNN (cnn9).
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="82.61"
SOURCE="authors' comment in their (later deleted) script noisy_cifar10_cifar100.sh: working notes, not a paper table; best test accuracy over epochs"
SEEDS_DEFAULT=1
recipe --preset=absgd_cifar10_asym40 -- "$@"
