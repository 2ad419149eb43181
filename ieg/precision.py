"""--precision: the Keras dtype policy of a run, and whether this machine can run it.

Under a mixed policy the layers compute in bfloat16 or float16 while every variable, the optimizer
state, the logits (the networks end in a float32 cast), the losses, the softmax and the example
weights stay float32. float16 also needs loss scaling, which `ieg.optimizers` adds.
"""
import logging

import keras
import tensorflow as tf

from core.errors import UserError
from ieg.config import PRECISIONS as POLICIES
# CPU flags (as /proc/cpuinfo spells them) of units that compute in the policy's dtype.
_CPU_UNITS = {"mixed_bfloat16": ("avx512_bf16", "amx_bf16"), "mixed_float16": ("avx512_fp16", "amx_fp16")}
# The first GPU compute capability with fast kernels of the dtype (bfloat16: Ampere; float16: Volta).
_GPU_CAPABILITY = {"mixed_bfloat16": (8, 0), "mixed_float16": (7, 0)}


def apply_policy(name: str) -> None:
  """Sets Keras's global dtype policy to `name` after checking this machine runs it (float32 too: a
  policy left from an earlier run in the same process must not leak into this one)."""
  if name not in POLICIES:
    raise UserError(f"--precision={name} is not known: choose one of {', '.join(POLICIES)}")
  if name != "float32":
    check_supported(name)
  keras.mixed_precision.set_global_policy(name)


def check_supported(name: str) -> None:
  """UserError when the first GPU (or the CPU) has no kernels for the policy's compute dtype; a
  warning when it runs them without units of its own, i.e. more slowly than float32."""
  dtype = keras.mixed_precision.DTypePolicy(name).compute_dtype
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    if capability is not None and tuple(capability) < _GPU_CAPABILITY[name]:
      need = ".".join(map(str, _GPU_CAPABILITY[name]))
      raise UserError(f"--precision={name} needs a GPU of compute capability {need} or newer; this one has "
                      f"{'.'.join(map(str, capability))}: use --precision=float32"
                      + (" or mixed_float16" if name == "mixed_bfloat16" else ""))
  try:
    _run_probe(dtype)
  except (tf.errors.OpError, TypeError, ValueError) as e:
    device = "GPU" if gpus else "CPU"
    raise UserError(f"--precision={name}: this {device} cannot compute in {dtype} "
                    f"({type(e).__name__}): use --precision=float32") from None
  if not gpus and not _cpu_has_units(name):
    logging.warning("--precision=%s: this CPU has no %s units (%s): it runs, but more slowly than float32",
                    name, dtype, " or ".join(_CPU_UNITS[name]))


@tf.function(autograph=False)
def _probe(images, kernel, dense):
  features = tf.nn.conv2d(images, kernel, strides=1, padding="SAME")
  return tf.matmul(tf.reshape(features, [2, -1]), dense)


def _run_probe(dtype: str) -> None:
  """A convolution and a matmul with their gradients' ops, in `dtype`, on the default device."""
  images = tf.ones([2, 4, 4, 1], dtype)
  _probe(images, tf.ones([3, 3, 1, 2], dtype), tf.ones([32, 3], dtype)).numpy()


def _cpu_has_units(name: str) -> bool:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      flags = f.read()
  except OSError:
    return True  # not Linux: nothing to say
  return any(f" {unit}" in flags for unit in _CPU_UNITS[name])
