"""The user's own data as `--dataset` sources, one module per form.

custom: an .npz of arrays (`--dataset_file`); folder: class folders of image files
(`--dataset_dir`); csv: a table of image paths and labels (`--dataset_file`); tfds:<name>: an
image classification dataset already prepared in the TFDS data dir (`--data_dir`). The image
forms share `decode` (files -> uint8 arrays) and `splits` (the --test_fraction holdout).
Importing this package registers them, in this order.
"""
from datasets.sources.own import custom  # noqa: F401  .npz arrays
from datasets.sources.own import folder  # noqa: F401  DIR/train/<class>/*.png
from datasets.sources.own import labels_csv  # noqa: F401  path,label[,split]
from datasets.sources.own import tfds_family  # noqa: F401  tfds:<name>
