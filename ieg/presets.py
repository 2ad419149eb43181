"""Named settings of the papers' experiments (`--preset=sigua_mnist_sym50`).

A method file declares its presets as `PRESETS = {name: {flag: value}}` on its class; they are
collected here, so a preset lives next to the method it configures. A preset only fills flags the
user did not set on the command line.
"""
from typing import Any

import methods
from core.errors import UserError


def all_presets() -> dict[str, dict[str, Any]]:
  presets: dict[str, dict[str, Any]] = {}
  for cls in methods.method_classes().values():
    for name, values in getattr(cls, "PRESETS", {}).items():
      if name in presets:
        raise ValueError(f"preset {name!r} is defined twice")
      presets[name] = dict(values)
  return presets


def preset_values(name: str) -> dict[str, Any]:
  presets = all_presets()
  if name not in presets:
    valid = ", ".join(sorted(presets)) or "none defined"
    raise UserError(f"--preset={name} is not known: choose one of {valid}")
  return presets[name]
