"""evofool MAP-Elites against pyribs, on one LeNet: pyribs' tutorial set-up and pyribs
configured as close to the paper as it allows.

Rows (all score with the shipped LeNet, ``Target.scores``, on this machine, same process):

* evofool: the paper's MAP-Elites from experiments/mnist_direct_mapelites.yaml. Archive rule:
  every child is offered to EVERY cell (it takes each digit's cell whose elite it beats on
  that digit's probability). Generation 0: 200 uniform random images; then 200 children per
  generation, parents drawn uniformly from the filled cells, each child mutated by the
  paper's polynomial mutation (each pixel with probability 0.1, halving every 1,000
  generations, eta 15: about 78 of 784 pixels move, by a median 0.04), pixels rendered as
  8-bit values (``quantize: true``).
* pyribs tutorial (tutorials/fooling_mnist): a 10-cell ``GridArchive`` binned by the
  PREDICTED digit, measure = argmax, objective = that digit's probability, so a child is
  filed only under its top class; one ``GaussianEmitter`` (sigma 0.5 added to EVERY pixel,
  clipped to [0, 1]; x0 = mid-gray, so generation 0 is gray + noise), batch 30, through
  pyribs' ``Scheduler``. The tutorial runs 900,000 evaluations; here ``--max-evals``.
* "best per class over the tutorial's images": not a search, a reading of the row above:
  each digit's best probability among all the images pyribs' tutorial run scored (what the
  paper's rule would have kept from the same images, had it been the archive).
* pyribs, paper's rule: pyribs' ``GridArchive`` and ``GaussianEmitter`` with every child
  offered to every cell: each batch is added with ``archive.add`` ten times over (each child
  once per digit, measure = that digit, objective = its probability for that digit; pyribs
  keeps the best per cell, i.e. the paper's rule). Generation 0 = 200 uniform random images
  (``initial_solutions``), then batches of 200, parents drawn uniformly from the filled
  cells (``sample_elites``), as the paper. What pyribs cannot do: the paper's mutation. Its
  emitters only add Gaussian (or iso+line) noise to every gene; there is no per-gene
  mutation rate or polynomial operator. So the row is run with sigma matched to the
  paper's mutation (the same mean squared change per pixel as evofool's operator, about
  0.024; computed at start) and, for reference, with the tutorial's sigma 0.5. Solutions
  are float32, not quantized to 8 bits. (``Scheduler.tell`` takes one measure per solution,
  so this row calls ``emitter.ask`` and ``archive.add`` itself; ``GaussianEmitter.tell`` is
  a no-op.)

Budget: the same for every row, counted in evaluations: each runs until all 10 digits
reach 99.99% and both fixed budgets below are passed, or ``--max-evals`` (evofool: a run of
40,200 evaluations, then, if the goal is not reached by then, a run with
``budget.stop_confidence: 0.9999`` up to ``--max-evals``). The table gives evaluations and
wall time until all 10 digits reach 99.99%, and the per-digit confidence (median / min) at
10,000 and 40,200 evaluations (the paper: all ten >= 99.99% in under 50 generations of
200, about 10,000 evaluations, on its Caffe LeNet). About 2.5 minutes on 2 CPU cores.

    pip install -e ".[benchmark]"       # ribs
    python benchmarks/vs_pyribs.py [--max-evals 300000] [--seed 0] [--paper-sigmas S ...]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evofool.config import load_experiment
from evofool.fitness.registry import build_target
from evofool.genomes.variation import polynomial_mutation
from evofool.runner import run_experiment

REPO = Path(__file__).resolve().parents[1]
GOAL = 0.9999
CHECKPOINTS = (10_000, 40_200)
PIXELS, CLASSES = 784, 10

DIFFERENCES = """\
What differs between the set-ups (same LeNet, same budget in evaluations):
  archive rule:  evofool and "pyribs, paper's rule": each child is offered to every digit's
                 cell; pyribs tutorial: a child is filed only under its top (argmax) digit.
  mutation:      evofool: the paper's polynomial mutation (each pixel with p 0.1, eta 15,
                 ~78 of 784 pixels move by a median 0.04); pyribs (all rows): Gaussian noise
                 on every pixel, clipped to [0, 1] (tutorial sigma 0.5; the paper-rule row also
                 with sigma {matched:.4f} = the same mean squared change per pixel). pyribs
                 has no per-gene rate or polynomial operator.
  generation 0:  evofool and pyribs paper-rule rows: 200 uniform random images; tutorial:
                 mid-gray + Gaussian noise.
  batch:         200 children per generation (evofool, paper-rule rows); 30 (tutorial).
  pixels:        evofool scores 8-bit quantized pixels; pyribs scores floats.
  budget:        the same for all: until every digit >= 99.99% (and past 40,200
                 evaluations) or --max-evals ({max_evals:,}; the tutorial itself runs
                 900,000)."""


def matched_sigma(seed: int = 0) -> float:
    """The Gaussian sigma with the same mean squared change per pixel as the paper's
    polynomial mutation (rate 0.1, eta 15) on uniform random pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.random((2000, PIXELS), dtype=np.float32)
    change = polynomial_mutation(pixels, 0.1, 15.0, rng) - pixels
    return float(np.sqrt(np.mean(change.astype(np.float64) ** 2)))


class Tracker:
    """Per-digit best confidence over the evaluations, snapshots at the fixed budgets, and
    when every digit first reached the goal."""

    def __init__(self) -> None:
        self.best = np.zeros(CLASSES)
        self.snapshots: dict[int, np.ndarray] = {}
        self.reached = None
        self.evaluations = 0
        self.start = time.perf_counter()

    def update(self, n: int, best: np.ndarray) -> None:
        self.evaluations += n
        np.maximum(self.best, best, out=self.best)
        for budget in CHECKPOINTS:
            if budget not in self.snapshots and self.evaluations >= budget:
                self.snapshots[budget] = self.best.copy()
        if self.reached is None and (self.best >= GOAL).all():
            self.reached = (self.evaluations, time.perf_counter() - self.start)

    def done(self) -> bool:
        return self.reached is not None and len(self.snapshots) == len(CHECKPOINTS)

    def result(self) -> dict:
        return {"reached": self.reached, "snapshots": self.snapshots, "final": self.best,
                "evaluations": self.evaluations, "seconds": time.perf_counter() - self.start}


def _images(solutions: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(solutions, dtype=np.float32)).view(
        -1, 1, 28, 28)


def pyribs_tutorial(target, max_evals: int, seed: int) -> tuple[dict, dict]:
    """pyribs' fooling-MNIST tutorial; also each digit's best over all the images it scored."""
    from ribs.archives import GridArchive
    from ribs.emitters import GaussianEmitter
    from ribs.schedulers import Scheduler

    archive = GridArchive(solution_dim=PIXELS, dims=[CLASSES], ranges=[(0, CLASSES)],
                          seed=seed)
    emitter = GaussianEmitter(archive, sigma=0.5, x0=np.full(PIXELS, 0.5),
                              bounds=[(0, 1)] * PIXELS, batch_size=30, seed=seed)
    scheduler = Scheduler(archive, [emitter])
    elites, any_image = Tracker(), Tracker()
    while elites.evaluations < max_evals:
        solutions = scheduler.ask()
        probabilities = target.scores(_images(solutions))
        predicted = probabilities.argmax(axis=1)
        objective = probabilities[np.arange(len(predicted)), predicted]
        scheduler.tell(objective, predicted[:, None].astype(np.float64) + 0.5)
        # the archive's elite confidence per cell (the predicted digit's probability)
        cell_best = np.zeros(CLASSES)
        np.maximum.at(cell_best, predicted, objective)
        elites.update(len(solutions), cell_best)
        any_image.update(len(solutions), probabilities.max(axis=0))
        if elites.done():
            break
    return elites.result(), any_image.result()


def pyribs_paper_rule(target, max_evals: int, seed: int, sigma: float,
                      batch_size: int = 200, init_size: int = 200) -> dict:
    """pyribs' GridArchive + GaussianEmitter with every child offered to every cell."""
    from ribs.archives import GridArchive
    from ribs.emitters import GaussianEmitter

    archive = GridArchive(solution_dim=PIXELS, dims=[CLASSES], ranges=[(0, CLASSES)],
                          seed=seed, dtype=np.float32)
    initial = np.random.default_rng(seed).random((init_size, PIXELS), dtype=np.float32)
    emitter = GaussianEmitter(archive, sigma=sigma, initial_solutions=initial,
                              bounds=[(0, 1)] * PIXELS, batch_size=batch_size, seed=seed)
    cells = np.arange(CLASSES, dtype=np.float32) + 0.5
    tracker = Tracker()
    while tracker.evaluations < max_evals:
        solutions = emitter.ask()
        probabilities = target.scores(_images(solutions))
        n = len(solutions)
        archive.add(np.repeat(solutions, CLASSES, axis=0), probabilities.reshape(-1),
                    np.tile(cells, n)[:, None])
        tracker.update(n, probabilities.max(axis=0))  # = the archive's objective per cell
        if tracker.done():
            break
    return tracker.result()


def evofool_run(max_evals: int, seed: int, stop_at_goal: bool = False) -> dict:
    """The shipped experiment for ``max_evals`` evaluations (or until every digit reaches
    the goal, with ``stop_at_goal``: ``budget.stop_confidence``)."""
    with tempfile.TemporaryDirectory() as tmp:
        experiment = load_experiment(REPO / "experiments" / "mnist_direct_mapelites.yaml", [
            f"seed={seed}", "runtime.device=cpu", "log.progress=false",
            f"output_dir={tmp}/run", "budget.generations=null",
            f"budget.evaluations={max_evals}",
            f"budget.stop_confidence={GOAL if stop_at_goal else 'null'}"])
        start = time.perf_counter()
        result = run_experiment(experiment)
        total = time.perf_counter() - start
        log = [json.loads(line) for line in
               (Path(tmp) / "run" / "log.jsonl").read_text().splitlines()]
    reached = next(((r["evaluations"], r["wall_time"]) for r in log
                    if all(b is not None and b >= GOAL for b in r["best"])), None)
    snapshots = {}
    for budget in CHECKPOINTS:
        if log[-1]["evaluations"] >= budget:
            before = [r for r in log if r["evaluations"] <= budget]
            snapshots[budget] = np.array([b or 0.0 for b in before[-1]["best"]], dtype=float)
    return {"reached": reached, "snapshots": snapshots,
            "final": np.array([b or 0.0 for b in log[-1]["best"]]),
            "evaluations": result.evaluations, "seconds": total}


def describe(reached, max_evals: int) -> str:
    if reached is None:
        return f"not reached in {max_evals:,} evals"
    return f"{reached[0]:,} evals, {reached[1]:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-evals", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paper-sigmas", type=float, nargs="*", default=None,
                        help="sigmas of the pyribs paper-rule rows (default: the sigma "
                             "matched to the paper's mutation, and 0.5)")
    args = parser.parse_args()
    target = build_target("lenet-mnist", torch.device("cpu"))
    matched = matched_sigma()
    sigmas = args.paper_sigmas if args.paper_sigmas is not None else [matched, 0.5]

    # evofool runs to the last fixed budget at least (so that every snapshot exists), then,
    # if the goal is not reached by then, again until it is or --max-evals, as pyribs' rows
    ours = evofool_run(min(max(CHECKPOINTS), args.max_evals), args.seed)
    if ours["reached"] is None and args.max_evals > max(CHECKPOINTS):
        ours = evofool_run(args.max_evals, args.seed, stop_at_goal=True)
    rows = [("evofool MAP-Elites (paper: every-cell rule, polynomial mutation, 200/gen)",
             ours)]
    tutorial, tutorial_any = pyribs_tutorial(target, args.max_evals, args.seed)
    rows += [("pyribs tutorial (top-class rule, Gaussian sigma 0.5 from gray, batch 30)",
              tutorial),
             ("  not a search: best per class over the tutorial's images", tutorial_any)]
    for sigma in sigmas:
        label = ("matched to the paper's mutation" if abs(sigma - matched) < 5e-4
                 else "the tutorial's" if sigma == 0.5 else "--paper-sigmas")
        rows.append((f"pyribs, paper's rule (every cell, 200 random + 200/gen), Gaussian "
                     f"sigma {sigma:.3f} ({label})",
                     pyribs_paper_rule(target, args.max_evals, args.seed, sigma)))

    print(f"LeNet (shipped weights), CPU, torch threads {torch.get_num_threads()}, "
          f"seed {args.seed}, goal: every digit >= {GOAL:.2%}")
    print()
    print(DIFFERENCES.format(matched=matched, max_evals=args.max_evals))
    print()
    print("| method | all 10 digits >= 99.99% after | " +
          " | ".join(f"median / min at {b:,} evals" for b in CHECKPOINTS) +
          " | evals run, seconds |")
    print("|---|---|" + "---|" * len(CHECKPOINTS) + "---|")
    for name, result in rows:
        cells = [f"{np.median(result['snapshots'][b]):.6f} / {result['snapshots'][b].min():.6f}"
                 if b in result["snapshots"] else "-" for b in CHECKPOINTS]
        print(f"| {name} | {describe(result['reached'], result['evaluations'])} | "
              + " | ".join(cells) + f" | {result['evaluations']:,}, {result['seconds']:.1f} |")
    print()
    for name, result in rows:
        print(f"final per-digit confidence, {name.strip()}: "
              + " ".join(f"{c:.4f}" for c in result["final"]))
    print("paper: every digit >= 99.99% in under 50 generations of 200 (about 10,000 evals)")


if __name__ == "__main__":
    main()
