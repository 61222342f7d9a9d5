"""Several classifiers as one fitness target: evolve images that fool all of them at once.

The paper evolves against one network and then asks whether its images fool another (sec.
3.3); an ensemble target (``model: {spec: [a, b], ensemble: min}``) puts the second network
into the fitness instead. Each member scores the image through its own preprocessing (input
size, normalization, crops), and a class's confidence is the ``min`` (every member must be
fooled) or the ``mean`` of the members' softmax confidences for it.

An :class:`Ensemble` offers what the engine asks of a :class:`~evofool.fitness.target.Target`
(names, classes, image size, channels, ``scores``), so runs, archives, reports
and transfer work on it unchanged.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from evofool.fitness.target import ScoredClasses, Target
from evofool.schema import show

Combine = Literal["min", "mean"]
MAX_MEMBERS = 8


class Ensemble(ScoredClasses):
    """Members that label their outputs alike, scored together.

    Attributes:
        members: the member targets (each scoring all of its classes).
        combine: ``min`` or ``mean`` over the members' confidences of each class.
        classes: model outputs to score, in this order (None: all), as for a Target.
    """

    def __init__(self, members: list[Target], combine: Combine = "min",
                 classes: list[int] | None = None) -> None:
        if not 2 <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"an ensemble needs 2 to {MAX_MEMBERS} models, not {len(members)}")
        if combine not in ("min", "mean"):
            raise ValueError(f"ensemble must be min or mean, not {show(combine)}")
        first = members[0]
        for member in members[1:]:
            if member.class_names != first.class_names:
                raise ValueError(f"members '{first.name}' and '{member.name}' label their "
                                 f"outputs differently ({first.num_classes} vs "
                                 f"{member.num_classes} classes); an ensemble needs one "
                                 "label set")
        self.members = members
        self.combine = combine
        self.class_names = list(first.class_names)
        self.classes = None if classes is None else [int(c) for c in classes]
        if self.classes is not None:
            bad = [c for c in self.classes if not 0 <= c < self.num_classes]
            if bad:
                raise ValueError(f"classes {show(bad)} out of range (the models have classes "
                                 f"0..{self.num_classes - 1})")
        self.name = f"{combine}({', '.join(m.name for m in members)})"
        self.device = first.device
        # Images are drawn at the largest size any member looks at, in colour if any
        # member is: each member then resizes (and converts) to its own input.
        self.channels = max(m.channels for m in members)
        self.image_size = tuple(max(m.image_size[i] for m in members) for i in range(2))

    def in_fp32(self) -> "Ensemble":
        """The ensemble with every member scoring in full precision (Target.in_fp32)."""
        return Ensemble([m.in_fp32() for m in self.members], self.combine, self.classes)

    @torch.inference_mode()
    def scores(self, images: torch.Tensor, all_classes: bool = False) -> np.ndarray:
        """Each class's confidence: the min or mean over members (float64, N x classes;
        ``all_classes``: every model output)."""
        return self.probabilities(images, all_classes).cpu().numpy()

    def probabilities(self, images: torch.Tensor, all_classes: bool = False) -> torch.Tensor:
        """:meth:`scores` as a float64 tensor, differentiable as a Target's."""
        per_member = torch.stack([m.probabilities(images, all_classes=True).to(self.device)
                                  for m in self.members])
        combined = per_member.amin(dim=0) if self.combine == "min" else per_member.mean(dim=0)
        return combined if self.classes is None or all_classes else combined[:, self.classes]
