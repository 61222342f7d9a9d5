"""Loop evaluations/s vs classifier-only evaluations/s on an ImageNet target, batch sizes swept.

For each ``batch_size`` B (images per forward pass; each generation's children, the
experiment's ``algorithm.offspring``, are scored in chunks of B):
  1. the full evofool MAP-Elites loop of an experiment (run directory, JSON-lines log,
     checkpoints; rendering, mutation, archive update), for about ``--evaluations`` images,
     its rate taken from the run's own log after generation 0 (model loaded, warmed up);
  2. the classifier alone (``Target.scores``: resize, normalize, forward, softmax) on the
     very generations the loop scored, rendered beforehand, in the same chunks of B, best
     of ``--repeats`` passes.
The ratio loop / classifier is what the loop costs on top of the network (target >= 0.8).

    python benchmarks/imagenet_loop.py [EXPERIMENT.yaml] [key=value overrides ...]
        [--batch-sizes 8 16 32 100] [--evaluations 1500]

Default experiment: experiments/imagenet_cppn_mapelites-quick.yaml (efficientnet-lite0,
offline). Overrides apply to every point, e.g. model.precision=bf16 or device=cuda.
"""
from __future__ import annotations

import argparse
import json
import math
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


def loop_rate(experiment) -> tuple[float, int, list[np.ndarray], object, object]:
    """Evaluations/s of the whole loop after generation 0, the populations it scored
    (references only: rendering them again is left for later, outside the timing), and the
    run's target and genome type."""
    populations: list[np.ndarray] = []
    seen: dict = {}
    original = BatchEvaluator.__call__

    def recording(self, population):
        populations.append(population)
        seen.update(target=self.target, genome_type=self.genome_type)
        return original(self, population)

    BatchEvaluator.__call__ = recording
    try:
        result = run_experiment(experiment)
    finally:
        BatchEvaluator.__call__ = original
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    evaluations = log[-1]["evaluations"] - log[0]["evaluations"]
    seconds = log[-1]["wall_time"] - log[0]["wall_time"]
    return evaluations / seconds, evaluations, populations[1:], seen["target"], \
        seen["genome_type"]


def classifier_rate(target, generations: list[torch.Tensor], batch_size: int,
                    repeats: int) -> float:
    """Evaluations/s of ``Target.scores`` alone on the generations' images, in chunks of
    ``batch_size`` as the loop scores them (best of ``repeats``)."""
    target.scores(generations[0][:batch_size])  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for images in generations:
            for i in range(0, len(images), batch_size):
                target.scores(images[i:i + batch_size])
        best = min(best, time.perf_counter() - start)
    return sum(len(g) for g in generations) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", nargs="?", default=str(DEFAULT))
    parser.add_argument("overrides", nargs="*", help="key.sub=value, applied to every point")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32, 100])
    parser.add_argument("--evaluations", type=int, default=1500,
                        help="images scored by the loop at each batch size (after gen 0)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

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
            print(f"batch {size}: loop {loop:.1f}/s, classifier {classifier:.1f}/s", flush=True)
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
    print("| batch_size (images/forward) | generations | evaluations timed | loop eval/s "
          "| classifier-only eval/s | loop / classifier |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, generations, evaluations, loop, classifier in rows:
        print(f"| {size} | {generations} | {evaluations:,} | {loop:,.1f} | {classifier:,.1f} "
              f"| {loop / classifier:.2f} |")


if __name__ == "__main__":
    main()
