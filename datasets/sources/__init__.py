"""Where the examples come from: one module per source family, registered by name.

`registry` holds the types (`RawDataset`, the source kinds) and the name -> loader table and imports
none of the loaders. Importing this package imports every loader below, in this order, and that
fills the table: the order is the order of `source_names()`. A new source is one module here that
decorates its loader with `@register_source('name')`, plus one line in the list below.
"""
from datasets.sources.registry import (KIND_IMAGE_FILES, KIND_IMAGES, KIND_TEXT, SOURCE_KINDS,
                                       RawDataset, SourceOptions, check_raw, family_names,
                                       has_real_noise, is_source_name, labels_as_given,
                                       load_file_source, load_raw, register_family,
                                       register_source, required_flag, source_kind, source_names)

# The loaders register themselves on import.
from datasets.sources import standard  # noqa: F401,E402  MNIST, Fashion-MNIST, CIFAR-10/100
from datasets.sources import digits  # noqa: F401,E402  scikit-learn's digits, no download
from datasets.sources import cifar_subset  # noqa: F401,E402  4000/1000 real CIFAR-10 images
from datasets.sources import own  # noqa: F401,E402  the user's own data: .npz, folders, CSV, tfds:<name>
from datasets.sources import cifar_n  # noqa: F401,E402  CIFAR-10N/100N human labels
from datasets.sources import clothing1m  # noqa: F401,E402  streamed image files
from datasets.sources import trec  # noqa: F401,E402  question text as token ids
from datasets.sources import webvision  # noqa: F401,E402  streamed image files

__all__ = [
    "KIND_IMAGE_FILES",
    "KIND_IMAGES",
    "KIND_TEXT",
    "SOURCE_KINDS",
    "RawDataset",
    "SourceOptions",
    "check_raw",
    "family_names",
    "has_real_noise",
    "is_source_name",
    "labels_as_given",
    "load_file_source",
    "load_raw",
    "register_family",
    "register_source",
    "required_flag",
    "source_kind",
    "source_names",
]
