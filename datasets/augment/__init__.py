"""Image augmentation in TensorFlow ops, pixel for pixel as IEG's Pillow code: the strong view.

From the bottom: `ops` (the image ops), `levels` (a policy's integer level -> an op call),
`policy` (draw a plan, then run it), the policy tables `autoaugment` and `randaugment`, and
`strong_view` (policy, pad-and-crop, flip, cutout; `--aug_type` picks the policy). A new policy is
one table module here plus one entry in `strong_view`'s registry.

The package exports the strong-view module itself (`from datasets.augment import strong_view`)
and the names a caller needs from it.
"""
from datasets.augment import strong_view
from datasets.augment.strong_view import (AUG_TYPES, imagenet_eval_view, imagenet_strong_view,
                                          imagenet_weak_view)

__all__ = [
    "AUG_TYPES",
    "imagenet_eval_view",
    "imagenet_strong_view",
    "imagenet_weak_view",
    "strong_view",
]
