"""The tiny network and batches the per-method tests share: K classes of D features, small enough
that every reference is a few lines of numpy."""
import keras
import numpy as np

K, D = 3, 4


def linear_network(seed: int = 0, input_shape: tuple = (D,), scale: float = 1.0) -> keras.Model:
  """Dense(K) on the (flattened) input, weights drawn from `seed` and multiplied by `scale`."""
  keras.utils.set_random_seed(seed)
  inputs = keras.Input(input_shape)
  flat = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
  network = keras.Model(inputs, keras.layers.Dense(K)(flat))
  if scale != 1.0:
    for v in network.trainable_variables:
      v.assign(v.numpy() * scale)
  return network


def softmax(z: np.ndarray) -> np.ndarray:
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def random_batch(n: int, seed: int = 1) -> dict:
  """`n` Gaussian feature rows with uniform noisy labels and their dataset indices 0..n-1."""
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(n, D)).astype(np.float32), "label": rng.integers(0, K, n).astype(np.int32),
          "index": np.arange(n, dtype=np.int64)}
