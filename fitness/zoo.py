"""Targets from the model zoos people already use: torchvision and timm.

``torchvision:NAME[:WEIGHTS]`` goes through torchvision's weights API: the weights enum
(``IMAGENET1K_V1``, ``DEFAULT``, or the full ``AlexNet_Weights.IMAGENET1K_V1``; default
``DEFAULT``) gives the class names (``meta["categories"]``) and the preprocessing
(``transforms()``: crop size, resize size, mean, std). The weights are downloaded into the
torch hub cache where there is internet; with ``model.weights_path`` they are read from a
local file instead (``torch.load(weights_only=True)``), e.g. the file at the enum's ``url``.

``timm:NAME`` goes through ``timm.create_model``; the model's ``pretrained_cfg`` gives input
size, crop percentage, mean and std, and timm's ImageNet label tables the class names
(``0`` ... ``K-1`` when it has none). Pretrained weights come from timm's hub where there is
internet, or from ``model.weights_path``.
"""
from __future__ import annotations

import torch

from evofool.errors import one_line
from evofool.fitness.imagenet import imagenet_class_names
from evofool.fitness.target import Target
from evofool.fitness.weights_file import load_into


def _torchvision_weights(name: str, weights_name: str | None):
    from torchvision import models
    try:
        enum = models.get_model_weights(name)
    except (ValueError, KeyError):
        known = ", ".join(sorted(models.list_models(module=models))[:12])
        raise ValueError(f"torchvision has no model '{name}' (e.g. {known}, ...)") from None
    wanted = weights_name or "DEFAULT"
    short = wanted.split(".")[-1]
    if "." in wanted and wanted.split(".")[0] != enum.__name__:
        raise ValueError(f"weights '{wanted}' are not {name}'s ({enum.__name__})")
    try:
        return enum[short]
    except KeyError:
        raise ValueError(f"torchvision model '{name}' has no weights '{wanted}' (available: "
                         f"{', '.join(enum.__members__)})") from None


def build_torchvision(rest: str, device: torch.device, weights_path: str | None) -> Target:
    """``rest`` = ``NAME`` or ``NAME:WEIGHTS``."""
    from torchvision import models
    name, _, weights_name = rest.partition(":")
    weights = _torchvision_weights(name, weights_name or None)
    builder = models.get_model_builder(name)
    categories = list(weights.meta["categories"])
    if weights_path is not None:
        model = load_into(builder(weights=None, num_classes=len(categories)), weights_path)
    else:
        try:
            model = builder(weights=weights)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            reason = one_line(error, 120)
            raise ValueError(f"cannot download the weights {weights} ({reason}); offline, "
                             f"fetch {weights.url} elsewhere and set model.weights_path: FILE"
                             ) from None
    transform = weights.transforms()
    crop = tuple(transform.crop_size) * (2 // len(transform.crop_size))
    resize = tuple(transform.resize_size) * (2 // len(transform.resize_size))
    return Target(name=f"torchvision:{rest}", model=model, class_names=categories,
                  input_size=crop, channels=3, mean=tuple(transform.mean),
                  std=tuple(transform.std), device=device,
                  resize_size=resize if min(resize) >= min(crop) else None)


def _timm_class_names(model, num_classes: int) -> list[str]:
    if num_classes == 1000:
        return list(imagenet_class_names())
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset
        subset = infer_imagenet_subset(model)
        if subset:
            info = ImageNetInfo(subset)
            if info.num_classes() == num_classes:
                return [info.index_to_description(i) for i in range(num_classes)]
    except (ImportError, ValueError, KeyError, OSError):
        pass
    return [str(i) for i in range(num_classes)]


def build_timm(name: str, device: torch.device, weights_path: str | None) -> Target:
    try:
        import timm
    except ImportError:
        raise ImportError("needs the package timm: pip install 'evofool[zoo]'") from None
    if not timm.is_model(name):
        similar = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        raise ValueError(f"timm has no model '{name}'"
                         + (f" (similar: {', '.join(similar)})" if similar else ""))
    if weights_path is not None:
        model = load_into(timm.create_model(name, pretrained=False), weights_path)
    else:
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as error:  # hub and network errors come in many types
            reason = one_line(error, 120)
            raise ValueError(f"cannot download pretrained weights for '{name}' ({reason}); "
                             "offline, set model.weights_path: FILE") from None
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    channels, height, width = cfg.get("input_size", (3, 224, 224))
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    num_classes = int(getattr(model, "num_classes", 0) or cfg.get("num_classes", 1000))
    return Target(name=f"timm:{name}", model=model,
                  class_names=_timm_class_names(model, num_classes),
                  input_size=(height, width), channels=channels,
                  mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406)))[:channels],
                  std=tuple(cfg.get("std", (0.229, 0.224, 0.225)))[:channels],
                  device=device,
                  resize_size=(round(height / crop_pct), round(width / crop_pct)))
