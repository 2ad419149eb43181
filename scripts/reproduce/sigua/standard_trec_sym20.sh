#!/usr/bin/env bash
# Standard training (cross-entropy), TREC, symmetric noise 20%.
# Needs the TREC files: DATA_DIR=<folder with trec/>. The reimplementation's GloVe embeddings are
# never loaded (a bug in it), so random embeddings, as here, are what its numbers used.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="80.36"
SOURCE="pytorch-SIGUA README (TextCNN, 30 epochs, batch 256; reimplementation only)"
SEEDS_DEFAULT=1,2,3
recipe --method=supervised --dataset=trec_symmetric_0.2 --network_name=textcnn --optimizer=adam \
  --learning_rate=0.001 --lr_schedule=constant --batch_size=256 --max_epoch=30 --eval_freq=21 \
  --grad_clip_norm=5 --use_ema=false --weight_decay=0 --probe_dataset_hold_ratio=0 -- "$@"
