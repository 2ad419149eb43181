#!/usr/bin/env bash
# SLN (the training network), CIFAR-100, symmetric noise 40%, WRN-28-2, SGD lr 0.001 constant, 300
# epochs; accuracy at the end of training.
# sigma 0.2: the paper's choice for this noise.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="50.24 ± 0.41"
SOURCE="SLN paper (ICLR 2021) table as tabulated by re-sln; 40% noise, WRN-28-2, mean ± std of 5 runs"
SEEDS_DEFAULT=1,2,3,4,5
recipe --preset=sln_cifar100_sym40 --correction=-1 --use_ema=false -- "$@"
