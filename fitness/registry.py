"""One registry of target specs (the strings a YAML's ``model:`` holds)."""
from __future__ import annotations

from typing import Callable

import torch

from evofool.errors import EvofoolError
from evofool.fitness.target import Target


def _lenet_mnist(device: torch.device, weights_path: str | None) -> Target:
    from evofool.fitness.lenet import build_lenet_target
    return build_lenet_target(device, weights_path)


_TARGETS: dict[str, Callable[[torch.device, str | None], Target]] = {
    "lenet-mnist": _lenet_mnist,
}


def available_targets() -> list[str]:
    return sorted(_TARGETS)


def resolve_device(name: str) -> torch.device:
    """``auto`` means the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvofoolError(f"device '{name}' was asked for but no CUDA GPU is available "
                           "(use device: auto or cpu)")
    return device


def build_target(spec: str, device: torch.device, weights_path: str | None = None) -> Target:
    """The target for ``spec`` on ``device``; a bad spec or weights file is an EvofoolError."""
    factory = _TARGETS.get(spec)
    if factory is None:
        raise EvofoolError(f"unknown model '{spec}' (available: {', '.join(available_targets())})")
    try:
        return factory(device, weights_path)
    except (ValueError, FileNotFoundError) as exc:
        raise EvofoolError(f"model '{spec}': {exc}") from None
