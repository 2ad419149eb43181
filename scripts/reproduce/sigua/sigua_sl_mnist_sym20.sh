#!/usr/bin/env bash
# SIGUA_SL, MNIST, symmetric noise 20%: the official code's protocol (9-layer CNN, Adam 1e-3 with the
# linear plan, batch 128, 200 epochs).
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="98.91"
SOURCE="SIGUA paper (ICML 2020) as quoted by the pytorch-SIGUA README; official SIGUA_SL protocol, 10 seeds"
SEEDS_DEFAULT=1,2,3,4,5,6,7,8,9,10
recipe --preset=sigua_sl_mnist_sym20 -- "$@"
