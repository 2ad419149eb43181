"""--distribution_strategy on one local device: TensorFlow's default strategy, no other one built."""
import pytest
import tensorflow as tf

from ieg import strategy


@pytest.mark.parametrize("name", ["mirrored", "one_device"])
def test_one_local_device_trains_under_the_default_strategy_without_building_another(name, monkeypatch):
  if tf.config.list_logical_devices("GPU")[1:]:
    pytest.skip("more than one GPU: mirrored holds them all")

  def not_built(*args, **kwargs):
    raise AssertionError("a one-device strategy was built")

  monkeypatch.setattr(tf.distribute, "MirroredStrategy", not_built)
  monkeypatch.setattr(tf.distribute, "OneDeviceStrategy", not_built)
  assert strategy.make_strategy(name) is tf.distribute.get_strategy()
