"""tf.data input: the batches a run trains and evaluates on, one module per data kind.

`images` (in-memory image arrays, with the weak and strong views), `files` (streamed image files,
decoded when a batch needs them) and `text` (token ids) build the datasets; `run_inputs` picks
the module for the data kind, so the experiment never asks which kind it trains on.
"""
from datasets.pipelines.run_inputs import eval_dataset, train_dataset

__all__ = ["eval_dataset", "train_dataset"]
