#!/usr/bin/env bash
# SIGUA (pytorch-SIGUA variant), TREC, symmetric noise 50%.
# Needs the TREC files: DATA_DIR=<folder with trec/>. The reimplementation's GloVe embeddings are
# never loaded (a bug in it), so random embeddings, as here, are what its numbers used.
# Extra flags are added last (e.g. --data_dir=..., or --max_epoch=1 for a smoke test); see ../_recipe.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../_recipe.sh"
PAPER="80.79"
SOURCE="pytorch-SIGUA README (TextCNN, 30 epochs, batch 256; reimplementation only)"
SEEDS_DEFAULT=1,2,3
recipe --method=sigua --sigua_variant=pytorch --dataset=trec_symmetric_0.5 --forget_rate=0.5 \
  --num_gradual=5 --bad_weight=0.001 --sigua_rate=0.5 --network_name=textcnn --optimizer=adam \
  --learning_rate=0.001 --lr_schedule=constant --batch_size=256 --max_epoch=30 --eval_freq=21 \
  --grad_clip_norm=5 --use_ema=false --weight_decay=0 --probe_dataset_hold_ratio=0 -- "$@"
