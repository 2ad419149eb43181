"""Command-line flags: the original IEG names and defaults, the new ones, and every method's options.

Each method declares its hyper-parameters in its `Config` dataclass; a flag of the same name is
defined here for every field, so a new method file brings its flags with it. This is the only
module that reads flags.
"""
import dataclasses
import typing

from absl import flags

import methods
import networks
from ieg import config as config_lib
from ieg import presets

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines every flag once (safe to call again)."""
  if "dataset" in FLAGS:
    return
  d = config_lib.RunConfig()
  flags.DEFINE_string("dataset", d.dataset, "<name>_<noise>_<ratio>, e.g. cifar10_uniform_0.4, mnist_symmetric_0.5, "
                      "cifar10_asymmetric_0.4, digits_uniform_0.4; <name> alone or <name>_none keeps the labels.")
  flags.DEFINE_string("method", d.method, "Training method: " + ", ".join(methods.method_names()))
  flags.DEFINE_string("network_name", d.network_name, "Network, e.g. wrn28-10, resnet29, resnet32, cnn9, mnist_cnn.")
  flags.DEFINE_string("mode", d.mode, "train, evaluation, report, find_issues (K-fold out-of-sample label issues "
                      "in <run>/find_issues/detection/), export (a SavedModel from a checkpoint) or predict.")
  flags.DEFINE_integer("max_iteration", d.max_iteration, "Training steps (ignored when --max_epoch is set).")
  flags.DEFINE_integer("max_epoch", None, "If set, train for this many passes over the noisy training set.")
  flags.DEFINE_integer("batch_size", d.batch_size, "Batch size per replica (global = per replica x replicas).")
  flags.DEFINE_integer("val_batch_size", d.val_batch_size, "Evaluation batch size per replica.")
  flags.DEFINE_float("learning_rate", d.learning_rate, "Base learning rate (not scaled with the replicas).")
  flags.DEFINE_float("momentum", d.momentum, "Momentum of the TF1-style momentum optimizer.")
  flags.DEFINE_string("optimizer", d.optimizer, "momentum (TF1 semantics, as IEG) or adam.")
  flags.DEFINE_string("lr_schedule", d.lr_schedule, "One of " + ", ".join(config_lib.LR_SCHEDULES) + ".")
  flags.DEFINE_list("decay_steps", [str(s) for s in d.decay_steps],
                    "First cosine period, or the step boundaries of custom_step, or the exponential period.")
  flags.DEFINE_float("decay_rate", d.decay_rate, "Factor of each custom_step boundary.")
  flags.DEFINE_integer("warmup_epochs", d.warmup_epochs, "Linear warm-up epochs before the schedule.")
  flags.DEFINE_float("cos_t_mul", d.cos_t_mul, "Period multiplier of cosine restarts.")
  flags.DEFINE_float("cos_m_mul", d.cos_m_mul, "Peak multiplier of cosine restarts.")
  flags.DEFINE_float("weight_decay", None, "Coupled L2 coefficient; default: the network's (WRN 5e-4, ResNet-29 1e-4).")
  flags.DEFINE_float("grad_clip_norm", None, "Clip the global-batch gradient to this norm.")
  flags.DEFINE_integer("eval_freq", d.eval_freq, "Steps between evaluations and checkpoints.")
  flags.DEFINE_string("checkpoint_path", d.checkpoint_path, "Root of the run directories.")
  flags.DEFINE_integer("restore_step", d.restore_step, "0 restores the newest checkpoint; >0 that step.")
  flags.DEFINE_integer("seed", d.seed, "Seed of every random draw: noise, probe, order, augmentation, init.")
  flags.DEFINE_bool("use_ema", d.use_ema, "Evaluate with the exponential moving average of the weights.")
  flags.DEFINE_float("probe_dataset_hold_ratio", d.probe_dataset_hold_ratio,
                     "Fraction of the training set held out as the clean, class-balanced probe set.")
  flags.DEFINE_float("validation_fraction", d.validation_fraction,
                     "Fraction of the noisy training set held out (class-balanced, noisy labels) to choose the "
                     "epoch on; results.json's `selected` then reports the test top-1 there. 0: the paper protocols.")
  flags.DEFINE_string("transition", d.transition, "The noise transition matrix of the methods that use one: "
                      "known (the synthetic noise's own) or estimate (the one --mode=find_issues estimated).")
  flags.DEFINE_integer("cross_val_folds", d.cross_val_folds,
                       "--mode=find_issues: folds; each fold's model trains on the others with the usual budget.")
  flags.DEFINE_string("aug_type", d.aug_type, "Strong view of IEG: autoaug, randaug, randaug_per_image or none.")
  flags.DEFINE_string("data_dir", None, "Data folder: local archives in <data_dir>/<name>/, and the TFDS data dir.")
  flags.DEFINE_string("dataset_file", None, "Your own data: .npz with x_train, y_train, x_test, y_test "
                      "(--dataset=custom) or a CSV path,label[,split] (--dataset=csv).")
  flags.DEFINE_string("distribution_strategy", d.distribution_strategy, "mirrored, one_device or multi_worker.")
  flags.DEFINE_bool("deterministic", d.deterministic, "Deterministic TF ops (slower): identical reruns.")
  flags.DEFINE_bool("jit_compile", d.jit_compile, "Compile the train step with XLA (faster on GPUs; slower on "
                    "the CPUs measured, see the README's speed section).")
  flags.DEFINE_string("precision", d.precision, "Keras dtype policy: float32, mixed_bfloat16 (CPUs with bf16 units, "
                      "Ampere+ GPUs) or mixed_float16 (GPUs; with loss scaling). Variables, losses and the "
                      "optimizer stay float32.")
  flags.DEFINE_bool("use_imagenet_as_eval", d.use_imagenet_as_eval,
                    "WebVision-mini: evaluate on the first 50 ImageNet classes' val images, as IEG.")
  flags.DEFINE_string("preset", None, "Named paper setting that fills the flags you do not set, e.g. "
                      "sigua_mnist_sym50; see the README's preset table.")
  # The user's own images (--dataset=folder, csv or tfds:<name>).
  flags.DEFINE_string("dataset_dir", None, "--dataset=folder: DIR with DIR/train/<class name>/*.png|jpg|... "
                      "[DIR/test/<class name>/, DIR/probe/<class name>/ (a clean probe set)].")
  flags.DEFINE_integer("image_size", d.image_size, "Resize every image of folder/csv/tfds:<name> data to N x N; "
                       "0: keep the size all images share.")
  flags.DEFINE_float("test_fraction", d.test_fraction, "Share of every class held out as the test set when "
                     "folder/csv/tfds:<name> data has no test split, in (0, 0.9].")
  flags.DEFINE_bool("skip_bad_images", d.skip_bad_images, "Skip (and count) image files that cannot be decoded "
                    "instead of stopping.")
  flags.DEFINE_string("image_cache", d.image_cache, "Where decoded folder/csv images are held: memory, disk (decoded "
                      "once to --image_cache_dir, batches read from there) or auto (disk when memory is too small).")
  flags.DEFINE_string("image_cache_dir", None, "Folder for images decoded to disk (default "
                      "<checkpoint_path>/image_cache); a later run on the same files reuses them.")
  flags.DEFINE_string("export_dir", None, "Write a SavedModel (uint8 images in, class probabilities out) here at the "
                      "end of training, or from the run's checkpoint with --mode=export.")
  flags.DEFINE_string("predict_input", None, "--mode=predict: a folder of images, a .csv with a `path` column or "
                      "an .npz with x; writes <run dir>/predictions/<name>.csv.")
  _define_method_flags()


_DEFINERS = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}


def _base_type(annotation):
  """float | None -> float; a plain type -> itself."""
  args = [a for a in typing.get_args(annotation) if a is not type(None)]
  return args[0] if args else annotation


def method_option_fields() -> dict[str, dataclasses.Field]:
  """Every method Config field by name; a name shared by two methods must mean the same thing."""
  fields: dict[str, dataclasses.Field] = {}
  owners: dict[str, str] = {}
  for name, cls in methods.method_classes().items():
    hints = typing.get_type_hints(cls.Config)
    for field in dataclasses.fields(cls.Config):
      field.type = hints[field.name]
      if field.name in fields:
        other = fields[field.name]
        if (other.default, _base_type(other.type)) != (field.default, _base_type(field.type)):
          raise ValueError(f"option {field.name!r} of methods {owners[field.name]} and {name} differ")
        continue
      fields[field.name] = field
      owners[field.name] = name
  return fields


def _define_method_flags() -> None:
  for name, field in method_option_fields().items():
    kind = _base_type(field.type)
    help_text = field.metadata.get("help", f"Option of the {name} method.")
    if field.metadata.get("estimable"):  # a number or the word 'estimate'
      flags.DEFINE_string(name, None if field.default is None else str(field.default), help_text)
      continue
    _DEFINERS[kind](name, field.default, help_text)


def _method_option_value(name: str, field: dataclasses.Field, value):
  """An estimable option's text as its number (or 'estimate'); other options as parsed."""
  if not field.metadata.get("estimable") or value is None or not isinstance(value, str):
    return value
  if value == config_lib.ESTIMATE:
    return value
  try:
    return float(value)
  except ValueError:
    from core.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f"--{name}={value} is not a number: give e.g. 0.2, or '{config_lib.ESTIMATE}' to use the noise "
                    "rate --mode=find_issues estimated") from None


def _flag_value(name: str, preset: dict):
  """The command-line value; else the preset's; else the flag's default."""
  if FLAGS[name].present or name not in preset:
    return FLAGS[name].value
  return preset[name]


def _network_defaults(preset: dict) -> dict:
  """The chosen network's training defaults that neither the command line nor the preset sets."""
  network_name = _flag_value("network_name", preset)
  if network_name not in networks.network_names():
    return {}  # RunConfig.validate names the unknown network
  return {name: value for name, value in networks.training_defaults(network_name).items()
          if not FLAGS[name].present and name not in preset}


def read_config() -> config_lib.RunConfig:
  """The RunConfig of the parsed command line, --preset and the network's defaults (not yet validated).

  Precedence: the command line, then the preset, then the network's training defaults, then the
  flag's default. `RunConfig.defaults_from` records which values the network supplied.
  """
  preset = presets.preset_values(FLAGS.preset) if FLAGS.preset else {}
  unknown = set(preset) - set(FLAGS)
  if unknown:
    raise ValueError(f"preset {FLAGS.preset} sets unknown flags {sorted(unknown)}")
  base_names = {f.name for f in dataclasses.fields(config_lib.RunConfig)} - config_lib.NOT_FLAGS
  values = {name: _flag_value(name, preset) for name in base_names}
  network_defaults = _network_defaults(preset)
  values.update({name: value for name, value in network_defaults.items() if name in base_names})
  values["defaults_from"] = {name: f"network {values['network_name']}" for name in network_defaults}
  try:
    decay_steps = _flag_value("decay_steps", preset)
    decay_steps = decay_steps.split(",") if isinstance(decay_steps, str) else decay_steps
    values["decay_steps"] = tuple(int(s) for s in decay_steps)
  except ValueError:
    from core.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f"--decay_steps={FLAGS.decay_steps} is invalid: give integers, e.g. 500 or 40000,60000")
  options = {name: _method_option_value(name, field, network_defaults.get(name, _flag_value(name, preset)))
             for name, field in method_option_fields().items()}
  return config_lib.RunConfig(**values, method_options=options)
