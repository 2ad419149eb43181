"""The flag-chosen tables: registration, duplicates and the one-line error for an unknown name."""
import pytest

from core.errors import UserError
from core.registry import Registry
from datasets.augment import strong_view
from ieg import schedules
from methods import absgd, meta, prl, sigua


def test_register_returns_the_implementation_and_lookup_finds_it():
  table = Registry("colour")

  @table.register("red")
  def red():
    return "r"

  assert red() == "r" and table.lookup("red") is red and list(table) == ["red"]
  table.register("red")(red)  # registering the same object again is harmless (module reloads)
  with pytest.raises(ValueError, match="--colour=red is registered twice"):
    table.register("red")(lambda: "other")


def test_unknown_name_names_the_flag_and_the_choices():
  table = Registry("colour")
  table.update({"red": 1, "blue": 2})
  with pytest.raises(UserError, match=r"^--colour=green is not known: choose one of red, blue$"):
    table.lookup("green")


@pytest.mark.parametrize("table, flag, known", [
    (meta.META_GRADIENTS, "meta_grad", "jvp"),
    (sigua._VARIANTS, "sigua_variant", "bc"),  # pylint: disable=protected-access
    (absgd.BASE_LOSSES, "absgd_loss", "sce"),
    (prl.VARIANTS, "prl_variant", "co_prl_g"),
    (schedules._SCHEDULES, "lr_schedule", "coteaching_linear"),  # pylint: disable=protected-access
    (strong_view._POLICY_PLANS, "aug_type", "randaug"),  # pylint: disable=protected-access
])
def test_every_flag_table_is_filled_and_refuses_unknown_values(table, flag, known):
  assert table.flag == flag and known in table
  table.check(known)
  with pytest.raises(UserError, match=f"--{flag}=typo is not known: choose one of .*{known}"):
    table.check("typo")
