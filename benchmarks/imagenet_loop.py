"""Loop evaluations/s vs classifier-only evaluations/s on an ImageNet target, batch sizes swept.

For each ``runtime.batch_size`` B (images per forward pass: each generation's candidates,
the experiment's ``algorithm.offspring``, are cut into chunks of B and scored with
``toolbox.map(toolbox.evaluate, chunks)``, one ``ChunkEvaluator`` call = render + one
``Target.scores`` per chunk):
  1. the full evofool MAP-Elites loop of an experiment (``run_experiment``: ask -> score ->
     tell, run directory, JSON-lines log, checkpoints; mutation, rendering, archive update),
     for about ``--evaluations`` images after generation 0 (model loaded, warmed up);
     timed from the end of generation 0's last chunk to the end of the last chunk, with
     ``ChunkEvaluator.__call__`` wrapped to keep each chunk (a reference) and mark the time;
  2. the classifier alone (``Target.scores``: resize, normalize, forward, softmax) on the
     very chunks the loop scored, rendered beforehand, one call per chunk as in the loop,
     median of ``--repeats`` passes.
The ratio loop / classifier is what the loop costs on top of the network (target >= 0.8),
in wall-clock time and in process CPU time (robust when other processes share the cores).

    python benchmarks/imagenet_loop.py [EXPERIMENT.yaml] [key=value overrides ...]
        [--batch-sizes 8 16 32 100] [--evaluations 1500] [--repeats 3]

Default experiment: experiments/imagenet_cppn_mapelites-quick.yaml (efficientnet-lite0,
offline). Overrides apply to every point, e.g. model.precision=bf16, runtime.threads=1 or
runtime.device=cuda.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from evofool.config import load_experiment
from evofool.runner import run_experiment
from evofool.search.evaluation import ChunkEvaluator

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
    (model loaded and warmed up) to the end of the last generation's scoring, the chunks it
    scored after generation 0 (references only: rendering them again is left for later,
    outside the timing), and the run's target and genome type.

    ``ChunkEvaluator.__call__`` (the toolbox's ``evaluate``: render + ``Target.scores`` of one
    chunk of ``runtime.batch_size`` candidates; ``toolbox.map`` calls it once per chunk) is
    wrapped to keep each chunk and mark the clocks when it returns."""
    chunks: list[np.ndarray] = []
    seen: dict = {}
    marks: list[Clock] = []
    original = ChunkEvaluator.__call__

    def recording(self, candidates):
        chunks.append(candidates)
        seen.update(target=self.target, genome_type=self.genome_type)
        scores = original(self, candidates)
        marks.append(Clock())
        return scores

    ChunkEvaluator.__call__ = recording
    try:
        run_experiment(experiment)
    finally:
        ChunkEvaluator.__call__ = original
    initial, first = experiment.algorithm.init_size, 0  # generation 0: the first chunks
    while initial > 0:
        initial -= len(chunks[first])
        first += 1
    evaluations = sum(len(c) for c in chunks[first:])
    wall, cpu = marks[-1].since(marks[first - 1])
    return (evaluations / wall, evaluations / cpu), evaluations, chunks[first:], \
        seen["target"], seen["genome_type"]


def classifier_rate(target, chunks: list[torch.Tensor], repeats: int) -> tuple[float, float]:
    """Evaluations per wall and per CPU second of ``Target.scores`` alone on the chunks the
    loop scored, one call per chunk as the loop made them (the median of ``repeats`` passes,
    as the loop is measured once)."""
    target.scores(chunks[0])  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        start = Clock()
        for images in chunks:
            target.scores(images)
        wall, cpu = Clock().since(start)
        walls.append(wall)
        cpus.append(cpu)
    evaluations = sum(len(c) for c in chunks)
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
            # generation 0 (offspring random genomes), then about --evaluations more, in
            # whole generations of whatever the emitters ask
            experiment = load_experiment(args.experiment, [
                "log.progress=false", f"output_dir={tmp}/run{size}",
                f"algorithm.init_size={offspring}", f"runtime.batch_size={size}",
                "budget.generations=null", f"budget.evaluations={offspring + args.evaluations}",
                *args.overrides])
            loop, evaluations, chunks, target, genome_type = loop_rate(experiment)
            images = [genome_type.render(c) for c in chunks]
            classifier = classifier_rate(target, images, args.repeats)
            rows.append((size, evaluations, loop, classifier))
            print(f"batch {size}: loop {loop[0]:.1f}/s, classifier {classifier[0]:.1f}/s "
                  f"(per CPU second: {loop[1]:.1f}, {classifier[1]:.1f})", flush=True)
            del images, chunks

    model = experiment.model
    print()
    print(f"experiment: {args.experiment} {' '.join(args.overrides)}")
    print(f"model: {model.spec} (crops {model.crops}, {model.precision}, channels_last "
          f"{model.channels_last}, {len(target.class_ids)} scored classes), device: "
          f"{target.device}, torch threads: {torch.get_num_threads()}, genome: "
          f"{experiment.genome_type} {genome_type.channels}x{genome_type.size[0]}x"
          f"{genome_type.size[1]}, emitters: "
          f"{getattr(experiment.algorithm, 'emitters', None) or experiment.algorithm.offspring}")
    print()
    print("| runtime.batch_size (images/forward) | evaluations timed | loop eval/s | classifier-only "
          "eval/s | loop / classifier | same, per CPU second |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, evaluations, loop, classifier in rows:
        print(f"| {size} | {evaluations:,} | {loop[0]:,.1f} | {classifier[0]:,.1f} "
              f"| {loop[0] / classifier[0]:.2f} | {loop[1] / classifier[1]:.2f} |")


if __name__ == "__main__":
    main()
