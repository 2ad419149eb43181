#!/usr/bin/env bash
# IEG, CIFAR-10, uniform noise 20%, WRN-28-10, 10 clean images per class, 200 epochs (the later code
# release: cosine restarts every epoch).
# 499 = steps per epoch (49,900 training images at batch 100): the later release's first cosine period.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="96.2"
SOURCE="independent GPU rerun of the original code (Ascend ModelZoo port README), not the paper's table"
SEEDS_DEFAULT=1
recipe --method=ieg --network_name=wrn28-10 --batch_size=100 --learning_rate=0.1 --momentum=0.9 \
  --lr_schedule=cosine --cos_t_mul=1.5 --cos_m_mul=0.9 --eval_freq=500 --aug_type=autoaug \
  --use_ema=true --meta_stepsize=0.1 --meta_momentum=0.9 --ce_factor=5 --consistency_factor=20 \
  --grad_eps_init=0.9 --dataset=cifar10_uniform_0.2 --probe_dataset_hold_ratio=0.002 --max_epoch=200 \
  --decay_steps=499 -- "$@"
