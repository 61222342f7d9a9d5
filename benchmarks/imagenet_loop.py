"""Loop evaluations/s vs classifier-only evaluations/s on an ImageNet target, batch sizes swept.

For each ``batch_size`` B (images per forward pass; each generation's children, the
experiment's ``algorithm.offspring``, are scored in chunks of B):
  1. the full evofool MAP-Elites loop of an experiment (run directory, JSON-lines log,
     checkpoints; rendering, mutation, archive update), for about ``--evaluations`` images
     after generation 0 (model loaded, warmed up);
  2. the classifier alone (``Target.scores``: resize, normalize, forward, softmax) on the
     very generations the loop scored, rendered beforehand, in the same chunks of B, median
     of ``--repeats`` passes.
The ratio loop / classifier is what the loop costs on top of the network (target >= 0.8),
in wall-clock time and in process CPU time (robust when other processes share the cores).

    python benchmarks/imagenet_loop.py [EXPERIMENT.yaml] [key=value overrides ...]
        [--batch-sizes 8 16 32 100] [--evaluations 1500]

Default experiment: experiments/imagenet_cppn_mapelites-quick.yaml (efficientnet-lite0,
offline). Overrides apply to every point, e.g. model.precision=bf16 or device=cuda.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evofool.config import load_experiment
from evofool.evaluation import BatchEvaluator
from evofool.run import run_experiment

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "experiments" / "imagenet_cppn_mapelites-quick.yaml"


class Clock:
    """Wall-clock and process CPU seconds. On a shared machine other processes steal cores
    at random moments: the wall-clock rate then varies, while the CPU time a piece of work
    needs does not, so the CPU-time ratio is the robust one (both are printed)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def since(self, start: "Clock") -> tuple[float, float]:
        return self.wall - start.wall, self.cpu - start.cpu


def loop_rate(experiment) -> tuple[tuple[float, float], int, list[np.ndarray], object, object]:
    """Evaluations per wall and per CPU second of the whole loop from the end of generation 0
    (model loaded and warmed up) to the end of the last generation's scoring, the
    populations it scored (references only: rendering them again is left for later, outside
    the timing), and the run's target and genome type."""
    populations: list[np.ndarray] = []
    seen: dict = {}
    marks: list[Clock] = []
    original = BatchEvaluator.__call__

    def recording(self, population):
        populations.append(population)
        seen.update(target=self.target, genome_type=self.genome_type)
        scores = original(self, population)
        marks.append(Clock())
        return scores

    BatchEvaluator.__call__ = recording
    try:
        run_experiment(experiment)
    finally:
        BatchEvaluator.__call__ = original
    evaluations = sum(len(p) for p in populations[1:])
    wall, cpu = marks[-1].since(marks[0])
    return (evaluations / wall, evaluations / cpu), evaluations, populations[1:], \
        seen["target"], seen["genome_type"]


def classifier_rate(target, generations: list[torch.Tensor], batch_size: int,
                    repeats: int) -> tuple[float, float]:
    """Evaluations per wall and per CPU second of ``Target.scores`` alone on the
    generations' images, in chunks of ``batch_size`` as the loop scores them (the median
    of ``repeats`` passes, as the loop is measured once)."""
    target.scores(generations[0][:batch_size])  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        start = Clock()
        for images in generations:
            for i in range(0, len(images), batch_size):
                target.scores(images[i:i + batch_size])
        wall, cpu = Clock().since(start)
        walls.append(wall)
        cpus.append(cpu)
    evaluations = sum(len(g) for g in generations)
    return evaluations / float(np.median(walls)), evaluations / float(np.median(cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", nargs="?", default=str(DEFAULT))
    parser.add_argument("overrides", nargs="*", help="key.sub=value, applied to every point")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 100])
    parser.add_argument("--evaluations", type=int, default=1500,
                        help="images scored by the loop at each batch size (after gen 0)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if "=" in args.experiment and not args.experiment.endswith(".yaml"):  # only overrides
        args.overrides.insert(0, args.experiment)
        args.experiment = str(DEFAULT)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.batch_sizes:
            experiment = load_experiment(args.experiment, [*args.overrides])
            offspring = experiment.algorithm.offspring
            generations = max(2, round(args.evaluations / offspring))
            experiment = load_experiment(args.experiment, [
                "log.progress=false", f"output_dir={tmp}/run{size}",
                f"algorithm.init_size={offspring}", f"batch_size={size}",
                f"budget.generations={generations}", "budget.evaluations=null",
                *args.overrides])
            loop, evaluations, populations, target, genome_type = loop_rate(experiment)
            images = [genome_type.render(p) for p in populations]
            classifier = classifier_rate(target, images, size, args.repeats)
            rows.append((size, generations, evaluations, loop, classifier))
            print(f"batch {size}: loop {loop[0]:.1f}/s, classifier {classifier[0]:.1f}/s "
                  f"(per CPU second: {loop[1]:.1f}, {classifier[1]:.1f})", flush=True)
            del images, populations

    model = experiment.model
    print()
    print(f"experiment: {args.experiment} {' '.join(args.overrides)}")
    print(f"model: {model.spec} (crops {model.crops}, {model.precision}, channels_last "
          f"{model.channels_last}, {len(target.class_ids)} scored classes), device: "
          f"{target.device}, torch threads: {torch.get_num_threads()}, genome: "
          f"{experiment.genome_type} {genome_type.channels}x{genome_type.size[0]}x"
          f"{genome_type.size[1]}, {experiment.algorithm.offspring} children/generation")
    print()
    print("| batch_size (images/forward) | evaluations timed | loop eval/s | classifier-only "
          "eval/s | loop / classifier | same, per CPU second |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, generations, evaluations, loop, classifier in rows:
        print(f"| {size} | {evaluations:,} | {loop[0]:,.1f} | {classifier[0]:,.1f} "
              f"| {loop[0] / classifier[0]:.2f} | {loop[1] / classifier[1]:.2f} |")


if __name__ == "__main__":
    main()
