"""One run, wired from a `RunConfig`: data -> network -> method -> fit with callbacks, or evaluation.

The run directory (`RunConfig.run_dir`) receives the resolved flags, the noisy labels, checkpoints,
TensorBoard events, results.json and log.jsonl. Running the same command again resumes training from
the newest readable checkpoint.
"""
import contextlib
import dataclasses
import logging
import os

import keras
import numpy as np
import tensorflow as tf

import methods
import networks
from core.errors import UserError
from datasets import noisy as noisy_lib
from datasets import noisy_files
from datasets import sources
from datasets import spec as spec_lib
from datasets.pipelines import run_inputs
from ieg import cross_validation
from ieg import optimizers
from ieg import precision
from ieg import schedules
from ieg import strategy as strategy_lib
from ieg import config as config_lib
from ieg.config import RunConfig
from ieg.reports import issue_files
from ieg.reports import writer as reports
from ieg.run import callbacks as callbacks_lib
from ieg.run import checkpoints
from ieg.run import compat as run_compat
from ieg.run import fault_points
from ieg.run import files as run_files
from ieg.run import guard_callbacks
from ieg.run import interrupts
from ieg.run import lock as run_lock
from ieg.serving import export as export_lib
from ieg.serving import predict as predict_lib
from methods.base import TrainingContext
from networks import textcnn


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
  if sources.source_kind(spec.name) == sources.KIND_IMAGE_FILES:   # too large for memory: streamed
    if config.validation_fraction:
      raise UserError(f"--validation_fraction={config.validation_fraction:g} is not available for the streamed "
                      f"image-file dataset {spec.name}: set 0 (Clothing1M's clean validation split is used "
                      "when present)")
    return noisy_files.build_file_dataset(
        spec, data_dir=config.data_dir, probe_ratio=config.probe_dataset_hold_ratio, seed=config.seed,
        use_imagenet_as_eval=config.use_imagenet_as_eval)
  return noisy_lib.build_noisy_dataset(spec, data_dir=config.data_dir, probe_ratio=config.probe_dataset_hold_ratio,
                                       seed=config.seed, dataset_file=config.dataset_file,
                                       validation_fraction=config.validation_fraction,
                                       source_options=source_options(config))


def source_options(config: RunConfig) -> sources.SourceOptions:
  """The settings the sources of the user's own images read (folder, image size, test share)."""
  return sources.SourceOptions(dataset_dir=config.dataset_dir, image_size=config.image_size,
                               test_fraction=config.test_fraction, skip_bad_images=config.skip_bad_images,
                               seed=config.seed, image_cache=config.image_cache,
                               image_cache_dir=config.decoded_images_dir)


def method_config(config: RunConfig, method_cls):
  """The method's hyper-parameters: its Config defaults overridden by `config.method_options`.

  An option set to 'estimate' is left unset here: it then follows the noise rate in the context,
  which `noise_knowledge` has set to the estimate.
  """
  names = {f.name for f in dataclasses.fields(method_cls.Config)}
  return method_cls.Config(**{k: (None if v == config_lib.ESTIMATE else v)
                              for k, v in config.method_options.items() if k in names})


def noise_knowledge(config: RunConfig, data) -> tuple[float, np.ndarray | None]:
  """(noise rate, transition T[true, noisy]) the methods may use: the synthetic noise's nominal ones, or
  --mode=find_issues' estimates where --transition=estimate / an option set to 'estimate' asks for them."""
  rate, transition = data.spec.ratio, data.transition
  if config.uses_noise_estimate:
    estimated_rate, estimated_transition = issue_files.read_noise_estimate(config.noise_estimate_path,
                                                                           data.num_classes)
    if config_lib.ESTIMATE in config.method_options.values():
      rate = estimated_rate
    if config.transition == config_lib.ESTIMATE:
      transition = estimated_transition
  return rate, transition


def build(config: RunConfig, data: noisy_lib.NoisyDataset | None = None) -> Run:
  """Builds data, strategy, network, method and optimizer; restores nothing yet."""
  config.validate()
  set_determinism(config)
  precision.apply_policy(config.precision)  # before any network is built
  data = data if data is not None else load_data(config)
  strategy = strategy_lib.make_strategy(config.distribution_strategy)
  global_batch = config.batch_size * strategy.num_replicas_in_sync
  steps_per_epoch = max(data.examples_per_epoch // global_batch, 1)
  max_iteration = config.max_epoch * steps_per_epoch if config.max_epoch else config.max_iteration
  method_cls = methods.method_class(config.method)
  check_network_fits_data(config, data, method_cls)
  if method_cls.needs_probe and data.num_probe == 0:
    raise UserError(f"--method={config.method} needs a clean probe set: set --probe_dataset_hold_ratio > 0 "
                    "(e.g. 0.02) or give x_probe/y_probe in --dataset_file")
  noise_rate, transition = noise_knowledge(config, data)
  weight_decay = (networks.default_weight_decay(config.network_name)
                  if config.weight_decay is None else config.weight_decay)

  def make_network():
    return networks.build_network(config.network_name, data.num_classes, data.image_shape, **data.network_options)

  with strategy.scope():
    context = TrainingContext(
        num_classes=data.num_classes, steps_per_epoch=steps_per_epoch, num_train_examples=data.num_train,
        weight_decay=weight_decay, use_ema=config.use_ema, grad_clip_norm=config.grad_clip_norm, seed=config.seed,
        noise_ratio=noise_rate, transition=transition, make_network=make_network,
        corrupted=data.corrupted)
    model = method_cls(make_network(), context, method_config(config, method_cls))
    schedule = schedules.make_schedule(config, steps_per_epoch, max_iteration)
    optimizer = optimizers.make_optimizer(config.optimizer, schedule, config.momentum,
                                         loss_scaling=config.precision == "mixed_float16")
    model.compile(optimizer=optimizer, jit_compile=config.jit_compile)
    optimizer.build(model.network.trainable_variables)  # slots must exist before a restore; a peer network has its own
  strategy_lib.prepare_model(model, strategy)  # Keras gaps under a multi-worker strategy
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
  if data.skipped_paths:
    with open(os.path.join(config.run_dir, run_files.SKIPPED_IMAGES_FILE), "w", encoding="utf-8") as f:
      f.write("".join(p + "\n" for p in data.skipped_paths))
  resolved = {**config.to_json(), "num_replicas": run.strategy.num_replicas_in_sync, "global_batch": run.global_batch,
              "steps_per_epoch": run.steps_per_epoch, "max_iteration_resolved": run.max_iteration,
              "weight_decay_resolved": run.model.context.weight_decay, "num_classes": data.num_classes,
              "num_train": data.num_train, "num_probe": data.num_probe, "num_test": data.num_test,
              "num_validation": data.num_validation, "num_skipped_images": len(data.skipped_paths or ()),
              "noise_ratio_resolved": run.model.context.noise_ratio,
              **({"noise_estimate_file": config.noise_estimate_path} if config.uses_noise_estimate else {})}
  run_files.write_json_atomic(os.path.join(config.run_dir, run_files.FLAGS_FILE), resolved)


def train_dataset(run: Run, start_step: int) -> tf.data.Dataset:
  config, cls = run.config, type(run.model)
  strong = config.aug_type if cls.needs_strong_view and config.aug_type != "none" else None
  return run_inputs.train_dataset(run.data, batch_size=run.global_batch, seed=config.seed, start_step=start_step,
                                  with_probe=cls.needs_probe, strong_aug_type=strong)


def eval_dataset(run: Run) -> tf.data.Dataset:
  return run_inputs.eval_dataset(run.data, run.config.val_batch_size * run.strategy.num_replicas_in_sync)


def validation_dataset(run: Run) -> tf.data.Dataset:
  """The validation split (noisy held-out rows, or a source's clean one) through the test pipeline."""
  return run_inputs.eval_dataset(run.data.validation_as_test(), run.config.val_batch_size * run.strategy.num_replicas_in_sync)


def check_network_fits_data(config: RunConfig, data, method_cls) -> None:
  """Text data needs a text network (and no strong image view); image data an image network."""
  text_network = config.network_name in textcnn.TEXT_NETWORKS
  if (data.kind == "text") != text_network:
    wanted = f"one of {', '.join(textcnn.TEXT_NETWORKS)}" if data.kind == "text" else "an image network"
    raise UserError(f"--network_name={config.network_name} does not fit --dataset={config.dataset} "
                    f"({data.kind} data): use {wanted}")
  if data.kind == "text" and method_cls.needs_strong_view:
    raise UserError(f"--method={config.method} needs strong image views, which text data does not have")


@dataclasses.dataclass(frozen=True)
class FitSegment:
  """One `model.fit` call: Keras epochs [initial_epoch, epochs) of `steps_per_epoch` steps from `first_step`."""
  first_step: int
  initial_epoch: int
  epochs: int
  steps_per_epoch: int


def fit_segments(start_step: int, max_iteration: int, eval_freq: int) -> list[FitSegment]:
  """The fit calls that train from `start_step` to `max_iteration` with evaluations at multiples of `eval_freq`.

  Whole periods share one call; a period cut short (the rest of one a SIGTERM interrupted, or the
  run's last, shorter one) gets a call of its own, so every call ends exactly where an evaluation
  falls and no per-step check is needed to stop at `max_iteration`.
  """
  segments = []
  step, epoch = start_step, start_step // eval_freq
  while step < max_iteration:
    period_end = min((epoch + 1) * eval_freq, max_iteration)
    if step == epoch * eval_freq and period_end == (epoch + 1) * eval_freq:
      whole = max_iteration // eval_freq
      segments.append(FitSegment(step, epoch, whole, eval_freq))
      step, epoch = whole * eval_freq, whole
    else:
      segments.append(FitSegment(step, epoch, epoch + 1, period_end - step))
      step, epoch = period_end, epoch + 1
  return segments


def collapse_hint(config: RunConfig) -> str:
  """What to change when the network has collapsed: the step is the usual cause."""
  return (f"The step is most likely too large for --network_name={config.network_name} with "
          f"--method={config.method}: lower --learning_rate (now {config.learning_rate:g}, try "
          f"{config.learning_rate / 10:g}) or set --grad_clip_norm (e.g. 5).")


def train(run: Run) -> dict:
  config, model = run.config, run.model
  current = {**config.to_json(), "num_classes": run.data.num_classes}
  hint = run_compat.mismatch_hint(run_compat.read_saved_flags(config.run_dir), current)
  restored = run.store.restore(config.restore_step, mismatch_hint=hint)  # before flags.json is replaced
  prepare_run_dir(run)
  run.store.remove_unfinished()
  logging.info("noise:\n%s", run.data.noise_report())
  start_step = int(model.optimizer.iterations.numpy())
  strategy_lib.check_workers_agree_on_step(run.strategy, start_step)
  if restored is not None:
    logging.info("resumed from step %d (%s)", start_step, run.store.directory)
  if start_step >= run.max_iteration:
    logging.info("already trained to step %d of %d; nothing to train", start_step, run.max_iteration)
    _write_missing_report(run, start_step)
    export_lib.export_after_training(run, strategy_lib.is_chief(run.strategy))
    return _latest_results(config.run_dir)
  with interrupts.watch_signals(enabled=config.distribution_strategy != "multi_worker") as signals:
    callbacks = [
        *([guard_callbacks.PausePoints()] if fault_points.active() else []),
        *model.training_callbacks(run.data),  # the method's own first: they prepare state for the next step
        callbacks_lib.TrainingThroughput(run.global_batch),
        *([callbacks_lib.EvaluateValidation(lambda: validation_dataset(run))]
          if run.data.num_validation else []),  # before anything records or saves
        guard_callbacks.StopOnNonFiniteLoss(run.store),  # before anything of a bad step is saved
        callbacks_lib.WriteSummaries(config.run_dir, model.SCALAR_TAGS, run.steps_per_epoch),
        callbacks_lib.RecordResults(config.run_dir, run.steps_per_epoch, run.max_iteration),
        guard_callbacks.WarnOnCollapse(run.data.num_classes, collapse_hint(config)),
        *([reports.WriteReports(config.run_dir, run.data, run.max_iteration, config.val_batch_size,
                                run.global_batch)]
          if strategy_lib.is_chief(run.strategy) else []),  # after the records: plots read results.json
        callbacks_lib.SaveCheckpoint(run.store),  # after the records: a listed checkpoint has its evaluation
        guard_callbacks.StopOnSignal(signals, run.store),
    ]
    try:
      for segment in fit_segments(start_step, run.max_iteration, config.eval_freq):
        if int(model.optimizer.iterations.numpy()) >= run.max_iteration:
          break
        train_input = strategy_lib.distribute_train_dataset(run.strategy,
                                                            lambda: train_dataset(run, segment.first_step))
        model.fit(train_input, epochs=segment.epochs,
                  steps_per_epoch=segment.steps_per_epoch, initial_epoch=segment.initial_epoch,
                  validation_data=eval_dataset(run), callbacks=callbacks, verbose=0, shuffle=False)
    except OSError as e:  # results, logs or events could not be written (full disk, removed folder)
      latest = run.store.latest_path()
      raise UserError(f"cannot write {e.filename or config.run_dir} ({e.strerror or e}): free space or fix the "
                      f"folder, then rerun to resume{' from ' + latest if latest else ''}") from e
  export_lib.export_after_training(run, strategy_lib.is_chief(run.strategy))  # --export_dir, chief only
  return _latest_results(config.run_dir)


def _write_missing_report(run: Run, step: int) -> None:
  """A finished run whose end-of-run detection report is missing or older (the run stopped while writing it,
  or the report failed) gets it on the next rerun, as training would have written it."""
  metrics = os.path.join(run.config.run_dir, reports.DETECTION_DIR, reports.METRICS_JSON)
  if not strategy_lib.is_chief(run.strategy) or not reports.detection_due(step, run.global_batch, run.data.num_train):
    return  # non-chief workers write nothing; short runs get no detection report (as in training)
  if os.path.exists(metrics) and run_files.read_json(metrics).get("step") == step:
    return
  logging.info("the end-of-run report of step %d is missing: writing it now", step)
  reports.write_full_report(run.config.run_dir, run.model, run.data, run.config.val_batch_size, step)


def evaluate(run: Run) -> dict:
  """Restores the newest (or --restore_step) checkpoint, evaluates, records and returns top-1/top-5."""
  current = {**run.config.to_json(), "num_classes": run.data.num_classes}
  run_compat.check_evaluation_target(run.config.run_dir, current)
  hint = run_compat.mismatch_hint(run_compat.read_saved_flags(run.config.run_dir), current)
  step = run.store.restore(run.config.restore_step, require=True, mismatch_hint=hint)
  logs = run.model.evaluate(eval_dataset(run), return_dict=True, verbose=0)
  record = {"step": step, "top1": float(logs["top1"]), "top5": float(logs["top5"]), "eval_loss": float(logs["loss"]),
            "mode": "evaluation"}
  try:
    run_files.record_result(run.config.run_dir, record)
  except OSError as e:  # a read-only run directory can still be evaluated
    logging.warning("could not record the evaluation in %s (%s)", run.config.run_dir, e.strerror or e)
  print(f"[Evaluation] step {step} total {run.data.num_test} top1 {record['top1']:.4f} top5 {record['top5']:.4f}")
  return record


def _latest_results(run_dir: str) -> dict:
  path = os.path.join(run_dir, run_files.RESULTS_FILE)
  return run_files.read_json(path) if os.path.exists(path) else {}


def find_issues(run: Run) -> dict:
  """K-fold out-of-sample label issues; each fold is an ordinary training run below the run directory."""
  prepare_run_dir(run)
  found = cross_validation.find_issues(run, lambda config, data: _trained(build(config, data)))
  if run.config.export_dir:  # the model to use: trained on every example, as --mode=train would, then exported
    _trained(build(dataclasses.replace(run.config, mode="train"), run.data))
  return found


def _trained(run: Run) -> Run:
  train(run)
  return run


MODES = {"train": train, "evaluation": evaluate, "report": reports.report_from_checkpoint,
         "find_issues": find_issues, "export": export_lib.export_from_checkpoint,
         "predict": predict_lib.predict_from_checkpoint}


def _run_lock(config: RunConfig):
  """One process per run directory. Evaluation of a missing or read-only run directory needs no lock."""
  if config.mode != "train" and not (os.path.isdir(config.run_dir) and os.access(config.run_dir, os.W_OK)):
    return contextlib.nullcontext()
  return run_lock.RunLock(config.run_dir, run_lock.lock_file_name())


def run(config: RunConfig) -> dict:
  config.validate()
  with strategy_lib.worker_run_config(config) as config:  # non-chief workers: a temporary copy of the run
    with _run_lock(config):
      built = build(config)
      return MODES[config.mode](built)
