"""Export and predict: a tiny trained digits run, its SavedModel loaded by a fresh Python that has only
TensorFlow, and predictions on PNG files, each against the in-process evaluation probabilities
(the method's `evaluation_logits` + softmax on images normalised by hand)."""
import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from core.errors import UserError
from ieg import experiment
from ieg.config import RunConfig
from ieg.serving import inputs as inputs_lib
from ieg.serving import predict as predict_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_IMAGES = 40


def tiny_config(root, **overrides):
  settings = dict(dataset="digits_uniform_0.2", method="supervised", network_name="mnist_cnn", batch_size=32,
                  val_batch_size=128, max_iteration=30, eval_freq=15, learning_rate=0.05, lr_schedule="constant",
                  probe_dataset_hold_ratio=0.0, checkpoint_path=str(root), seed=3,
                  distribution_strategy="one_device", export_dir=str(root / "model"))
  return RunConfig(**{**settings, **overrides})


def reference_probabilities(model, images: np.ndarray) -> np.ndarray:
  """softmax(evaluation_logits) on uint8 images mapped to [-1, 1] as (x / 255 - 0.5) * 2."""
  unit = (images.astype(np.float32) / 255.0 - 0.5) * 2.0
  return tf.nn.softmax(tf.cast(model.evaluation_logits(tf.constant(unit)), tf.float32), axis=-1).numpy()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """30 supervised steps with EMA; the end of training writes the export."""
  root = tmp_path_factory.mktemp("serving")
  config = tiny_config(root)
  run = experiment.build(config)
  experiment.train(run)
  images = run.data.x_test[:NUM_IMAGES]
  return config, run, images, reference_probabilities(run.model, images)


def load_in_fresh_python(export_dir: str, images: np.ndarray, workdir) -> dict:
  """Runs tf.saved_model.load + serve in `python -I` (no project on sys.path) and returns what it saw."""
  np.save(workdir / "images.npy", images)
  script = textwrap.dedent(f"""
      import importlib.util, json, sys
      import numpy as np
      import tensorflow as tf
      model = tf.saved_model.load({export_dir!r})
      images = np.load("images.npy")
      np.save("probs.npy", model.serve(images).numpy())
      spec = model.signatures["serving_default"].structured_input_signature[1]["inputs"]
      print(json.dumps({{"dtype": spec.dtype.name, "shape": [d for d in spec.shape],
                        "project_importable": any(importlib.util.find_spec(m) is not None
                                                  for m in ("ieg", "methods", "networks"))}}))
  """)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  done = subprocess.run([sys.executable, "-I", "-c", script], cwd=workdir, env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  seen = json.loads(done.stdout.strip().splitlines()[-1])
  seen["probs"] = np.load(workdir / "probs.npy")
  return seen


def test_the_export_loads_with_tensorflow_alone_and_matches_evaluation(trained, tmp_path):
  config, _, images, reference = trained
  seen = load_in_fresh_python(config.export_dir, images, tmp_path)
  assert not seen["project_importable"]
  assert seen["dtype"] == "uint8" and seen["shape"] == [None, 8, 8, 1]
  probs = seen["probs"]
  assert probs.dtype == np.float32 and probs.shape == (NUM_IMAGES, 10)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(probs, reference, atol=1e-5)


def test_the_export_describes_itself(trained):
  config, run, _, _ = trained
  with open(os.path.join(config.export_dir, "class_names.json"), encoding="utf-8") as f:
    assert json.load(f) == [str(c) for c in range(10)]
  with open(os.path.join(config.export_dir, "model_info.json"), encoding="utf-8") as f:
    info = json.load(f)
  assert info["image_shape"] == [8, 8, 1] and info["num_classes"] == 10
  assert (info["dataset"], info["method"], info["step"]) == ("digits_uniform_0.2", "supervised", 30)
  assert info["use_ema"] and run.model.ema_weights
  assert not os.path.exists(config.export_dir + ".tmp")


def test_export_mode_writes_the_checkpoint_and_replaces_a_previous_export(trained, tmp_path):
  config, _, images, reference = trained
  target = tmp_path / "again"
  export = RunConfig(**{**config.to_json(), "mode": "export", "export_dir": str(target)})
  assert experiment.run(export)["step"] == 30
  (target / "variables" / "stale").write_text("from the first export")
  experiment.run(export)  # a previous export is replaced as a whole
  assert not (target / "variables" / "stale").exists() and not (tmp_path / "again.tmp").exists()
  loaded = tf.saved_model.load(str(target))  # kept: its functions read its variables
  served = loaded.serve(images).numpy()
  np.testing.assert_allclose(served, reference, atol=1e-5)


def test_export_refuses_a_foreign_folder_before_any_work(trained, tmp_path):
  config, _, _, _ = trained
  (tmp_path / "notes.txt").write_text("mine")
  for mode in ("export", "train"):
    with pytest.raises(UserError, match="--export_dir=.*not a previous export") as caught:
      RunConfig(**{**config.to_json(), "mode": mode, "export_dir": str(tmp_path)}).validate()
    assert "\n" not in str(caught.value)
  assert os.listdir(tmp_path) == ["notes.txt"]
  with pytest.raises(UserError, match="--mode=export needs --export_dir"):
    RunConfig(**{**config.to_json(), "mode": "export", "export_dir": None}).validate()


def write_pngs(folder, images: np.ndarray) -> list[str]:
  """Digits as 8-bit grey PNGs with PIL, in two sub-folders and mixed-case suffixes."""
  names = []
  for i, image in enumerate(images):
    name = f"{'a' if i % 2 else 'b'}/img_{i:03d}.{'PNG' if i % 3 == 0 else 'png'}"
    os.makedirs(folder / os.path.dirname(name), exist_ok=True)
    Image.fromarray(image[..., 0], mode="L").save(folder / name)
    names.append(name)
  (folder / "readme.txt").write_text("not an image")
  return names


def read_csv(path):
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def test_predict_on_a_folder_of_pngs_matches_the_reference(trained, tmp_path, capsys):
  config, _, images, reference = trained
  names = write_pngs(tmp_path / "mine", images)
  result = experiment.run(RunConfig(**{**config.to_json(), "mode": "predict", "export_dir": None,
                                       "predict_input": str(tmp_path / "mine")}))
  path = os.path.join(config.run_dir, "predictions", "mine.csv")
  assert result["predictions"] == path and capsys.readouterr().out.strip().endswith(path)
  rows = read_csv(path)
  assert list(rows[0]) == ["path", "predicted_label", "confidence", *(f"prob_{c}" for c in range(10))]
  assert [r["path"] for r in rows] == sorted(names)
  by_name = {n: i for i, n in enumerate(names)}
  for row in rows:
    expected = reference[by_name[row["path"]]]
    assert row["predicted_label"] == str(int(np.argmax(expected)))
    assert float(row["confidence"]) == pytest.approx(float(expected.max()), abs=1e-5)
    np.testing.assert_allclose([float(row[f"prob_{c}"]) for c in range(10)], expected, atol=1e-5)


def test_predict_reads_a_csv_of_relative_paths_and_an_npz(trained, tmp_path):
  config, _, images, reference = trained
  names = write_pngs(tmp_path / "pictures", images[:6])
  listing = tmp_path / "batch.csv"
  listing.write_text("path,note\n" + "".join(f"pictures/{n},x\n" for n in reversed(names)))
  np.savez(tmp_path / "arrays.npz", x=images[:5])
  base = {**config.to_json(), "mode": "predict", "export_dir": None}
  experiment.run(RunConfig(**{**base, "predict_input": str(listing)}))
  rows = read_csv(os.path.join(config.run_dir, "predictions", "batch.csv"))
  assert [r["path"] for r in rows] == [f"pictures/{n}" for n in reversed(names)]  # the CSV's order
  assert [r["predicted_label"] for r in rows] == [str(int(np.argmax(reference[i]))) for i in reversed(range(6))]
  experiment.run(RunConfig(**{**base, "predict_input": str(tmp_path / "arrays.npz")}))
  rows = read_csv(os.path.join(config.run_dir, "predictions", "arrays.csv"))
  assert [r["index"] for r in rows] == [str(i) for i in range(5)]
  assert [r["predicted_label"] for r in rows] == [str(int(np.argmax(reference[i]))) for i in range(5)]


def test_predict_without_a_checkpoint_fails_as_evaluation_does(trained, tmp_path):
  config, _, images, _ = trained
  np.savez(tmp_path / "arrays.npz", x=images[:2])
  codes = []
  for mode in ("evaluation", "predict"):
    with pytest.raises(UserError, match="no checkpoint found") as caught:
      experiment.run(RunConfig(**{**config.to_json(), "mode": mode, "export_dir": None,
                                  "checkpoint_path": str(tmp_path / "empty"),
                                  "predict_input": str(tmp_path / "arrays.npz")}))
    codes.append(caught.value.exit_code)
  assert codes == [1, 1]


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "does not exist"),
    (lambda d: os.makedirs(d / "in"), "holds no images"),
    (lambda d: (os.makedirs(d / "in"), (d / "in" / "broken.png").write_bytes(b"not a png")), "broken.png"),
    (lambda d: (d / "in.csv").write_text("file\nx.png\n"), "no `path` column"),
    (lambda d: (d / "in.csv").write_text("path\nmissing.png\n"), "missing.png does not exist"),
    (lambda d: (d / "in.csv").write_text("path\n"), "lists no images"),
    (lambda d: np.savez(d / "in.npz", y=np.zeros(3)), "no array x"),
    (lambda d: np.savez(d / "in.npz", x=np.zeros((2, 8, 8, 1), np.float32)), "not uint8"),
])
def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path, make, message):
  make(tmp_path)
  target = next((tmp_path / n for n in ("in", "in.csv", "in.npz") if (tmp_path / n).exists()), tmp_path / "in")
  with pytest.raises(UserError, match=message) as caught:
    _, _, images = inputs_lib.read_inputs(str(target), (8, 8, 1))
    images[0:len(images)]   # folder and CSV images are decoded when read
  assert "\n" not in str(caught.value)


def test_folder_images_are_decoded_a_batch_at_a_time(tmp_path, monkeypatch):
  reference = np.random.default_rng(0).integers(0, 256, size=(7, 8, 8), dtype=np.uint8)
  for i, image in enumerate(reference):
    Image.fromarray(image).save(tmp_path / f"{i}.png")
  decoded = []
  real = inputs_lib.load_images
  monkeypatch.setattr(inputs_lib, "load_images", lambda paths, shape: decoded.append(len(paths)) or real(paths, shape))
  key, keys, images = inputs_lib.read_inputs(str(tmp_path), (8, 8, 1))
  assert key == "path" and keys == [f"{i}.png" for i in range(7)] and len(images) == 7 and decoded == []

  class Module:  # serve() as the export's: here the mean pixel of each image, to check rows and order
    def serve(self, batch):
      return tf.reduce_mean(tf.cast(batch, tf.float32), axis=[1, 2])

  probs = predict_lib.probabilities(Module(), images, batch_size=3)
  assert decoded == [3, 3, 1]   # never more than one batch in memory
  np.testing.assert_allclose(probs[:, 0], reference.reshape(7, -1).mean(axis=1), rtol=1e-6)


def test_images_are_converted_to_the_run_channels_and_size():
  rgba = np.zeros((16, 16, 4), np.uint8)
  rgba[..., :3] = [200, 100, 50]
  rgba[..., 3] = 7  # alpha is dropped, not mixed in
  grey = inputs_lib.fit_to_shape(rgba, (8, 8, 1))
  expected = round(0.2989 * 200 + 0.587 * 100 + 0.114 * 50)  # ITU-R 601 luma, as tf.image.rgb_to_grayscale
  assert grey.shape == (8, 8, 1) and grey.dtype == np.uint8 and np.all(np.abs(grey.astype(int) - expected) <= 1)
  colour = inputs_lib.fit_to_shape(np.full((4, 6), 9, np.uint8), (32, 32, 3))
  assert colour.shape == (32, 32, 3) and np.all(colour == 9)


def run_cli(*args):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
  return subprocess.run([sys.executable, "-m", "ieg.main", *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)


def test_cli_errors_are_one_line_with_status_2(tmp_path):
  (tmp_path / "foreign").mkdir()
  (tmp_path / "foreign" / "data.csv").write_text("a,b\n")
  common = ["--dataset=digits_uniform_0.2", "--method=supervised", "--network_name=mnist_cnn",
            f"--checkpoint_path={tmp_path}"]
  for extra, message in [(["--mode=predict"], "--mode=predict needs --predict_input"),
                         (["--mode=predict", f"--predict_input={tmp_path / 'nowhere'}"], "--predict_input="),
                         (["--mode=export", f"--export_dir={tmp_path / 'foreign'}"], "--export_dir=")]:
    done = run_cli(*common, *extra)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr


def test_a_text_run_exports_token_ids_and_refuses_predict(real_data_dir, tmp_path):
  config = tiny_config(tmp_path, dataset="trec_uniform_0.2", network_name="textcnn", data_dir=str(real_data_dir),
                       batch_size=16, max_iteration=4, eval_freq=2)
  run = experiment.build(config)
  experiment.train(run)
  tokens = run.data.x_test[:8].astype(np.int32)
  reference = tf.nn.softmax(run.model.evaluation_logits(tf.constant(tokens)), axis=-1).numpy()
  model = tf.saved_model.load(config.export_dir)
  np.testing.assert_allclose(model.serve(tokens).numpy(), reference, atol=1e-5)
  with open(os.path.join(config.export_dir, "model_info.json"), encoding="utf-8") as f:
    info = json.load(f)
  assert (info["input_dtype"], info["sequence_length"], info["num_classes"]) == ("int32", tokens.shape[1], 6)
  np.savez(tmp_path / "arrays.npz", x=np.zeros((1, 8, 8, 1), np.uint8))
  with pytest.raises(UserError, match="--mode=predict reads images"):
    experiment.run(RunConfig(**{**config.to_json(), "mode": "predict", "export_dir": None,
                                "predict_input": str(tmp_path / "arrays.npz")}))
