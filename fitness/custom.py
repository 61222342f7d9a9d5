"""Targets for any other classifier: a TorchScript file or a Python factory.

``torchscript:FILE`` loads ``FILE`` with ``torch.jit.load``. What the model expects is read
from ``FILE.json`` beside it when there is one (the keys of :class:`ModelInfo`); without it,
the model is taken to be an ImageNet classifier (224 x 224 RGB, ImageNet mean/std, the 1,000
ImageNet class names).

``python:MODULE:FACTORY`` imports ``MODULE`` (a dotted module name on ``sys.path`` or in the
current directory) and calls ``FACTORY()`` (with ``weights_path=...`` when
``model.weights_path`` is set). The factory returns either a
:class:`~evofool.fitness.target.Target` (used as it is, moved to the run's device), or a
``(torch.nn.Module, dict)`` pair whose dict holds :class:`ModelInfo` keys, or a bare
``torch.nn.Module`` (ImageNet defaults, as above). Example::

    # my_models.py
    def cifar_net(weights_path=None):
        net = MyNet(); net.load_state_dict(torch.load(weights_path, weights_only=True))
        return net, {"input_size": 32, "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26],
                     "class_names": ["airplane", "automobile", ...]}

Either way the module must map normalized (N, C, H, W) float images to (N, K) logits; the
registry checks that with one probe forward pass before a run starts.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from evofool.bounded_yaml import MAX_YAML_BYTES
from evofool.errors import EvofoolError, one_line
from evofool.plugins import import_module
from evofool.fitness.imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_class_names
from evofool.fitness.target import Target
from evofool.schema import MAX_CLASS_ID, MAX_IMAGE_SIDE, from_dict


def _sides(limit: int):
    """``check`` metadata for a side in pixels or [height, width], each in [1, limit]."""
    def ok(value) -> bool:
        sides = [value, value] if isinstance(value, int) else value
        return len(sides) == 2 and all(0 < side <= limit for side in sides)
    return {"check": (ok, f"a positive size in pixels, or [height, width], at most {limit:,}")}


@dataclass
class ModelInfo:
    """What a custom model expects; every key is optional (defaults: an ImageNet classifier).

    ``input_size``: side in pixels, or [height, width]; ``channels``: 1 or 3; ``mean``,
    ``std``: one number per channel, for [0, 1] pixels (null: ImageNet's for RGB, 0 and 1 for
    gray); ``class_names``: a list with one name per output, or ``imagenet``;
    ``resize_size``: the image side that 10 crops are cut from (null: input / 0.875).
    """

    input_size: int | list[int] = field(default=224, metadata=_sides(MAX_IMAGE_SIDE))
    channels: Literal[1, 3] = 3
    mean: list[float] | None = None
    std: list[float] | None = None
    class_names: list[str] | Literal["imagenet"] = field(default="imagenet", metadata={
        "check": (lambda v: v == "imagenet" or 0 < len(v) <= MAX_CLASS_ID,
                  f"'imagenet' or a list of 1 to {MAX_CLASS_ID:,} class names")})
    resize_size: int | list[int] | None = field(default=None, metadata=_sides(
        2 * MAX_IMAGE_SIDE))

    def target(self, name: str, model: torch.nn.Module, device: torch.device) -> Target:
        def pair(value, key: str) -> tuple[int, int]:
            size = [value, value] if isinstance(value, int) else list(value)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"{key} {value!r} must be a positive side or [height, width]")
            return size[0], size[1]

        gray = self.channels == 1
        mean = self.mean if self.mean is not None else ([0.0] if gray else IMAGENET_MEAN)
        std = self.std if self.std is not None else ([1.0] if gray else IMAGENET_STD)
        names = list(imagenet_class_names()) if self.class_names == "imagenet" \
            else list(self.class_names)
        return Target(name=name, model=model, class_names=names,
                      input_size=pair(self.input_size, "input_size"), channels=self.channels,
                      mean=tuple(mean), std=tuple(std), device=device,
                      resize_size=None if self.resize_size is None
                      else pair(self.resize_size, "resize_size"))


def model_info(data: dict, source: str) -> ModelInfo:
    """Validate a metadata mapping (from FILE.json or a factory) into a ModelInfo."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: model metadata must be a mapping of ModelInfo keys")
    try:
        return from_dict(ModelInfo, data, "", source)
    except EvofoolError as error:
        raise ValueError(str(error)) from None


def build_torchscript(file: str, device: torch.device, weights_path: str | None) -> Target:
    path = Path(file)
    if weights_path is not None:
        raise ValueError("a TorchScript file holds its weights: model.weights_path does not "
                         "apply")
    if not path.is_file():
        raise FileNotFoundError(f"TorchScript file '{path}' not found")
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated, TorchScript files are not
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as error:
        raise ValueError(f"'{path}' is not a TorchScript file ({one_line(error, 200)})"
                         ) from None
    sidecar = Path(str(path) + ".json")
    info = ModelInfo()
    if sidecar.is_file():
        try:
            with open(sidecar, "rb") as handle:
                raw = handle.read(MAX_YAML_BYTES + 1)
            if len(raw) > MAX_YAML_BYTES:
                raise ValueError(f"larger than {MAX_YAML_BYTES:,} bytes")
            data = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            raise ValueError(f"'{sidecar}' is not valid JSON ({one_line(error, 200)})") from None
        info = model_info(data, str(sidecar))
    return info.target(f"torchscript:{file}", model, device)


def _failure(error: BaseException) -> str:
    """What user code did instead of returning: ``raised KeyError: 'x'``, ``called
    sys.exit(3)``."""
    if isinstance(error, SystemExit):
        return f"called sys.exit({one_line(error, 80) if error.code is not None else ''})"
    return f"raised {type(error).__name__}: {one_line(error, 200)}"


def build_python(rest: str, device: torch.device, weights_path: str | None) -> Target:
    """``rest`` = ``MODULE:FACTORY``. Whatever the module or factory does (raise anything,
    call ``sys.exit``) becomes a one-line ValueError naming the spec."""
    module_name, _, factory_name = rest.rpartition(":")
    if not module_name or not factory_name:
        raise ValueError("expected python:MODULE:FACTORY, e.g. python:my_models:cifar_net")
    try:
        module = import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module '{module_name}' ({one_line(error, 200)})"
                         ) from None
    except (Exception, SystemExit) as error:  # noqa: BLE001 - user code, reported in one line
        raise ValueError(f"importing module '{module_name}' {_failure(error)}") from None
    try:
        factory = getattr(module, factory_name, None)
    except (Exception, SystemExit):  # noqa: BLE001 - a module __getattr__ that fails
        factory = None
    if not callable(factory):
        raise ValueError(f"module '{module_name}' has no function '{factory_name}'")
    try:
        result = factory(**({"weights_path": os.fspath(weights_path)} if weights_path else {}))
    except (Exception, SystemExit) as error:  # noqa: BLE001 - user code, reported in one line
        raise ValueError(f"factory '{factory_name}' {_failure(error)}") from None
    name = f"python:{rest}"
    try:
        if isinstance(result, Target):
            return dataclasses.replace(result, name=name, device=device)
        if isinstance(result, torch.nn.Module):
            return ModelInfo().target(name, result, device)
        if (isinstance(result, tuple) and len(result) == 2
                and isinstance(result[0], torch.nn.Module)):
            return model_info(result[1], f"{name} metadata").target(name, result[0], device)
    except ValueError:
        raise
    except (Exception, SystemExit) as error:  # noqa: BLE001 - the model's own code failed
        raise ValueError(f"building the target from factory '{factory_name}' "
                         f"{_failure(error)}") from None
    raise ValueError(f"factory '{factory_name}' returned a {type(result).__name__}; expected "
                     "a Target, a torch.nn.Module, or (module, metadata dict)")
