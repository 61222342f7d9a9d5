"""Local weights files (``model.weights_path``): read safely, complain in one line.

``.safetensors`` files are read with safetensors; anything else with
``torch.load(weights_only=True)``, which unpickles tensors and plain containers only, never
code. A checkpoint that wraps its state dict (``{"state_dict": ...}`` or
``{"model": ...}``, as training scripts often save) is unwrapped.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from evofool.errors import one_line


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, on the CPU, in the file's order.

    Raises:
        FileNotFoundError, ValueError: one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file '{path}' not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpicklers and format readers fail in many ways
        raise ValueError(f"weights file '{path}' is not a readable state dict "
                         f"({one_line(error, 200)})") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not data or not all(
            isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"weights file '{path}' holds no state dict (a mapping of names "
                         "to tensors)")
    return data


def load_into(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load a weights file into ``model`` by name, strictly; one-line errors."""
    tensors = load_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    if missing or unexpected:
        parts = ([f"{len(missing)} missing (e.g. {missing[0]!r})"] if missing else []) + \
                ([f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})"] if unexpected else [])
        raise ValueError(f"weights file '{path}' does not fit the model: tensors "
                         f"{', '.join(parts)}")
    for name, tensor in own.items():
        if tuple(tensors[name].shape) != tuple(tensor.shape):
            raise ValueError(f"weights file '{path}': tensor {name!r} has shape "
                             f"{tuple(tensors[name].shape)}, the model needs "
                             f"{tuple(tensor.shape)}")
    model.load_state_dict(tensors)
    return model
