"""Gradient ascent on each class's softmax unit: the paper's other way to fool a network.

The paper (sec. 3.5, Fig. 13; its released ``find_fooling_image.py``) starts from the mean
image plus a little noise and climbs the target class's softmax probability by gradient,
with a step-size policy that asks each step for a fixed gain of probability::

    desired = min(early_prog, late_prog_mult * (1 - p))      # less, near 1
    lr      = min(max_lr, desired / ||g||^2)                 # first order: gain ~ lr ||g||^2
    x      += lr * g;   x = mean + (1 - decay) (x - mean);   optional Gaussian blur

Here every scored class is one archive cell with one image, all ascended in one batch per
step (a "generation"). Each step scores the images (a forward pass) and takes their
gradients (a backward pass); a forward pass of one image counts 1 evaluation and a backward
pass 2 more, so a step costs 3 per image, comparable with evolution's evaluations. A class
whose image reached ``budget.stop_confidence`` stops ascending (its budget is saved for the
others). Direct-pixel genomes are rendered as the 8-bit image the archive saves
(straight-through rounding), so the confidence recorded is the saved PNG's. Genome types
that expose parameters (``GenomeType.differentiable``) can be refined the same way, starting
from a run's elites (``start_from``), from ``randu`` (the type's random genomes) or from zero
parameters (``zero``; ``mean_plus`` adds the N(0, 1/255) noise): for a perturbation genome,
zero is its start image, and the ascent is a white-box attack in the perturbation's ball.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from evofool.genomes.base import GenomeType
from evofool.genomes.cppn_graph import ACTIVATIONS
from evofool.schema import non_negative, positive
from evofool.search.archive import AddResult
from evofool.search.base import SearchAlgorithm, arrays_under

STARTS = ("mean_plus", "randu", "zero")
# What the log and archive.json record per class: the first step at which the class's
# image is the model's top-1 ("argmax") and reaches each confidence.
MILESTONES = ("argmax", "0.99", "0.999", "0.9999")
FORWARD, BACKWARD = 1, 2  # evaluation-equivalents of one image's forward and backward pass
ADAM_BETAS, ADAM_EPSILON = (0.9, 0.999), 1e-8  # Kingma & Ba's defaults, as torch.optim.Adam


@dataclass
class GradientAscentParams:
    """The released code's options and defaults (paper sec. 3.5)."""

    start: str = field(default="mean_plus", metadata={"check": (
        lambda v: v in STARTS, "mean_plus (the mean image plus N(0, 1) noise on the 0-255 "
                               "scale), randu (uniform noise) or zero (the mean image)")})
    # a run directory whose elites (same genome type, same classes) are the starting points
    start_from: str | None = field(default=None, metadata={"check": (
        lambda v: 0 < len(v) <= 4096 and v.isprintable(), "a run directory, or null")})
    decay: float = field(default=0.01, metadata={"check": (
        lambda v: 0 <= v < 1, "a number in [0, 1): the L2 decay toward the mean per step")})
    max_lr: float = field(default=1e12, metadata=positive("a positive number"))
    early_prog: float = field(default=0.03, metadata={"check": (
        lambda v: 0 < v <= 1, "a number in (0, 1]: the probability gain asked of a step")})
    late_prog_mult: float = field(default=0.1, metadata={"check": (
        lambda v: 0 < v <= 1, "a number in (0, 1]: near 1, ask late_prog_mult * (1 - p)")})
    # Not in the released code: the largest change of any parameter (pixel, in [0, 1]) in
    # one step. Where p is tiny the first-order step desired / ||g||^2 is huge and throws the
    # image into a saturated corner it never leaves; null: uncapped, as the released code.
    max_change: float | None = field(default=0.1, metadata=positive("a positive number or null"))
    blur_radius: float = field(default=0.0, metadata={"check": (
        lambda v: v == 0 or 0.3 <= v <= 50, "0 (no blur) or a Gaussian sigma in [0.3, 50] "
                                            "pixels")})
    blur_every: int = field(default=1, metadata=positive(at_most=1_000_000))
    # Not in the released code: ``sign`` steps every parameter by sign_step in the direction
    # of its gradient (steepest ascent in L-inf, as PGD), for perturbations within an L-inf
    # ball; ``adam`` takes Adam's steps of adam_lr (per-parameter scales, for CPPN weights,
    # whose gradients differ by orders of magnitude between links); ``paper`` is the
    # released code's step-size policy above.
    update: Literal["paper", "sign", "adam"] = "paper"
    sign_step: float = field(default=1 / 255, metadata=positive("a positive number"))
    adam_lr: float = field(default=0.01, metadata=positive("a positive number"))
    # What Adam climbs. Any increasing function of p points the same way; what differs is
    # how the gradient's scale changes as p climbs, which Adam's slow second moment feels:
    # log p's shrinks by (1 - p) near the top, so after 99% the steps shrink and the last
    # digits crawl; the log odds, log(p / (1 - p)), keeps its scale there (and is log p
    # where p is small).
    adam_objective: Literal["log_p", "log_odds"] = "log_p"
    # Not in the released code: hidden nodes added to each starting CPPN before the ascent
    # (fed by every input, feeding every output with weight 0: the same image at step 0),
    # so that the gradient has more weights to move than the few dozen evolution found.
    grow: int = field(default=0, metadata=non_negative(
        "an integer >= 0 (hidden nodes per added layer of each CPPN; 0: none)",
        at_most=10_000))
    grow_layers: int = field(default=1, metadata=positive(
        "a positive integer (layers of grow nodes, each fed by the one before)", at_most=16))
    # The activations of the grown nodes (null: the genome's). Layers of sines compose into
    # the periodic textures (spots, stripes) that a sum of smooth bumps cannot draw: SIREN's
    # finding (Sitzmann et al. 2020) for fitting images, here for fooling a classifier.
    grow_activations: list[str] | None = field(default=None, metadata={"check": (
        lambda v: len(v) > 0 and len(set(v)) == len(v) and all(a in ACTIVATIONS for a in v),
        "a list of distinct names from " + ", ".join(ACTIVATIONS) + ", or null")})


class GradientAscent(SearchAlgorithm):
    name = "gradient_ascent"
    Params = GradientAscentParams
    evaluation_cost = FORWARD + BACKWARD
    remote_scoring = False  # gradients are taken here, on the run's own target

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        evaluate = getattr(self.toolbox, "evaluate", None)
        self.target = getattr(evaluate, "target", None)
        if self.target is None or not hasattr(self.target, "probabilities"):
            raise ValueError("needs a target it can take gradients of "
                             "(a run's model)")
        if not self.genome_type.differentiable:
            raise ValueError(f"needs a genome type with a differentiable "
                             f"render (direct), not '{self.genome_type.name}'")
        if self.params.grow and type(self.genome_type).grown is GenomeType.grown:
            raise ValueError(f"genome type '{self.genome_type.name}' cannot grow: leave out "
                             "grow (it adds hidden nodes to CPPNs)")
        if not self.genome_type.pixel_parameters and self.params.blur_radius:
            raise ValueError(f"genome type '{self.genome_type.name}' is ascended in its own "
                             "parameters, which blur_radius cannot blur: leave it out")
        cells = len(self.archive)
        self.current: np.ndarray | None = None   # one genome per cell, as of the last tell
        self.gradients = np.zeros(0, dtype=np.float32)
        # Adam's running moments of each cell's gradient, and how many it has seen
        self.moments = np.zeros((2, 0), dtype=np.float32)
        self.moment_steps = np.zeros(cells, dtype=np.int64)
        self.own = np.zeros(cells)               # each cell's image's confidence in its class
        self.active = np.ones(cells, dtype=bool)
        self.first_step = np.full((cells, len(MILESTONES)), -1, dtype=np.int64)
        self._cells = np.zeros(0, dtype=np.int64)  # scratch: the cells of the last ask
        self._pending: tuple[np.ndarray, np.ndarray] | None = None  # scratch of score

    # --- ask ---------------------------------------------------------------------------
    def propose(self) -> np.ndarray:
        if self.current is None:
            self._cells = np.arange(len(self.archive))
            return self._starts()
        cells = np.flatnonzero(self.active)
        self._cells = cells[:self.batch_limit(len(cells) * self.evaluation_cost)
                            // self.evaluation_cost]
        return self._ascend(self.current[self._cells], self.gradients[self._cells],
                            self.own[self._cells], self._cells)

    def _center(self) -> np.ndarray | float:
        """Where decay pulls: the model's mean colour for pixels (the paper's mean image),
        zero for other parameters."""
        if not self.genome_type.pixel_parameters:
            return 0.0
        target = self.target
        mean = getattr(target, "mean", None) or target.members[0].mean
        channels = self.genome_type.channels
        mean = np.array(mean if len(mean) == channels else [np.mean(mean)] * channels,
                        dtype=np.float32)
        return mean.reshape(1, channels, 1, 1)

    def _starts(self) -> np.ndarray:
        starts = self._plain_starts()
        if self.params.grow:
            starts = self.genome_type.grown(starts, self.params.grow, self.rng,
                                            self.params.grow_layers,
                                            self.params.grow_activations)
        return starts

    def _plain_starts(self) -> np.ndarray:
        if self.params.start_from is not None:
            return self._elites_of(self.params.start_from)
        n = len(self.archive)
        if self.params.start == "randu":
            return self.genome_type.random(n, self.rng)
        genomes = None
        if self.genome_type.pixel_parameters:
            shape = (n, self.genome_type.channels, *self.genome_type.size)
        else:  # random genomes with zero parameters (a perturbation's: its start image)
            genomes = self.genome_type.random(n, self.rng)
            shape = self.genome_type.parameters(genomes).shape
        start = np.broadcast_to(self._center(), shape).astype(np.float32)
        if self.params.start == "mean_plus":  # N(0, 1) on the paper's 0-255 scale
            start += self.rng.standard_normal(shape, dtype=np.float32) / 255.0
        return self.genome_type.with_parameters(genomes, start)

    def _elites_of(self, run_dir: str) -> np.ndarray:
        """The elites of ``run_dir`` for this run's classes, as this run's genomes."""
        from evofool.errors import EvofoolError
        from evofool.run_data import read_run
        run = read_run(run_dir)
        where = f"algorithm.start_from '{run_dir}'"
        if run.genome_type.name != self.genome_type.name:
            raise EvofoolError(f"{where}: its genomes are '{run.genome_type.name}', this run's "
                               f"'{self.genome_type.name}'")
        ours, theirs = dataclasses.asdict(self.genome_type.params), \
            dataclasses.asdict(run.genome_type.params)
        shape = []
        if tuple(run.genome_type.size) != tuple(self.genome_type.size):
            shape.append(f"size {tuple(run.genome_type.size)} there, "
                         f"{tuple(self.genome_type.size)} here")
        if run.genome_type.channels != self.genome_type.channels:
            shape.append(f"{run.genome_type.channels} channel(s) there, "
                         f"{self.genome_type.channels} here")
        differ = [f"{key}: {theirs[key]!r} there, {ours[key]!r} here" for key in ours
                  if ours[key] != theirs.get(key)] + shape
        draws_differently = EvofoolError(f"{where}: its genome draws differently "
                                         f"({'; '.join(differ[:4])}); give this run the "
                                         "same genome keys")
        if shape:
            raise draws_differently
        cell_of = {c: i for i, c in enumerate(run.archive.class_ids)}
        missing = [c for c in self.archive.class_ids
                   if c not in cell_of or not run.archive.filled[cell_of[c]]]
        if missing:
            raise EvofoolError(f"{where}: has no elite for class(es) {missing[:10]}; it must "
                               "hold one for every scored class")
        elites = run.archive.genomes[[cell_of[c] for c in self.archive.class_ids]]
        # Keys that only steer the search (mutation rates, a wider weight_limit) may differ;
        # what must not is the image: the elites are this run's genomes only if they draw
        # the same pixels here as there, also once this run has read and set their
        # parameters (where a narrower weight_limit would clip them).
        if differ and not torch.equal(run.genome_type.render(elites), self.genome_type.render(
                self.genome_type.with_parameters(elites, self.genome_type.parameters(elites)))):
            raise draws_differently
        return elites

    def _ascend(self, genomes: np.ndarray, gradients: np.ndarray,
                own: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """One step of ``update`` for each genome (the paper's: see the module docstring)."""
        params = self.params
        g = torch.from_numpy(gradients)
        x = torch.from_numpy(_padded(self.genome_type.parameters(genomes), g.shape))
        if self.genome_type.pixel_parameters:
            # A pixel at 0 or 1 cannot follow a gradient that points out of [0, 1]; left in,
            # that part would take the whole step and be clipped away, again and again.
            g = torch.where(((x <= 0) & (g < 0)) | ((x >= 1) & (g > 0)), 0.0, g)
        if params.update == "sign":
            x = x + params.sign_step * torch.sign(g)
        elif params.update == "adam":
            x = x + params.adam_lr * torch.where(g == 0, 0.0, self._adam_direction(cells))
        else:
            x = x + self._paper_step(g, own)
        if params.decay:
            center = torch.as_tensor(self._center())
            x = center + (x - center) * (1.0 - params.decay)
        if params.blur_radius and (self.steps % params.blur_every == 0):
            x = _gaussian_blur(x, params.blur_radius)
        return self.genome_type.with_parameters(genomes, x.numpy())

    def _adam_direction(self, cells: np.ndarray) -> torch.Tensor:
        """Adam's bias-corrected m / (sqrt(v) + eps) of each cell, from the moments that
        ``incorporate`` keeps (an ask changes nothing)."""
        (b1, b2), t = ADAM_BETAS, self.moment_steps[cells].astype(np.float64)
        shape = (-1,) + (1,) * (self.moments.ndim - 2)
        first = self.moments[0, cells] / (1.0 - b1 ** t).reshape(shape)
        second = self.moments[1, cells] / (1.0 - b2 ** t).reshape(shape)
        return torch.from_numpy((first / (np.sqrt(second) + ADAM_EPSILON)).astype(np.float32))

    def _paper_step(self, g: torch.Tensor, own: np.ndarray) -> torch.Tensor:
        """The released code's step: lr * g, with lr asking for a probability gain of
        min(early_prog, late_prog_mult * (1 - p)) to first order (capped by max_lr and,
        ours, max_change)."""
        params = self.params
        norm2 = g.double().flatten(1).square().sum(1)
        desired = torch.from_numpy(np.minimum(params.early_prog,
                                              params.late_prog_mult * (1.0 - own)))
        lr = torch.minimum(torch.tensor(params.max_lr, dtype=torch.float64),
                           desired / norm2.clamp_min(1e-300))
        if params.max_change is not None:
            largest = g.double().flatten(1).abs().amax(1)
            lr = torch.minimum(lr, params.max_change / largest.clamp_min(1e-300))
        lr = torch.where(norm2 > 0, lr, torch.zeros_like(lr))  # no gradient: stay
        return (lr.view(-1, *[1] * (g.dim() - 1)) * g.double()).float()

    # --- score: a forward and a backward pass ------------------------------------------
    def score(self, candidates: np.ndarray) -> np.ndarray:
        """Confidences of ``candidates`` (the archive's classes) and, kept for the next
        ask, each one's gradient of its own class's probability (with Adam, of its log or
        log odds: ``adam_objective``)."""
        scores, gradients, top1 = [], [], []
        class_ids = torch.tensor(self.archive.class_ids)
        every = self.genome_type.parameters(candidates)
        for start in range(0, len(candidates), self.chunk_size):
            chunk = candidates[start:start + self.chunk_size]
            own = torch.from_numpy(self._cells[start:start + self.chunk_size])
            with torch.enable_grad():
                parameters = torch.from_numpy(every[start:start + self.chunk_size].copy())
                parameters.requires_grad_(True)
                images = self.genome_type.render_parameters(chunk, parameters)
                everything = self.target.probabilities(images, all_classes=True)
                scored = everything[:, class_ids.to(everything.device)]
                climbed = scored[torch.arange(len(chunk)), own.to(scored.device)]
                if self.params.update == "adam":
                    # log p: p's gradient divided by p, the same direction; its scale does not
                    # change a thousandfold as p climbs, which Adam's slow second moment needs
                    climbed = climbed.clamp_min(1e-30).log()
                    if self.params.adam_objective == "log_odds":
                        rows = torch.arange(len(chunk), device=everything.device)
                        columns = class_ids.to(everything.device)[own.to(everything.device)]
                        others = everything.index_put((rows, columns), torch.zeros(
                            (), dtype=everything.dtype, device=everything.device)).sum(1)
                        climbed = climbed - others.clamp_min(1e-300).log()
                climbed.sum().backward()
            gradients.append(parameters.grad.numpy())
            scores.append(scored.detach().cpu().numpy())
            top1.append((everything.detach().argmax(dim=1).cpu() == class_ids[own]).numpy())
        self._pending = (np.concatenate(gradients), np.concatenate(top1))
        return np.concatenate(scores)

    # --- tell ----------------------------------------------------------------------------
    def incorporate(self, candidates: np.ndarray, scores: np.ndarray) -> AddResult:
        if self._pending is None or len(self._pending[0]) != len(candidates):
            raise ValueError("gradient_ascent: tell() needs the scores of its own score() "
                             "(they carry the gradients)")
        gradients, top1 = self._pending
        self._pending = None
        cells = self._cells
        added = self.archive.add(candidates, scores, self.steps, self.evaluations,
                                 cost=self.evaluation_cost)
        if self.current is None:
            self.current = candidates.copy()
            self.gradients = np.zeros_like(gradients)
            if self.params.update == "adam":
                self.moments = np.zeros((2, *gradients.shape), dtype=np.float32)
        self.current[cells] = candidates
        self.gradients[cells] = gradients = _padded(gradients, self.gradients.shape[1:])
        if self.params.update == "adam":
            (b1, b2) = ADAM_BETAS
            self.moments[0, cells] = b1 * self.moments[0, cells] + (1 - b1) * gradients
            self.moments[1, cells] = b2 * self.moments[1, cells] + (1 - b2) * gradients ** 2
            self.moment_steps[cells] += 1
        own = scores[np.arange(len(cells)), cells]
        self.own[cells] = np.where(np.isfinite(own), own, 0.0)
        reached = np.stack([top1] + [own >= float(m) for m in MILESTONES[1:]], axis=1)
        first = self.first_step[cells]
        self.first_step[cells] = np.where((first < 0) & reached, self.steps, first)
        stop = self.budget.stop_confidence
        if stop is not None:
            self.active[cells] = self.own[cells] < stop
        return added

    def finished(self) -> bool:
        return ((self.current is not None and not self.active.any())
                or self.batch_limit(self.evaluation_cost) < self.evaluation_cost  # not 1 image
                or self.budget_spent(self.generation, self.evaluations, slice(None)))

    def log_fields(self) -> dict:
        steps = self.evaluations // self.evaluation_cost
        return {"forward_passes": steps, "backward_passes": steps,
                "ascending": int(self.active.sum()) if self.current is not None
                else len(self.archive)}

    def class_notes(self) -> list[dict]:
        """Per cell: the first step reaching each milestone and its cost in evaluations
        (3 per step of its own image: the cost of fooling that class alone)."""
        return [{"first_step": {m: (int(s) if s >= 0 else None) for m, s in zip(MILESTONES, row)},
                 "evaluation_equivalents": {m: (int(s + 1) * self.evaluation_cost
                                                if s >= 0 else None)
                                            for m, s in zip(MILESTONES, row)}}
                for row in self.first_step]

    # --- checkpoints -------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        info, arrays = super().state()
        info["has_current"] = self.current is not None
        arrays.update(own=self.own, active=self.active, first_step=self.first_step,
                      moments=self.moments, moment_steps=self.moment_steps)
        if self.current is not None:
            arrays["gradients"] = self.gradients
            arrays.update({f"current.{k}": v
                           for k, v in self.genome_type.pack(self.current).items()})
        return info, arrays

    def load_state(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        super().load_state(info, arrays)
        cells = len(self.archive)
        self.own = np.asarray(arrays["own"], dtype=np.float64).reshape(cells)
        self.active = np.asarray(arrays["active"], dtype=bool).reshape(cells)
        self.first_step = np.asarray(arrays["first_step"], dtype=np.int64).reshape(
            cells, len(MILESTONES))
        # (checkpoints from before update: adam have no moments)
        self.moment_steps = np.asarray(arrays.get("moment_steps", np.zeros(cells)),
                                       dtype=np.int64).reshape(cells)
        self.moments = np.asarray(arrays.get("moments", np.zeros((2, 0))), dtype=np.float32)
        if info["has_current"]:
            self.current = self.genome_type.unpack(arrays_under(arrays, "current."))
            self.gradients = np.asarray(arrays["gradients"], dtype=np.float32)
            if len(self.current) != cells or len(self.gradients) != cells or (
                    self.moments.size and self.moments.shape != (2, *self.gradients.shape)):
                raise ValueError(f"gradient_ascent state for {len(self.current)} cells, "
                                 f"not {cells}")
        else:
            self.current, self.gradients = None, np.zeros(0, dtype=np.float32)


def _padded(array: np.ndarray, shape: tuple) -> np.ndarray:
    """``array`` (N, ...) zero-padded to (N, *shape[1:]) or (N, *shape): a batch of CPPNs
    has as many weights as its largest graph, fewer than the whole archive's may."""
    shape = tuple(shape[-(array.ndim - 1):])
    if array.shape[1:] == shape:
        return array
    padded = np.zeros((len(array), *shape), dtype=array.dtype)
    padded[(slice(None), *[slice(0, n) for n in array.shape[1:]])] = array
    return padded


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each channel blurred with a Gaussian of ``sigma`` pixels (kernel out to 3 sigma)."""
    from torchvision.transforms.functional import gaussian_blur
    size = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(images, [size, size], [sigma, sigma])
