"""Registry of training methods: `--method=<name>` -> a `methods.base.Method` subclass.

Every module in this package is imported on first use, so a new method is one new file that
decorates its class with `@register_method("name")`.
"""
import importlib
import pkgutil

from core.errors import UserError

_REGISTRY: dict[str, type] = {}
_discovered = False


def register_method(name: str):
  """Class decorator: makes the class available as `--method=<name>`."""
  def decorate(cls):
    if name in _REGISTRY and _REGISTRY[name] is not cls:
      raise ValueError(f"method {name!r} is registered twice")
    cls.method_name = name
    _REGISTRY[name] = cls
    return cls
  return decorate


def _discover() -> None:
  global _discovered
  if _discovered:
    return
  _discovered = True
  for module in pkgutil.iter_modules(__path__):
    if not module.name.startswith("_"):
      importlib.import_module(f"{__name__}.{module.name}")


def method_names() -> list[str]:
  _discover()
  return sorted(_REGISTRY)


def method_classes() -> dict[str, type]:
  _discover()
  return dict(_REGISTRY)


def method_class(name: str) -> type:
  _discover()
  if name not in _REGISTRY:
    raise UserError(f"--method={name} is not known: choose one of {', '.join(method_names())}")
  return _REGISTRY[name]
