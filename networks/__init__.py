"""Image classifiers, selected by name (`--network_name`).

Every network is a functional `keras.Model` from float32 images [B, H, W, C] (already scaled by
the data pipeline) to logits [B, K], with no weight regularisers inside: the training code adds
the coupled L2 term itself, using `default_weight_decay(name)` unless told otherwise.
"""
from networks.registry import (build_network, default_weight_decay, has_batch_norm,
                               network_names, register_network, training_defaults)

# Importing the family modules fills the registry.
from networks import cnn as _cnn  # noqa: F401,E402
from networks import resnet as _resnet  # noqa: F401,E402
from networks import textcnn as _textcnn  # noqa: F401,E402
from networks import wrn as _wrn  # noqa: F401,E402

__all__ = [
    "build_network",
    "default_weight_decay",
    "has_batch_norm",
    "network_names",
    "register_network",
    "training_defaults",
]
