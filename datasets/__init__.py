"""The data of a run: where the examples come from, how their labels are corrupted, and tf.data.

From the bottom: `text` (the tokenizer of text sources), `sources/` (one loader per dataset
family, registered by name), `noise/` (the label-noise models), `augment/` (the strong view) and
`pipelines/` (the batches of a run). At the top, `spec` parses `--dataset`, `probe` holds out the
clean probe set, and `noisy` / `noisy_files` assemble the noisy dataset from a source and a noise
model. Nothing here imports `ieg`.
"""
