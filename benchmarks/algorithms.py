"""Every search algorithm on one target at one evaluation budget, side by side.

    python benchmarks/algorithms.py                        # MNIST LeNet, 20,000 evaluations
    python benchmarks/algorithms.py --suite imagenet --evaluations 6000 runtime.device=cuda

For each row (an experiment that ships with evofool, with its algorithm) it runs the
experiment to ``--evaluations`` evaluations (gradient ascent: evaluation-equivalents, a
forward pass 1 and a backward pass 2; the GA's budget applies to each of its target classes,
so it gets ``--evaluations`` / classes per class) and prints evaluations/s, the classes at
>= 99% and >= 99.99% and the median confidence, all from the saved PNGs (``png_confidence``).
Extra ``key=value`` overrides apply to every row (``runtime.device=cuda`` on a GPU machine,
``runtime.threads=1`` on shared cores). Runs go to a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from evofool.config import load_experiment
from evofool.catalog import find_experiment
from evofool.runner import run_experiment

SUITES = {
    "mnist": [("MAP-Elites, direct", "mnist_direct_mapelites", []),
              ("MAP-Elites, CPPN", "mnist_cppn_mapelites", []),
              ("GA, direct (per class)", "mnist_direct_ga", []),
              ("gradient ascent, direct", "mnist_gradient_ascent", [])],
    "imagenet": [("MAP-Elites, direct", "imagenet_direct_mapelites-quick", []),
                 ("MAP-Elites, CPPN", "imagenet_cppn_mapelites-quick", []),
                 ("CMA-ME, CPPN", "imagenet_cppn_cmame-quick", []),
                 ("MAP-Elites + ES, 16x16", "imagenet_es-quick", []),
                 ("gradient ascent, direct", "imagenet_gradient_ascent-quick", [])],
}


def run_row(name: str, overrides: list[str], evaluations: int, out: str) -> dict:
    experiment = load_experiment(find_experiment(name), overrides)
    classes = len(experiment.model.classes or []) or 10
    budget = evaluations // classes if experiment.algorithm_type == "ga" else evaluations
    experiment = load_experiment(find_experiment(name), overrides + [
        f"budget.evaluations={budget}", "budget.generations=null",
        "budget.stop_confidence=null", "log.progress=false", f"output_dir={out}"])
    result = run_experiment(experiment)
    confidences = [row.get("png_confidence") or 0.0
                   for row in result.archive_json["classes"]]
    return {"evaluations": result.evaluations, "seconds": result.wall_time,
            "rate": result.evaluations / result.wall_time,
            "above_90": sum(c >= 0.9 for c in confidences),
            "above_99": sum(c >= 0.99 for c in confidences),
            "above_9999": sum(c >= 0.9999 for c in confidences),
            "median": statistics.median(confidences), "classes": len(confidences)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="mnist")
    parser.add_argument("--evaluations", type=int, default=20_000)
    parser.add_argument("overrides", nargs="*", help="key=value for every row")
    args = parser.parse_args()
    print(f"{'algorithm':<26} {'experiment':<34} {'evals':>7} {'s':>7} {'evals/s':>8} "
          f"{'>=99%':>6} {'>=99.99%':>8} {'median':>9}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for i, (label, name, extra) in enumerate(SUITES[args.suite]):
            row = run_row(name, extra + args.overrides, args.evaluations,
                          os.path.join(scratch, str(i)))
            print(f"{label:<26} {name:<34} {row['evaluations']:>7,} {row['seconds']:>7.1f} "
                  f"{row['rate']:>8,.0f} {row['above_99']:>3}/{row['classes']:<2} "
                  f"{row['above_9999']:>5}/{row['classes']:<2} {row['median']:>9.4%}",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
