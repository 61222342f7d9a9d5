"""Model factories for the ``python:MODULE:FACTORY`` target spec (tests put tests/ on sys.path).

Small, fast and deterministic: a tiny CNN on 32 x 32 RGB images with 10 classes, and broken
variants for the one-line-error tests.
"""
import os
import signal

import torch
from torch import nn

from evofool.fitness.target import Target

INFO = {"input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
        "class_names": [f"thing {i}" for i in range(10)]}


class TinyNet(nn.Module):
    """conv 8@3x3 -> BN -> ReLU -> pool -> conv 16@3x3 -> ReLU -> global pool -> fc 10."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * 4.0  # sharper softmax, so fooling is visible


class FlatNet(nn.Module):
    """A linear classifier that accepts 32 x 32 RGB images only (like a fixed-size fc)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class NanNet(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


def tiny_net(weights_path=None):
    torch.manual_seed(0)
    net = TinyNet()
    if weights_path is not None:
        net.load_state_dict(torch.load(weights_path, weights_only=True))
    return net, dict(INFO)


def tiny_target():
    """A factory may also return a whole Target (the registry sets the device)."""
    net, info = tiny_net()
    return Target(name="tiny", model=net, class_names=info["class_names"], input_size=(32, 32),
                  channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, device=torch.device("cpu"))


def flat_net_told_224():
    torch.manual_seed(0)
    return FlatNet(), {**INFO, "input_size": 224}


def nan_net():
    return NanNet(), dict(INFO)


def twelve_outputs_ten_names():
    torch.manual_seed(0)
    return TinyNet(classes=12), dict(INFO)


def not_a_model():
    return "a string"


def bad_metadata():
    return TinyNet(), {**INFO, "channels": 4}


class SometimesNanNet(TinyNet):
    """NaN logits for every third image of a batch (index 1, 4, 7, ...), like an fp16 model
    that overflows on some inputs; the one-image probe before a run still passes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        out[1::3] = float("nan")
        return out


def sometimes_nan_net():
    torch.manual_seed(0)
    return SometimesNanNet(), dict(INFO)


class StopOnCall(nn.Module):
    """Stops the process that scores with it, from inside scoring: on its Nth forward call
    (counting the probe) it sends its own process a real signal, or raises. The plan comes
    from EVOFOOL_TEST_STOP, e.g. "SIGINT@7", "SIGKILL@12" or "raise@5"; unset: never."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        action, _, at = os.environ.get("EVOFOOL_TEST_STOP", "none@0").partition("@")
        self.action, self.at, self.calls = action, int(at), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            if self.action == "raise":
                raise RuntimeError(f"injected failure in forward call {self.calls}")
            os.kill(os.getpid(), getattr(signal, self.action))
        return self.inner(x)  # a SIGINT/SIGTERM handler runs by here: still mid-scoring


def stopping_tiny_net():
    net, info = tiny_net()
    return StopOnCall(net), info


class NanInBatchesNet(TinyNet):
    """NaN for every batch of more than one image: passes the one-image probe, then fails
    every generation (the case of a model that breaks only at scale)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out * float("nan") if len(x) > 1 else out


def nan_in_batches_net():
    torch.manual_seed(0)
    return NanInBatchesNet(), dict(INFO)


class DieOnceNet(TinyNet):
    """kill -9 of its own process on its Nth forward call, once in all: an evaluation worker
    lost mid-generation. EVOFOOL_TEST_DIE="N@MARKER": the process that creates MARKER first
    dies (so its replacement and the other workers go on)."""

    def __init__(self) -> None:
        super().__init__()
        at, _, self.marker = os.environ.get("EVOFOOL_TEST_DIE", "0@").partition("@")
        self.at, self.calls = int(at), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


def die_once_net():
    torch.manual_seed(0)
    return DieOnceNet(), dict(INFO)
