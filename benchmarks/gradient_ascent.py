"""Gradient ascent (algorithm: gradient_ascent): steps and cost per class, and the loop vs
the classifier's own forward + backward passes.

  1. runs the experiment (default: experiments/imagenet_gradient_ascent-quick.yaml, the 10
     quick ImageNet classes on EfficientNet-Lite0, offline) and prints, per class, the first
     step at which its saved image became the top-1 class and reached 99%, 99.9%, 99.99%,
     the evaluation-equivalents (3 per step: forward 1, backward 2) and the PNG's
     confidence; plus the run's wall and process CPU time;
  2. times the classifier alone doing the same work: ``Target.probabilities`` and a backward
     pass on batches of the same images, as many images as the run pushed through, and
     prints loop / classifier (wall and CPU time; the engine's target is >= 0.8);
  3. times the genome alone doing its part of that work: ``render_parameters`` (for a CPPN
     the exact render and the differentiable drawing) and the backward pass through it, on
     the run's final genomes, as many as the run pushed through; and prints loop /
     (classifier + genome): the share of the run that is neither, i.e. the engine's own.

    python benchmarks/gradient_ascent.py [EXPERIMENT] [key=value overrides ...]

Runs on a GPU with runtime.device=cuda (the default ``auto`` picks one when there is one).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from evofool.config import load_experiment
from evofool.runner import build_scoring, run_experiment


def classifier_seconds(experiment, target, images: torch.Tensor,
                       passes: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``passes`` images through forward + backward, in batches as
    the run makes them (``runtime.batch_size``, at most the number of classes)."""
    batch = min(experiment.runtime.batch_size, len(images))
    own = torch.arange(batch) % len(target.class_ids)
    wall, cpu = time.perf_counter(), time.process_time()
    done = 0
    while done < passes:
        x = images[:batch].clone().requires_grad_(True)
        p = target.probabilities(x)
        p[torch.arange(batch), own].sum().backward()
        done += batch
    return time.perf_counter() - wall, time.process_time() - cpu


def genome_seconds(experiment, genome_type, genomes, passes: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``passes`` genomes through ``render_parameters`` and a
    backward pass of a fixed random weighting of its pixels (the classifier's place), in
    batches as the run makes them."""
    batch = min(experiment.runtime.batch_size, len(genomes))
    chunk = genomes[:batch]
    every = torch.from_numpy(genome_type.parameters(chunk))
    upstream = torch.rand((batch, genome_type.channels, *genome_type.size),
                          generator=torch.Generator().manual_seed(0))
    wall, cpu = time.perf_counter(), time.process_time()
    done = 0
    while done < passes:
        parameters = every.clone().requires_grad_(True)
        images = genome_type.render_parameters(chunk, parameters)
        (images * upstream.to(images.device)).sum().backward()
        done += batch
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", default="imagenet_gradient_ascent-quick")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        experiment = load_experiment(args.experiment, args.overrides + [
            f"output_dir={folder}/run", "log.progress=false"])
        load = os.getloadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_experiment(experiment)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        content = json.loads((result.run_dir / "archive" / "archive.json").read_text())
        log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
        from evofool.run_data import read_run
        run = read_run(result.run_dir)
        genomes = run.archive.genomes
        images = run.genome_type.render(genomes)
    print(f"experiment {experiment.name}, model {experiment.model.spec}, "
          f"{torch.get_num_threads()} torch threads, load average before "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'class':>5} {'name':<18} {'top-1':>6} {'99%':>6} {'99.9%':>6} {'99.99%':>6} "
          f"{'evals to 99.99%':>16} {'PNG confidence':>15}")
    for row in content["classes"]:
        steps = row["first_step"]
        cost = row["evaluation_equivalents"]["0.9999"]
        print(f"{row['class_id']:>5} {row['name'][:18]:<18} " + " ".join(
            f"{'-' if steps[m] is None else steps[m]:>6}" for m in steps)
              + f" {'-' if cost is None else cost:>16} {row['png_confidence']:>15.6%}")
    summary = content["summary"]
    print(f"classes >= 99.99% (PNG): "
          f"{sum((r['png_confidence'] or 0) >= 0.9999 for r in content['classes'])}"
          f"/{summary['classes']}; steps {result.generations + 1}, evaluations "
          f"{result.evaluations:,}; wall {wall:.1f} s, process CPU {cpu:.1f} s")
    passes = log[-1]["forward_passes"]
    genome_type, target = build_scoring(experiment)  # placed as the run's
    model_wall, model_cpu = classifier_seconds(experiment, target, images, passes)
    print(f"classifier alone, {passes} images forward + backward: wall {model_wall:.1f} s, "
          f"CPU {model_cpu:.1f} s; loop / classifier: {model_wall / wall:.2f} (wall), "
          f"{model_cpu / cpu:.2f} (CPU)")
    own_wall, own_cpu = genome_seconds(experiment, genome_type, genomes, passes)
    print(f"genome alone ({genome_type.name}: render_parameters + its backward), {passes} "
          f"genomes: wall {own_wall:.1f} s, CPU {own_cpu:.1f} s; loop / (classifier + "
          f"genome): {(model_wall + own_wall) / wall:.2f} (wall), "
          f"{(model_cpu + own_cpu) / cpu:.2f} (CPU)")


if __name__ == "__main__":
    main()
