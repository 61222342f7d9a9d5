"""How much the evolution loop adds to the classifier's own time, and the textbook DEAP way.

Runs, in one process and on the same machine:
  1. the full evofool MAP-Elites loop (run directory, JSON-lines log, checkpoints) on an
     experiment, keeping every 10th batch it scores;
  2. the classifier alone (``Target.scores``, no mutation or rendering) on those same batches;
  3. the textbook DEAP way: list individuals, ``tools.mutPolynomialBounded`` per individual,
     ``toolbox.map(toolbox.evaluate, offspring)`` with one forward pass per individual.
Prints a table of evaluations/s and the loop/classifier ratio (the target is >= 0.8).

    python benchmarks/loop_overhead.py [experiments/mnist_direct_mapelites.yaml] [key=value ...]
"""
from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from deap import base, creator, tools

from evofool.config import load_experiment
from evofool.evaluation import BatchEvaluator
from evofool.fitness.registry import resolve_device
from evofool.run import run_experiment

REPO = Path(__file__).resolve().parents[1]


def full_loop(experiment, keep_every: int = 10) -> tuple[float, int, list[torch.Tensor]]:
    """Steady-state evaluations/s of the whole loop (from the run's own log), and every
    ``keep_every``-th batch it scored (keeping all would make the loop allocate hundreds of
    MB as it runs, which slows the loop being measured)."""
    recorded: list[torch.Tensor] = []
    calls = [0]
    original = BatchEvaluator.__call__

    def recording(self, population):
        calls[0] += 1
        if calls[0] % keep_every == 2:  # not the initial population (call 1)
            recorded.append(self.genome_type.render(population))
        return original(self, population)

    BatchEvaluator.__call__ = recording
    try:
        result = run_experiment(experiment)
    finally:
        BatchEvaluator.__call__ = original
    log = [json.loads(l) for l in (result.run_dir / "log.jsonl").read_text().splitlines()]
    # from the end of generation 0 (model loaded, initial batch scored) to the last generation
    evaluations = log[-1]["evaluations"] - log[0]["evaluations"]
    seconds = log[-1]["wall_time"] - log[0]["wall_time"]
    return evaluations / seconds, evaluations, recorded


def classifier_only(target, batches: list[torch.Tensor], repeats: int = 5) -> float:
    """Evaluations/s of ``Target.scores`` alone on the recorded batches (median of repeats)."""
    target.scores(batches[0])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for images in batches:
            target.scores(images)
        times.append(time.perf_counter() - start)
    return sum(len(b) for b in batches) / float(np.median(times))


def textbook_deap(target, generations: int = 3, offspring: int = 200) -> float:
    """MAP-Elites written the way DEAP's examples write loops: one individual at a time."""
    if not hasattr(creator, "TextbookFitness"):
        creator.create("TextbookFitness", base.Fitness, weights=(1.0,))
        creator.create("TextbookIndividual", list, fitness=creator.TextbookFitness)
    random.seed(0)
    side = target.input_size[0]
    toolbox = base.Toolbox()
    toolbox.register("individual", tools.initRepeat, creator.TextbookIndividual, random.random,
                     side * side)
    toolbox.register("mutate", tools.mutPolynomialBounded, eta=15.0, low=0.0, up=1.0, indpb=0.1)

    def evaluate(individual):
        image = torch.tensor(individual, dtype=torch.float32).view(1, 1, side, side)
        return tuple(target.scores(image)[0])

    toolbox.register("evaluate", evaluate)
    elites: dict[int, tuple[float, list]] = {}

    def offer(individual, probabilities):
        for cls, p in enumerate(probabilities):
            if cls not in elites or p > elites[cls][0]:
                elites[cls] = (p, individual)

    start = time.perf_counter()
    population = [toolbox.individual() for _ in range(offspring)]
    for ind, probs in zip(population, map(toolbox.evaluate, population)):
        offer(ind, probs)
    for _ in range(generations):
        parents = [random.choice(list(elites.values()))[1] for _ in range(offspring)]
        children = [toolbox.mutate(toolbox.clone(p))[0] for p in parents]
        for ind, probs in zip(children, toolbox.map(toolbox.evaluate, children)):
            offer(ind, probs)
    return offspring * (generations + 1) / (time.perf_counter() - start)


def main(argv: list[str]) -> None:
    path = argv[0] if argv and argv[0].endswith(".yaml") else str(
        REPO / "experiments" / "mnist_direct_mapelites.yaml")
    overrides = [a for a in argv if "=" in a]
    with tempfile.TemporaryDirectory() as tmp:
        experiment = load_experiment(path, ["log.progress=false", f"output_dir={tmp}/run",
                                            *overrides])
        loop_rate, evaluations, batches = full_loop(experiment)
        target = experiment.model.build_target(resolve_device(experiment.device))
        classifier_rate = classifier_only(target, batches)
        deap_rate = textbook_deap(target, offspring=experiment.algorithm.offspring)
    print(f"experiment: {path} {' '.join(overrides)}")
    print(f"device: {target.device}, torch threads: {torch.get_num_threads()}, "
          f"batch: {experiment.algorithm.offspring} offspring/generation, "
          f"{evaluations} evaluations timed")
    print()
    print(f"| {'what':<44} | {'evaluations/s':>13} | {'vs classifier':>13} |")
    print(f"|{'-' * 46}|{'-' * 15}|{'-' * 15}|")
    for name, rate in (("classifier only (same batches)", classifier_rate),
                       ("evofool full loop (log, checkpoints)", loop_rate),
                       ("textbook DEAP (one evaluate call per image)", deap_rate)):
        print(f"| {name:<44} | {rate:>13,.0f} | {rate / classifier_rate:>13.2f} |")
    print()
    print(f"loop / classifier ratio: {loop_rate / classifier_rate:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main(sys.argv[1:])
