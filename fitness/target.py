"""A fitness target: a torch image classifier wrapped so that evolution can score batches.

The contract every target keeps (as in Foolbox / pytorch-ood): images come in as float32
NCHW tensors with pixels in [0, 1], at any size; resizing, cropping and normalization happen
inside the target; ``scores`` returns softmax confidences, one row per image, one column per
scored class.

How a batch is scored (``scores``):
  1. ``prepare``: match channels, resize to ``input_size`` (``crops: 1``) or to
     ``resize_size`` and cut the paper's 10 crops of ``input_size`` (``crops: 10``: 4
     corners + centre, each also mirrored), normalize with ``mean``/``std``;
  2. the model's forward pass under ``torch.inference_mode``, optionally in bf16/fp16
     autocast and channels-last memory format; a batch that does not fit in memory is split
     in halves until it does (the smaller size is kept for later batches);
  3. softmax over *all* the model's classes in float64, averaged over the crops (the paper's
     fitness: mean of the 10 softmax probabilities), then the scored classes' columns.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from evofool.errors import one_line
from evofool.schema import show

Precision = Literal["fp32", "bf16", "fp16"]
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA, MPS and CPU allocators all say "out of memory" (CUDA's is a subclass too)."""
    oom_type = getattr(torch, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(error, oom_type)) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


def ten_crops(images: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) -> (N * 10, C, h, w): per image the 4 corner crops, the centre crop and
    the 5 mirrored (left-right) copies, as Caffe's and Krizhevsky's 10-crop evaluation."""
    height, width = images.shape[-2:]
    h, w = crop
    if h > height or w > width:
        raise ValueError(f"crop {crop} is larger than the image {(height, width)}")
    top, left = (height - h) // 2, (width - w) // 2
    corners = [(0, 0), (0, width - w), (height - h, 0), (height - h, width - w), (top, left)]
    crops = [images[:, :, y:y + h, x:x + w] for y, x in corners]
    crops += [c.flip(-1) for c in crops]
    return torch.stack(crops, dim=1).reshape(-1, images.shape[1], h, w)


class ScoredClasses:
    """What a scorer with ``class_names`` and ``classes`` (None: all) says about its
    classes: shared by :class:`Target` and :class:`~evofool.fitness.ensemble.Ensemble`."""

    class_names: list[str]
    classes: list[int] | None

    @property
    def num_classes(self) -> int:
        """How many classes the model outputs (1,000 for ImageNet)."""
        return len(self.class_names)

    @property
    def class_ids(self) -> list[int]:
        """The model outputs that ``scores`` returns, one column each."""
        return list(range(self.num_classes)) if self.classes is None else list(self.classes)

    @property
    def scored_names(self) -> list[str]:
        """The names of :attr:`class_ids`: the archive's cells."""
        return [self.class_names[c] for c in self.class_ids]


@dataclass
class Target(ScoredClasses):
    """A classifier plus what evolution needs to know about it.

    Attributes:
        name: the spec it was built from, e.g. ``"lenet-mnist"``.
        model: a torch module in eval mode that maps normalized images to logits.
        class_names: one name per model output (e.g. the 1,000 ImageNet classes).
        input_size: (height, width) in pixels that the model takes (its crop size).
        channels: 1 (grayscale) or 3 (RGB).
        mean, std: per-channel normalization applied after resizing.
        device: where the model runs.
        resize_size: (height, width) an image is resized to before the 10 crops are cut
            (``crops: 10``); None: ``input_size`` / 0.875 (256 for 224), as ImageNet models.
        classes: model outputs to score, in this order (None: all). The softmax is still
            over all outputs; ``scores`` returns only these columns.
        crops: 1 (the whole image resized to ``input_size``) or 10 (the paper's scoring).
        precision: ``fp32``, or ``bf16`` / ``fp16`` autocast for the forward pass.
        channels_last: run the model in channels-last memory format (faster convolutions
            on recent CPUs and on GPUs with tensor cores).
    """

    name: str
    model: torch.nn.Module
    class_names: list[str]
    input_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    resize_size: tuple[int, int] | None = None
    classes: list[int] | None = None
    crops: int = 1
    precision: Precision = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        self.device = torch.device(self.device)
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if min(self.input_size) < 1:
            raise ValueError(f"input size {self.input_size} is not positive")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values each "
                             f"(got {len(self.mean)} and {len(self.std)})")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std {tuple(self.std)} must be positive")
        if self.crops not in (1, 10):
            raise ValueError(f"crops must be 1 or 10, not {self.crops}")
        if self.precision not in ("fp32", *AUTOCAST_DTYPES):
            raise ValueError(f"precision must be fp32, bf16 or fp16, not {self.precision!r}")
        if self.resize_size is None:
            from evofool.fitness.imagenet import resize_for_crop
            self.resize_size = resize_for_crop(self.input_size)
        self.resize_size = (int(self.resize_size[0]), int(self.resize_size[1]))
        if self.resize_size[0] < self.input_size[0] or self.resize_size[1] < self.input_size[1]:
            raise ValueError(f"resize size {self.resize_size} is smaller than the crop "
                             f"{self.input_size}")
        if self.classes is not None:
            self.classes = [int(c) for c in self.classes]
            bad = [c for c in self.classes if not 0 <= c < self.num_classes]
            if bad:
                raise ValueError(f"classes {show(bad)} out of range (the model has classes "
                                 f"0..{self.num_classes - 1})")
            if len(set(self.classes)) != len(self.classes) or not self.classes:
                raise ValueError(f"classes {show(self.classes)} must be distinct and not empty")
        self.model = self.model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        shape = (1, self.channels, 1, 1)
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(shape)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(shape)
        self._columns = None if self.classes is None else torch.tensor(self.classes)
        self.max_batch: int | None = None  # set when a batch had to be split (out of memory)

    # --- what the target is ------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int]:
        """The size at which the target sees a whole image: the genomes' default size."""
        return self.resize_size if self.crops == 10 else self.input_size

    # --- scoring ---------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] NCHW images at any size -> the model's normalized input on the device:
        (N, C, h, w), or (N * 10, C, h, w) with ``crops: 10``."""
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
        size = self.image_size
        if tuple(images.shape[-2:]) != tuple(size):
            images = F.interpolate(images, size=size, mode="bilinear",
                                   align_corners=False, antialias=True)
        images = (images - self._mean) / self._std
        if self.crops == 10:
            images = ten_crops(images, self.input_size)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model on prepared inputs, as float32 logits; a batch that runs out of memory
        is retried in halves (and later batches use the size that fitted)."""
        outputs = []
        start, step = 0, min(len(inputs), self.max_batch or len(inputs))
        while start < len(inputs):
            chunk = inputs[start:start + step]
            try:
                with self._autocast():
                    out = self.model(chunk)
            except (RuntimeError, MemoryError) as error:
                if not is_out_of_memory(error) or step == 1:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                step = (step + 1) // 2
                self.max_batch = step
                continue
            outputs.append(out.float())
            start += len(chunk)
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]

    @torch.inference_mode()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Raw model outputs (N * crops, num_classes), float32."""
        return self.forward(self.prepare(images))

    @torch.inference_mode()
    def scores(self, images: torch.Tensor, all_classes: bool = False) -> np.ndarray:
        """Softmax confidence of each scored class for every image: float64 array
        (N, len(class_ids)), mean over the crops (``all_classes``: every model output).

        The softmax is taken in float64 so that confidences near 1 stay distinguishable
        (float32 rounds 1 - 1e-8 to exactly 1.0, which would stall the elite comparison).
        """
        return self.probabilities(images, all_classes).cpu().numpy()

    def probabilities(self, images: torch.Tensor, all_classes: bool = False) -> torch.Tensor:
        """What :meth:`scores` computes, as a float64 tensor on the device, differentiable
        with respect to ``images`` when called with gradients enabled (gradient ascent);
        ``all_classes``: every model output's column, not only the scored classes'."""
        probabilities = torch.softmax(self.forward(self.prepare(images)).double(), dim=1)
        if self.crops > 1:
            probabilities = probabilities.view(len(images), self.crops, -1).mean(dim=1)
        if self._columns is not None and not all_classes:
            probabilities = probabilities[:, self._columns.to(probabilities.device)]
        return probabilities

    def in_fp32(self) -> "Target":
        """This target scoring in full precision (itself if it does): what a run's saved
        PNGs are re-scored with, so ``png_confidence`` is exact whatever ``precision``."""
        if self.precision == "fp32":
            return self
        return dataclasses.replace(self, precision="fp32")

    # --- validation --------------------------------------------------------------------
    def check(self) -> None:
        """One forward pass on a probe image, so that a model that rejects the input size,
        outputs the wrong number of classes or returns NaN fails before a run starts.

        Raises:
            ValueError: one line saying what is wrong.
        """
        generator = torch.Generator().manual_seed(0)
        probe = torch.rand((1, self.channels, *self.image_size), generator=generator)
        shape = (1, self.channels, *self.input_size)
        try:
            with torch.inference_mode():
                out = self.model_output(self.prepare(probe))
        except (Exception, SystemExit) as error:  # a user's model may raise anything
            raise ValueError(f"fails on a probe image of shape {shape} (is its input size "
                             f"{self.input_size[0]}x{self.input_size[1]} right?): "
                             f"{one_line(error)}") from None
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"returned a {type(out).__name__}, not a tensor of logits")
        expected = (self.crops, self.num_classes)
        if tuple(out.shape) != expected:
            raise ValueError(f"returned an output of shape {tuple(out.shape)} for "
                             f"{self.crops} probe input(s) {shape}; expected {expected} "
                             f"(one score per class name: {self.num_classes})")
        if not torch.isfinite(out).all():
            raise ValueError(f"returned NaN or infinite scores on a probe image {shape}")

    def model_output(self, inputs: torch.Tensor):
        """The model's raw return value (checked by :meth:`check`: it must be a tensor)."""
        with self._autocast():
            return self.model(inputs)
