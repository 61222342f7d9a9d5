"""A fitness target: a torch image classifier wrapped so that evolution can score batches.

The contract every target keeps (as in Foolbox / pytorch-ood): images come in as float32
NCHW tensors with pixels in [0, 1]; resizing and normalization happen inside the target;
``scores`` returns softmax confidences, one row per image, one column per class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Target:
    """A classifier plus what evolution needs to know about it.

    Attributes:
        name: the spec it was built from, e.g. ``"lenet-mnist"``.
        model: a torch module in eval mode that maps normalized images to logits.
        class_names: one name per output class.
        input_size: (height, width) in pixels that the model expects.
        channels: 1 (grayscale) or 3 (RGB).
        mean, std: per-channel normalization applied after resizing.
        device: where the model runs.
    """

    name: str
    model: torch.nn.Module
    class_names: list[str]
    input_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device

    def __post_init__(self) -> None:
        self.model = self.model.to(self.device).eval()
        shape = (1, self.channels, 1, 1)
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(shape)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(shape)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Move [0, 1] NCHW images to the device, match channels and size, normalize."""
        images = images.to(self.device, dtype=torch.float32, non_blocking=True)
        if images.shape[1] != self.channels:
            if images.shape[1] == 3 and self.channels == 1:
                weights = torch.tensor([0.299, 0.587, 0.114], device=self.device).view(1, 3, 1, 1)
                images = (images * weights).sum(dim=1, keepdim=True)
            elif images.shape[1] == 1 and self.channels == 3:
                images = images.expand(-1, 3, -1, -1)
            else:
                raise ValueError(f"cannot feed {images.shape[1]}-channel images to a "
                                 f"{self.channels}-channel model")
        if tuple(images.shape[-2:]) != tuple(self.input_size):
            images = F.interpolate(images, size=self.input_size, mode="bilinear",
                                   align_corners=False, antialias=True)
        return (images - self._mean) / self._std

    @torch.inference_mode()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(images))

    def scores(self, images: torch.Tensor) -> np.ndarray:
        """Softmax confidence of every class for every image: float64 array (N, num_classes).

        The softmax is taken in float64 so that confidences near 1 stay distinguishable
        (float32 rounds 1 - 1e-8 to exactly 1.0, which would stall the elite comparison).
        """
        logits = self.logits(images)
        return torch.softmax(logits.double(), dim=1).cpu().numpy()
