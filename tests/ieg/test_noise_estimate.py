"""--forget_rate=estimate and --transition=estimate read the noise estimate of --mode=find_issues."""
import json
import os

import numpy as np
import pytest

from core.errors import UserError
from ieg import experiment
from ieg.config import RunConfig


def sigua_config(root, **overrides):
  settings = dict(dataset="digits", method="sigua", network_name="mnist_cnn", batch_size=32, max_iteration=10,
                  probe_dataset_hold_ratio=0.0, checkpoint_path=str(root), seed=1, distribution_strategy="one_device")
  return RunConfig(**{**settings, **overrides})


def write_estimate(config, rate, transition):
  os.makedirs(os.path.dirname(config.noise_estimate_path), exist_ok=True)
  with open(config.noise_estimate_path, "w", encoding="utf-8") as f:
    json.dump({"estimated_noise_rate": rate, "transition_given_by_true": transition.tolist()}, f)


def test_estimate_without_a_search_names_the_file_to_make(tmp_path):
  config = sigua_config(tmp_path, method_options={"forget_rate": "estimate"})
  with pytest.raises(UserError) as error:
    experiment.build(config)
  message = str(error.value)
  assert config.noise_estimate_path in message and "--mode=find_issues" in message and "\n" not in message


def test_the_estimated_rate_and_transition_reach_the_method(tmp_path):
  transition = np.full((10, 10), 0.03) + np.eye(10) * 0.7   # rows sum to 1
  base = sigua_config(tmp_path)
  write_estimate(base, 0.27, transition)
  nominal = experiment.build(base)
  assert nominal.model.forget_rate == 0.0   # clean digits: the nominal rate is 0, the known matrix the identity
  np.testing.assert_array_equal(nominal.model.context.transition, np.eye(10))
  estimated = experiment.build(sigua_config(tmp_path, method_options={"forget_rate": "estimate"},
                                            transition="estimate"))
  assert estimated.model.forget_rate == pytest.approx(0.27)
  np.testing.assert_allclose(estimated.model.context.transition, transition)
  fixed = experiment.build(sigua_config(tmp_path, method_options={"forget_rate": 0.1}, transition="estimate"))
  assert fixed.model.forget_rate == pytest.approx(0.1)   # a number given stays the number


def test_an_estimate_for_other_data_is_refused(tmp_path):
  config = sigua_config(tmp_path, transition="estimate")
  write_estimate(config, 0.2, np.eye(3))
  with pytest.raises(UserError, match="3 classes"):
    experiment.build(config)


def test_the_search_cannot_read_its_own_output(tmp_path):
  with pytest.raises(UserError, match="find_issues makes the noise estimate"):
    sigua_config(tmp_path, mode="find_issues", transition="estimate").validate()
  with pytest.raises(UserError, match="--transition=guess is not known"):
    sigua_config(tmp_path, transition="guess").validate()
