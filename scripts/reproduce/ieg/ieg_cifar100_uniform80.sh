#!/usr/bin/env bash
# IEG, CIFAR-100, uniform noise 80%, WRN-28-10, 10 clean images per class (the original code's
# defaults).
# 200000 steps are about 400 epochs at batch 100; the original README notes that 200 epochs
# (--max_epoch=200) reach the reported accuracy.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="75.5 ± 0.2"
SOURCE="IEG paper arXiv 1910.00701v5, abstract and Figure 1; test accuracy %"
SEEDS_DEFAULT=1,2,3
recipe --method=ieg --network_name=wrn28-10 --batch_size=100 --learning_rate=0.1 --momentum=0.9 \
  --lr_schedule=cosine --decay_steps=500 --cos_t_mul=1.5 --cos_m_mul=0.9 --max_iteration=200000 \
  --eval_freq=500 --aug_type=autoaug --use_ema=true --meta_stepsize=0.1 --meta_momentum=0.9 \
  --ce_factor=5 --consistency_factor=20 --grad_eps_init=0.9 --dataset=cifar100_uniform_0.8 \
  --probe_dataset_hold_ratio=0.02 -- "$@"
