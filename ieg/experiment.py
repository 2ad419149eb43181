"""One run, wired from a `RunConfig`: data -> network -> method -> fit with callbacks, or evaluation.

The run directory (`RunConfig.run_dir`) receives the resolved flags, the noisy labels, checkpoints,
TensorBoard events, results.json and log.jsonl. Running the same command again resumes training from
the newest readable checkpoint.
"""
import dataclasses
import logging
import math
import os
import sys

import keras
import numpy as np
import tensorflow as tf

import methods
import networks
from datasets import noisy as noisy_lib
from datasets import pipeline
from datasets import spec as spec_lib
from ieg import callbacks as callbacks_lib
from ieg import checkpoints
from ieg import optimizers
from ieg import run_files
from ieg import schedules
from ieg import strategy as strategy_lib
from ieg.config import RunConfig
from ieg.errors import UserError
from methods.base import TrainingContext


@dataclasses.dataclass
class Run:
  """The built pieces of a run, exposed for tests and tools."""
  config: RunConfig
  data: noisy_lib.NoisyDataset
  strategy: tf.distribute.Strategy
  model: methods.base.Method
  store: checkpoints.CheckpointStore
  global_batch: int
  steps_per_epoch: int
  max_iteration: int


def set_determinism(config: RunConfig) -> None:
  keras.utils.set_random_seed(config.seed)  # network initialisation and Keras' own draws follow --seed
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()


def load_data(config: RunConfig) -> noisy_lib.NoisyDataset:
  spec = spec_lib.parse_dataset_spec(config.dataset)
  return noisy_lib.build_noisy_dataset(spec, data_dir=config.data_dir, probe_ratio=config.probe_dataset_hold_ratio,
                                       seed=config.seed, dataset_file=config.dataset_file)


def method_config(config: RunConfig, method_cls):
  """The method's hyper-parameters: its Config defaults overridden by `config.method_options`."""
  names = {f.name for f in dataclasses.fields(method_cls.Config)}
  return method_cls.Config(**{k: v for k, v in config.method_options.items() if k in names})


def build(config: RunConfig, data: noisy_lib.NoisyDataset | None = None) -> Run:
  """Builds data, strategy, network, method and optimizer; restores nothing yet."""
  config.validate()
  set_determinism(config)
  data = data if data is not None else load_data(config)
  strategy = strategy_lib.make_strategy(config.distribution_strategy)
  global_batch = config.batch_size * strategy.num_replicas_in_sync
  steps_per_epoch = max(len(data.x_train) // global_batch, 1)
  max_iteration = config.max_epoch * steps_per_epoch if config.max_epoch else config.max_iteration
  method_cls = methods.method_class(config.method)
  if method_cls.needs_probe and len(data.x_probe) == 0:
    raise UserError(f"--method={config.method} needs a clean probe set: set --probe_dataset_hold_ratio > 0 "
                    "(e.g. 0.02) or give x_probe/y_probe in --dataset_file")
  weight_decay = (networks.default_weight_decay(config.network_name)
                  if config.weight_decay is None else config.weight_decay)

  def make_network():
    return networks.build_network(config.network_name, data.num_classes, data.image_shape)

  with strategy.scope():
    context = TrainingContext(
        num_classes=data.num_classes, steps_per_epoch=steps_per_epoch, num_train_examples=len(data.x_train),
        weight_decay=weight_decay, use_ema=config.use_ema, grad_clip_norm=config.grad_clip_norm, seed=config.seed,
        noise_ratio=data.spec.ratio, transition=data.transition, make_network=make_network,
        corrupted=data.corrupted)
    model = method_cls(make_network(), context, method_config(config, method_cls))
    schedule = schedules.make_schedule(config, steps_per_epoch, max_iteration)
    optimizer = optimizers.make_optimizer(config.optimizer, schedule, config.momentum)
    model.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    optimizer.build(model.trainable_variables)  # slot variables must exist before a restore
  store = checkpoints.CheckpointStore(os.path.join(config.run_dir, run_files.CHECKPOINT_DIR),
                                      model.checkpoint_variables())
  return Run(config, data, strategy, model, store, global_batch, steps_per_epoch, max_iteration)


def prepare_run_dir(run: Run) -> None:
  """Writes flags.json and the noise files; refuses a directory whose noisy labels differ."""
  config, data = run.config, run.data
  try:
    os.makedirs(config.run_dir, exist_ok=True)
    probe = os.path.join(config.run_dir, ".write_test")
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise UserError(f"--checkpoint_path={config.checkpoint_path} is not writable ({e.strerror}): "
                    "choose a directory you can write to") from e
  noise_path = os.path.join(config.run_dir, run_files.NOISE_FILE)
  if os.path.exists(noise_path):
    saved = noisy_lib.load_noise_file(noise_path)
    if not np.array_equal(saved["noisy_labels"], data.y_train):
      raise UserError(f"{config.run_dir} holds a run with other noisy labels (another --seed or dataset file): "
                      "use another --checkpoint_path or delete that directory")
  else:
    data.save_noise_file(noise_path)
  with open(os.path.join(config.run_dir, run_files.NOISE_REPORT_FILE), "w", encoding="utf-8") as f:
    f.write(data.noise_report() + "\n")
  resolved = {**config.to_json(), "num_replicas": run.strategy.num_replicas_in_sync, "global_batch": run.global_batch,
              "steps_per_epoch": run.steps_per_epoch, "max_iteration_resolved": run.max_iteration,
              "weight_decay_resolved": run.model.context.weight_decay, "num_classes": data.num_classes,
              "num_train": len(data.x_train), "num_probe": len(data.x_probe), "num_test": len(data.x_test)}
  run_files.write_json_atomic(os.path.join(config.run_dir, run_files.FLAGS_FILE), resolved)


def train_dataset(run: Run, start_step: int) -> tf.data.Dataset:
  data, config, cls = run.data, run.config, type(run.model)
  augmentation = pipeline.augmentation_for(data.spec.name, data.image_shape)
  probe = {}
  if cls.needs_probe:
    probe = {"probe_images": data.x_probe, "probe_labels": data.y_probe, "probe_batch_size": run.global_batch}
  strong = config.aug_type if cls.needs_strong_view and config.aug_type != "none" else None
  return pipeline.train_dataset(data.x_train, data.y_train, batch_size=run.global_batch, seed=config.seed,
                                start_step=start_step, strong_aug_type=strong, **augmentation, **probe)


def eval_dataset(run: Run) -> tf.data.Dataset:
  batch = run.config.val_batch_size * run.strategy.num_replicas_in_sync
  return pipeline.eval_dataset(run.data.x_test, run.data.y_test, batch_size=batch)


def _verbosity() -> int:
  return 1 if sys.stdout.isatty() else 2


def train(run: Run) -> dict:
  config, model = run.config, run.model
  prepare_run_dir(run)
  logging.info("noise:\n%s", run.data.noise_report())
  restored = run.store.restore(config.restore_step)
  start_step = int(model.optimizer.iterations.numpy())
  if restored is not None:
    logging.info("resumed from step %d (%s)", start_step, run.store.directory)
  if start_step >= run.max_iteration:
    logging.info("already trained to step %d of %d; nothing to do", start_step, run.max_iteration)
    return _latest_results(config.run_dir)
  epochs = math.ceil(run.max_iteration / config.eval_freq)
  callbacks = [
      callbacks_lib.StopAtStep(run.max_iteration),
      callbacks_lib.SaveCheckpoint(run.store),
      callbacks_lib.WriteSummaries(config.run_dir, model.SCALAR_TAGS, run.steps_per_epoch),
      callbacks_lib.RecordResults(config.run_dir, run.steps_per_epoch),
  ]
  model.fit(train_dataset(run, start_step), epochs=epochs, steps_per_epoch=config.eval_freq,
            initial_epoch=start_step // config.eval_freq, validation_data=eval_dataset(run),
            callbacks=callbacks, verbose=_verbosity(), shuffle=False)
  return _latest_results(config.run_dir)


def evaluate(run: Run) -> dict:
  """Restores the newest (or --restore_step) checkpoint, evaluates, records and returns top-1/top-5."""
  step = run.store.restore(run.config.restore_step, require=True)
  logs = run.model.evaluate(eval_dataset(run), return_dict=True, verbose=0)
  record = {"step": step, "top1": float(logs["top1"]), "top5": float(logs["top5"]), "eval_loss": float(logs["loss"]),
            "mode": "evaluation"}
  run_files.record_result(run.config.run_dir, record)
  print(f"[Evaluation] step {step} total {len(run.data.x_test)} top1 {record['top1']:.4f} top5 {record['top5']:.4f}")
  return record


def _latest_results(run_dir: str) -> dict:
  path = os.path.join(run_dir, run_files.RESULTS_FILE)
  return run_files.read_json(path) if os.path.exists(path) else {}


MODES = {"train": train, "evaluation": evaluate}


def run(config: RunConfig) -> dict:
  built = build(config)
  return MODES[config.mode](built)
