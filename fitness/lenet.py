"""The paper's MNIST classifier: Caffe's LeNet, with weights shipped as float16 safetensors.

Nguyen, Yosinski & Clune (2015) fool "the well-known LeNet architecture" as trained by the
Caffe MNIST example. This module reproduces that network in torch, loads and saves its
weights, and wraps it as a :class:`~evofool.fitness.target.Target` named ``lenet-mnist``.

Weights are stored as float16 (about 0.9 MB instead of 1.7 MB) because they are package
data; they are converted back to float32 on load, and the accuracy reported in the JSON
sidecar is measured after that round trip.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from evofool.files import atomic_path

from .target import Target

MNIST_MEAN: tuple[float, ...] = (0.1307,)
MNIST_STD: tuple[float, ...] = (0.3081,)
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "lenet_mnist.safetensors"
DIGITS = 10
FOOLING_CLASS = 10    # the output a retrained LeNet (paper sec. 5) gives to fooling images
CLASS_NAMES: tuple[str, ...] = tuple(str(digit) for digit in range(DIGITS)) + ("fooling",)
OUTPUTS = (DIGITS, DIGITS + 1)   # the output counts a LeNet may have


class LeNet(nn.Module):
    """Caffe's ``examples/mnist/lenet.prototxt``.

    conv 20@5x5 -> maxpool 2 -> conv 50@5x5 -> maxpool 2 -> fc 500 -> ReLU -> fc 10.
    As in Caffe there is no nonlinearity after the convolutions (only max pooling), and the
    output is raw logits; :class:`Target` applies the softmax.
    Input: normalized (N, 1, 28, 28) images. ``num_classes``: 10 (digits), or 11 (digits
    plus the fooling class of a retrained network).
    """

    def __init__(self, num_classes: int = DIGITS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5)    # 28 -> 24
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)   # 12 -> 8
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, num_classes)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv1(x))                    # 20 x 12 x 12
        x = self.pool(self.conv2(x))                    # 50 x 4 x 4
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def _expected_shapes(num_classes: int = DIGITS) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in LeNet(num_classes).state_dict().items()}


def lenet_class_names(num_classes: int) -> list[str]:
    """"0".."9", plus "fooling" for the 11th output of a retrained LeNet."""
    if num_classes not in OUTPUTS:
        raise ValueError(f"a LeNet has {OUTPUTS[0]} outputs (digits) or {OUTPUTS[1]} (digits "
                         f"and fooling), not {num_classes}")
    return list(CLASS_NAMES[:num_classes])


def load_lenet(weights_path: str | os.PathLike | None = None) -> LeNet:
    """Load LeNet weights from a safetensors file (default: the shipped ones), in eval mode,
    with as many outputs as the file's ``fc2`` has (10, or 11 with the fooling class).

    Raises:
        ValueError: one line naming the file and what is wrong with it (missing, not
            safetensors, missing/unexpected/misshapen tensors, non-finite values, an
            output count other than 10 or 11).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(weights_path) if weights_path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        hint = (" (train it with: evofool train lenet --data-dir DIR --out " f"{path})"
                if weights_path is None else "")
        raise ValueError(f"{path}: LeNet weights file not found{hint}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None

    expected = _expected_shapes()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        problems = ([f"missing tensors {missing}"] if missing else []) + \
                   ([f"unexpected tensors {unexpected}"] if unexpected else [])
        raise ValueError(f"{path}: not LeNet weights ({'; '.join(problems)})")
    fc2 = tuple(tensors["fc2.weight"].shape)
    outputs = fc2[0] if len(fc2) == 2 else None
    if outputs not in OUTPUTS:
        raise ValueError(f"{path}: tensor 'fc2.weight' has shape {fc2}, expected "
                         f"({OUTPUTS[0]}, 500) for the digits or ({OUTPUTS[1]}, 500) for the "
                         "digits and the fooling class")
    expected = _expected_shapes(outputs)
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                             f"expected {shape}")
        if not tensors[name].is_floating_point() or not torch.isfinite(tensors[name]).all():
            raise ValueError(f"{path}: tensor {name!r} is not finite floating point")

    model = LeNet(outputs)
    model.load_state_dict({name: t.to(torch.float32) for name, t in tensors.items()})
    return model.eval()


def save_lenet(model: LeNet, path: str | os.PathLike) -> Path:
    """Write the model's weights as float16 safetensors, atomically (temp file + rename).

    Atomic so that an interrupted training run never leaves a truncated weights file
    where :func:`load_lenet` would find it.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu", torch.float16).contiguous()
               for name, t in model.state_dict().items()}
    with atomic_path(path) as tmp:
        # One metadata key only: safetensors writes metadata in hash-map order, so several
        # keys would make byte-identical weights produce different files.
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    return path


def build_lenet_target(device: torch.device | str,
                       weights_path: str | os.PathLike | None = None) -> Target:
    """The ``lenet-mnist`` fitness target: LeNet with MNIST normalization; classes "0".."9",
    and "fooling" when the weights have an 11th output."""
    model = load_lenet(weights_path)
    return Target(
        name="lenet-mnist",
        model=model,
        class_names=lenet_class_names(model.fc2.out_features),
        input_size=(28, 28),
        channels=1,
        mean=MNIST_MEAN,
        std=MNIST_STD,
        device=torch.device(device),
    )
