"""Label-noise models: how clean labels become the noisy training labels (`<noise>` of `--dataset`).

`registry` holds the types, the name -> model table and the functions that apply a model; it
imports none of the models. Importing this package imports the models below, in this order, and
that fills the table. A new noise model is one decorated function in `matrix` (a transition
matrix) or `instance` (a function of whole examples), or a new module listed here.
"""
from datasets.noise.registry import (NOISE_STREAM, ExampleNoise, ExampleNoiseInput, NoiseModel,
                                     NoisyLabels, apply_example_noise, check_supported,
                                     corrupt_labels, expected_flip_rate, get_model, noise_names,
                                     register_example_noise, register_noise, stream_seed,
                                     transition_matrix)

# The models register themselves on import.
from datasets.noise import matrix  # noqa: F401,E402  uniform, symmetric, pairflip, asymmetric, none
from datasets.noise import instance  # noqa: F401,E402  dependent (label file), openset

__all__ = [
    "NOISE_STREAM",
    "ExampleNoise",
    "ExampleNoiseInput",
    "NoiseModel",
    "NoisyLabels",
    "apply_example_noise",
    "check_supported",
    "corrupt_labels",
    "expected_flip_rate",
    "get_model",
    "noise_names",
    "register_example_noise",
    "register_noise",
    "stream_seed",
    "transition_matrix",
]
