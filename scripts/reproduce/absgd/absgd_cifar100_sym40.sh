#!/usr/bin/env bash
# ABSGD (ABSCE alpha 2, beta 0 = scaled ABCE; tau_c 1), CIFAR-100, symmetric noise 40%.
# The original uses a ResNet-34 with a 3x3 stem; the framework's closest network is ResNet-32.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="67.59"
SOURCE="authors' comment in their (later deleted) script noisy_cifar10_cifar100.sh: working notes, not a paper table; best test accuracy over epochs"
SEEDS_DEFAULT=1
recipe --preset=absgd_cifar100_sym40 -- "$@"
