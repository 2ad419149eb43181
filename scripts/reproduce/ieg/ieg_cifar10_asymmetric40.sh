#!/usr/bin/env bash
# IEG, CIFAR-10, asymmetric noise 40%, ResNet-29, 10 clean images per class (the original README's
# command).
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="not retrieved"
SOURCE="IEG paper's CIFAR-10 asymmetric table: copy the number from the PDF before using it as a target"
SEEDS_DEFAULT=1,2,3
recipe --method=ieg --network_name=resnet29 --batch_size=100 --learning_rate=0.1 --momentum=0.9 \
  --lr_schedule=cosine --decay_steps=500 --cos_t_mul=1.5 --cos_m_mul=0.9 --max_iteration=200000 \
  --eval_freq=500 --aug_type=autoaug --use_ema=true --meta_stepsize=0.1 --meta_momentum=0.9 \
  --ce_factor=5 --consistency_factor=20 --grad_eps_init=0.9 --dataset=cifar10_asymmetric_0.4 \
  --probe_dataset_hold_ratio=0.002 -- "$@"
