#!/usr/bin/env bash
# Cross-entropy baseline, CIFAR-10, symmetric noise 40%, WRN-28-2, SGD lr 0.001 constant, 300 epochs;
# accuracy at the end of training.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="53.16 ± 1.64"
SOURCE="SLN paper (ICLR 2021) table as tabulated by re-sln; 40% noise, WRN-28-2, mean ± std of 5 runs"
SEEDS_DEFAULT=1,2,3,4,5
recipe --method=supervised --dataset=cifar10_symmetric_0.4 --use_ema=false --network_name=wrn28-2 \
  --optimizer=momentum --momentum=0.9 --learning_rate=0.001 --lr_schedule=constant --batch_size=128 \
  --max_epoch=300 --eval_freq=390 --weight_decay=5e-4 --probe_dataset_hold_ratio=0 -- "$@"
