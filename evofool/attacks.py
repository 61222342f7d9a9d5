"""evofool's search as an attack that drops into torchattacks-style evaluation scripts.

    attack = FoolingAttack(model, eps=0.3, queries=2000)        # untargeted, L-inf
    adv = attack(images, labels)                                 # like torchattacks
    attack.set_mode_targeted_by_label()
    adv = attack(images, target_labels)
    attack.success, attack.queries                               # per image, last call

``model`` is what torchattacks attacks: a module mapping images with pixels in [0, 1] (N, C,
H, W) to logits, with any normalization inside it or declared with
:meth:`~FoolingAttack.set_normalization_used`. A Foolbox-style model (any callable with
``bounds == (0, 1)``) or an evofool :class:`~evofool.fitness.target.Target` works as well.

Each image is searched on its own with a :mod:`perturbation genome
<evofool.genomes.perturbation>` (the Square attack's mutation inside the L-inf or L2 ball):
untargeted, MAP-Elites with a cell for every class, which is done as soon as one image is
classified as anything but its label; targeted, the GA toward the target class. A query is
one image scored by the model; ``queries`` counts them up to and including the first image
that succeeds. Images are 8-bit, as PNGs hold them: inputs are rounded to whole 8-bit
levels and the bound holds from those.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Literal

import numpy as np
import torch

from evofool.errors import EvofoolError
from evofool.fitness.target import Target
from evofool.genomes.perturbation import PerturbationGenome, PerturbationParams
from evofool.search.registry import get_algorithm
from evofool.search.base import Budget
from evofool.search.evaluation import ChunkEvaluator


class FoolingAttack:
    """Evolutionary black-box attack with torchattacks' calling convention.

    Args:
        model: see the module docstring.
        eps: the bound, in [0, 1] pixel units (8/255 for ImageNet L-inf, 0.3 for MNIST).
        norm: ``"Linf"`` or ``"L2"`` (torchattacks' spelling; ``linf``/``l2`` too).
        queries: model evaluations allowed per image.
        population: images per generation (untargeted: MAP-Elites' init size and
            offspring; targeted: the GA's population).
        basis, basis_size, square_fraction, square_schedule: the perturbation genome's keys
            (a low-resolution basis helps on large images). The defaults (4 images per
            generation, first windows over 80% of the image as torchattacks' Square) did best
            of those tried on LeNet (docs/BENCHMARKS.md).
        confidence: success also needs the model's softmax for the goal class (targeted) or
            for the wrong class (untargeted) to reach this; None: top-1 is enough.
        seed: the one seed; image ``i`` of a call is searched with its own stream.
    """

    def __init__(self, model, eps: float = 8 / 255, norm: str = "Linf", queries: int = 5000,
                 population: int = 4, basis: Literal["full", "lowres"] = "full",
                 basis_size: int = 32, square_fraction: float = 0.8,
                 square_schedule: int | None = None, confidence: float | None = None,
                 seed: int = 0) -> None:
        norm = norm.lower()
        if norm not in ("linf", "l2"):
            raise EvofoolError(f"FoolingAttack: norm {norm!r} is not one of 'Linf', 'L2'")
        if queries < 1 or population < 2:
            raise EvofoolError(f"FoolingAttack: queries = {queries} and population = "
                               f"{population} must be >= 1 and >= 2")
        self.model = model
        self.params = PerturbationParams(
            start="image", norm=norm, epsilon=float(eps), basis=basis, basis_size=basis_size,
            square_fraction=square_fraction,
            # by default the window shrinks over the whole budget, as the Square attack's
            square_schedule=square_schedule or max(1, queries // population))
        self.queries_allowed, self.population = int(queries), int(population)
        self.confidence, self.seed = confidence, int(seed)
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None
        self._target_map: Callable | None = None   # None: untargeted
        self.success = torch.zeros(0, dtype=torch.bool)
        self.queries = torch.zeros(0, dtype=torch.long)

    # --- torchattacks' mode switches -------------------------------------------------------
    def set_mode_default(self) -> None:
        """Untargeted: any class but the label."""
        self._target_map = None

    def set_mode_targeted_by_label(self, quiet: bool = True) -> None:
        """Targeted: the ``labels`` passed to the call are the target classes."""
        self._target_map = lambda images, labels: labels

    def set_mode_targeted_by_function(self, target_map_function: Callable,
                                      quiet: bool = True) -> None:
        """Targeted: ``target_map_function(images, labels)`` gives the target classes."""
        self._target_map = target_map_function

    def set_normalization_used(self, mean, std) -> None:
        """The model expects normalized images: evofool normalizes before calling it."""
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    @property
    def targeted(self) -> bool:
        return self._target_map is not None

    # --- the attack ------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial images: for each image, the first one that succeeded, or the best one
        found within ``queries`` (``self.success`` says which)."""
        if images.dim() != 4 or len(images) != len(labels):
            raise EvofoolError(f"FoolingAttack: expected images (N, C, H, W) and N labels, got "
                               f"{tuple(images.shape)} and {tuple(labels.shape)}")
        if float(images.min()) < 0 or float(images.max()) > 1:
            raise EvofoolError("FoolingAttack: images must have pixels in [0, 1]")
        goals = (self._target_map(images, labels) if self.targeted else labels).tolist()
        target = self._target(images)
        pixels = (images.detach().cpu().double() * 255).round().to(torch.uint8).numpy()
        results = [self._attack_one(target, pixels[i], int(goals[i]), i)
                   for i in range(len(images))]
        self.success = torch.tensor([r[1] for r in results], dtype=torch.bool)
        self.queries = torch.tensor([r[2] for r in results], dtype=torch.long)
        adversarial = torch.stack([r[0] for r in results])
        return adversarial.to(device=images.device, dtype=images.dtype)

    def _target(self, images: torch.Tensor) -> Target:
        if isinstance(self.model, Target):
            return self.model
        return target_from_model(self.model, images.shape[1], tuple(images.shape[-2:]),
                                 self.mean, self.std)

    def _attack_one(self, target: Target, pixels: np.ndarray, goal: int,
                    index: int) -> tuple[torch.Tensor, bool, int]:
        """(adversarial image, success, queries) for one image."""
        genome_type = PerturbationGenome(self.params, pixels.shape[0], pixels.shape[1:],
                                         start_pixels=pixels)
        seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        names = target.scored_names
        if self.targeted:
            algorithm = get_algorithm("ga")(
                replace(get_algorithm("ga").Params(), population=self.population,
                        elite=max(1, self.population // 5), target_classes=[goal]),
                genome_type, names, Budget(evaluations=self.queries_allowed), seed,
                evaluate=ChunkEvaluator(genome_type, target), chunk_size=self.population)
        else:
            params = replace(get_algorithm("map_elites").Params(), init_size=self.population,
                             offspring=self.population)
            algorithm = get_algorithm("map_elites")(
                params, genome_type, names, Budget(evaluations=self.queries_allowed), seed,
                evaluate=ChunkEvaluator(genome_type, target), chunk_size=self.population)
        while not algorithm.finished():
            before = algorithm.evaluations
            report = algorithm.step()
            hits = self._successes(report.scores, goal)
            if hits.any():
                first = int(np.argmax(hits))
                image = genome_type.render(report.candidates[first:first + 1])[0]
                return image, True, before + first + 1
        return genome_type.render(self._best(algorithm, goal))[0], False, algorithm.evaluations

    def _successes(self, scores: np.ndarray, goal: int) -> np.ndarray:
        """Per scored image: whether it is what the attack is after."""
        top1 = scores.argmax(axis=1)
        if self.targeted:
            hit, level = top1 == goal, scores[:, goal]
        else:
            hit, level = top1 != goal, scores.max(axis=1)
        return hit & (level >= self.confidence) if self.confidence is not None else hit

    def _best(self, algorithm, goal: int) -> np.ndarray:
        """The archive's closest call: the goal's elite (targeted), or the most confident
        elite of another class (untargeted)."""
        archive = algorithm.archive
        confidence = np.where(archive.filled, archive.confidence, -1.0)
        if not self.targeted:
            confidence[goal] = -1.0
        cell = goal if self.targeted else int(confidence.argmax())
        return archive.genomes[cell:cell + 1]


def target_from_model(model, channels: int, size: tuple[int, int], mean=None, std=None,
                      class_names: list[str] | None = None, name: str = "model") -> Target:
    """An evofool target for a torchattacks- or Foolbox-style model (pixels in [0, 1] in,
    logits out; ``mean``/``std``: normalization evofool applies first, if the model does not
    itself). A ``python:MODULE:FACTORY`` model spec may return this, so such a model is the
    target of any experiment."""
    bounds = getattr(model, "bounds", (0, 1))
    if tuple(float(b) for b in bounds) != (0.0, 1.0):
        raise EvofoolError(f"the model's bounds are {tuple(bounds)}, expected (0, 1)")
    module = model if isinstance(model, torch.nn.Module) else _Callable(model)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    with torch.inference_mode():
        classes = module(torch.zeros(1, channels, *size, device=device)).shape[-1]
    if class_names is not None and len(class_names) != classes:
        raise EvofoolError(f"{len(class_names)} class names for a model with {classes} outputs")
    return Target(name=name, model=module.eval(),
                  class_names=class_names or [str(c) for c in range(classes)],
                  input_size=tuple(size), channels=channels,
                  mean=tuple(mean) if mean is not None else (0.0,) * channels,
                  std=tuple(std) if std is not None else (1.0,) * channels, device=device)


class _Callable(torch.nn.Module):
    """A plain callable (a Foolbox-style model) as a module evofool can put in eval mode."""

    def __init__(self, function: Callable) -> None:
        super().__init__()
        self.function = function

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.function(images))
