"""Name -> network builder registry behind `--network_name`.

Family modules register their builders with `@register_network(...)`; the training code only ever
calls `build_network` and `default_weight_decay`, so adding a network never touches an if/elif.
"""
from __future__ import annotations

import dataclasses
import types
from typing import Any, Callable, Mapping, Protocol

import keras

from core.errors import UserError


class NetworkBuilder(Protocol):
  """Builds an uncompiled functional model that maps images to logits."""

  def __call__(self, num_classes: int, input_shape: tuple[int, int, int],
               **options: Any) -> keras.Model:
    ...


@dataclasses.dataclass(frozen=True)
class _Entry:
  builder: NetworkBuilder
  weight_decay: float
  training_defaults: Mapping[str, Any]


_REGISTRY: dict[str, _Entry] = {}


def register_network(name: str, *, weight_decay: float,
                     training_defaults: Mapping[str, Any] | None = None
                     ) -> Callable[[NetworkBuilder], NetworkBuilder]:
  """Registers `builder(num_classes, input_shape, **options)` under `name`.

  `weight_decay` is the coupled-L2 coefficient the reference code pairs with this network; the
  training code uses it when the user does not set one. `training_defaults` are run settings
  (RunConfig field names) that replace the framework's defaults for this network when neither the
  command line nor a preset sets them: IEG's defaults are tuned for CIFAR networks with BatchNorm.
  """

  def decorate(builder: NetworkBuilder) -> NetworkBuilder:
    if name in _REGISTRY:
      raise ValueError(f"network {name!r} is registered twice")
    _REGISTRY[name] = _Entry(builder=builder, weight_decay=float(weight_decay),
                             training_defaults=types.MappingProxyType(dict(training_defaults or {})))
    return builder

  return decorate


def network_names() -> list[str]:
  """All registered network names, sorted."""
  return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
  try:
    return _REGISTRY[name]
  except KeyError:
    raise UserError(
        f"unknown network {name!r}; choose one of: {', '.join(network_names())}") from None


def build_network(name: str, num_classes: int, input_shape: tuple[int, int, int],
                  **options: Any) -> keras.Model:
  """Builds network `name` for float32 images of `input_shape` (H, W, C); outputs K float32 logits."""
  if num_classes < 1:
    raise UserError(f"num_classes must be at least 1 (got {num_classes}); check the dataset spec")
  if len(input_shape) not in (1, 3):   # (H, W, C) images, or (L,) token sequences (textcnn)
    raise UserError(f"input_shape must be (height, width, channels) or (sequence length,) "
                    f"(got {tuple(input_shape)})")
  network = _entry(name).builder(int(num_classes), tuple(int(d) for d in input_shape), **options)
  return with_float32_logits(network)


def with_float32_logits(network: keras.Model) -> keras.Model:
  """Under a mixed dtype policy the layers compute in bfloat16/float16; the logits are cast back to
  float32 so that every loss, softmax and example weight is float32. No-op under float32."""
  if keras.config.dtype_policy().compute_dtype == "float32":
    return network
  logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(network.outputs[0])
  return keras.Model(network.inputs, logits, name=network.name)


def default_weight_decay(name: str) -> float:
  """The coupled-L2 coefficient the reference code uses with network `name`."""
  return _entry(name).weight_decay


def training_defaults(name: str) -> dict[str, Any]:
  """The run settings network `name` trains with when the user leaves them unset (may be empty)."""
  return dict(_entry(name).training_defaults)


def has_batch_norm(model: keras.layers.Layer) -> bool:
  """True if any (possibly nested) layer of `model` is a BatchNormalization.

  Per-example gradients (PRL-G) are meaningless under train-mode BatchNorm, because the batch
  statistics couple the examples; the method checks this before it starts.
  """
  pending = [model]
  while pending:
    layer = pending.pop()
    if isinstance(layer, keras.layers.BatchNormalization):
      return True
    pending.extend(getattr(layer, "layers", []))
  return False
