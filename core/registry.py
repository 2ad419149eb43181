"""A name -> implementation table that one flag chooses from.

Variants, base losses and meta-gradient implementations register themselves with a decorator, and
an unknown flag value gets the same one-line error everywhere.
"""
from typing import Callable, TypeVar

from core.errors import UserError

T = TypeVar("T")


class Registry(dict):
  """A dict of implementations by name, filled by `@registry.register(name)`, read by `lookup`."""

  def __init__(self, flag: str):
    super().__init__()
    self.flag = flag

  def register(self, name: str) -> Callable[[T], T]:
    def decorate(implementation: T) -> T:
      if name in self and self[name] is not implementation:
        raise ValueError(f"--{self.flag}={name} is registered twice")
      self[name] = implementation
      return implementation
    return decorate

  def check(self, name: str) -> None:
    if name not in self:
      raise UserError(f"--{self.flag}={name} is not known: choose one of {', '.join(self)}")

  def lookup(self, name: str):
    self.check(name)
    return self[name]
