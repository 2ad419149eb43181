#!/usr/bin/env bash
# Cross-entropy baseline of the same script, CIFAR-100, symmetric noise 40% (SGD lr 0.01, weight decay
# 1e-2, lr x0.1 at epochs 40 and 80, 120 epochs, clip 5).
# The original uses a ResNet-34 with a 3x3 stem; the framework's closest network is ResNet-32.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="56.29"
SOURCE="authors' comment in their (later deleted) script noisy_cifar10_cifar100.sh: working notes, not a paper table; best test accuracy over epochs"
SEEDS_DEFAULT=1
recipe --method=supervised --dataset=cifar100_symmetric_0.4 --network_name=resnet32 --batch_size=128 \
  --optimizer=momentum --learning_rate=0.01 --weight_decay=0.01 --lr_schedule=custom_step \
  --decay_steps=15600,31200 --decay_rate=0.1 --max_epoch=120 --eval_freq=390 --grad_clip_norm=5 \
  --use_ema=false --probe_dataset_hold_ratio=0 -- "$@"
