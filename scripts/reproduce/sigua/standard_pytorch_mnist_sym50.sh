#!/usr/bin/env bash
# Standard training (cross-entropy) on the pytorch-SIGUA protocol, MNIST, symmetric noise 50%.
# pytorch-SIGUA also holds out 10% of the noisy training set as an (unused) validation set and runs
# the CNN with both dropout rates at 0.5; here all 60,000 images train and mnist_cnn keeps 0.25 / 0.5.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="94.3"
SOURCE="pytorch-SIGUA README (a reimplementation: mnist_cnn, 30 epochs, batch 256, Adam 1e-3, clip 5)"
SEEDS_DEFAULT=1,2,3
recipe --method=supervised --dataset=mnist_symmetric_0.5 --network_name=mnist_cnn --optimizer=adam \
  --learning_rate=0.001 --lr_schedule=constant --batch_size=256 --max_epoch=30 --eval_freq=234 \
  --grad_clip_norm=5 --use_ema=false --weight_decay=0 --probe_dataset_hold_ratio=0 -- "$@"
