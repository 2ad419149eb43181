"""--distribution_strategy on one local device: TensorFlow's default strategy, no other one built."""
import pytest
import tensorflow as tf

from ieg import strategy


def devices(gpus: int, cpus: int):
  """A stand-in for tf.config.list_logical_devices on a machine with these devices."""
  return lambda kind: [f"/device:{kind}:{i}" for i in range({"GPU": gpus, "CPU": cpus}[kind])]


@pytest.mark.parametrize("name, gpus, cpus", [("mirrored", 0, 1), ("mirrored", 1, 2), ("one_device", 0, 1),
                                              ("one_device", 2, 2)])
def test_one_local_device_trains_under_the_default_strategy_without_building_another(name, gpus, cpus, monkeypatch):
  def not_built(*args, **kwargs):
    raise AssertionError("a one-device strategy was built")

  monkeypatch.setattr(tf.config, "list_logical_devices", devices(gpus, cpus))
  monkeypatch.setattr(tf.distribute, "MirroredStrategy", not_built)
  monkeypatch.setattr(tf.distribute, "OneDeviceStrategy", not_built)
  assert strategy.make_strategy(name) is tf.distribute.get_strategy()


@pytest.mark.parametrize("gpus, cpus", [(2, 1), (0, 2)])
def test_mirrored_over_several_local_devices_is_built(gpus, cpus, monkeypatch):
  built = object()
  monkeypatch.setattr(tf.config, "list_logical_devices", devices(gpus, cpus))
  monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda: built)
  assert strategy.make_strategy("mirrored") is built
