"""ImageNet conventions that many targets share: the 1,000 class names and the normalization.

The class names come from torchvision's weights metadata (``meta["categories"]`` of any
ImageNet-1k weights enum), which ships inside the torchvision package: no download. They are
in the standard ILSVRC-2012 synset order that torchvision, timm and Caffe models all use, so
output ``i`` of any ImageNet-1k classifier is ``imagenet_class_names()[i]``.
"""
from __future__ import annotations

from functools import lru_cache

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IMAGENET_CLASSES = 1000
# The usual ImageNet evaluation resizes to 256 and crops 224: crop / resize = 0.875.
DEFAULT_CROP_PCT = 0.875


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ILSVRC-2012 class names, index = model output (e.g. 967 = ``espresso``)."""
    from torchvision.models import ResNet18_Weights
    names = tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(names) == IMAGENET_CLASSES
    return names


def resize_for_crop(crop: tuple[int, int], crop_pct: float = DEFAULT_CROP_PCT) -> tuple[int, int]:
    """The image size that crops of ``crop`` pixels are cut from (224 -> 256 at 0.875)."""
    return (round(crop[0] / crop_pct), round(crop[1] / crop_pct))
