#!/usr/bin/env bash
# SIGUA (pytorch-SIGUA variant), MNIST, symmetric noise 20%.
# pytorch-SIGUA also holds out 10% of the noisy training set as an (unused) validation set and runs
# the CNN with both dropout rates at 0.5; here all 60,000 images train and mnist_cnn keeps 0.25 / 0.5.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="98.86"
SOURCE="pytorch-SIGUA README (a reimplementation: mnist_cnn, 30 epochs, batch 256, Adam 1e-3, clip 5)"
SEEDS_DEFAULT=1,2,3
recipe --preset=sigua_mnist_sym20 -- "$@"
