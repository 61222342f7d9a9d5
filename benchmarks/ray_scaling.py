"""Evaluations/s of the local backend against Ray with 1 and 2 workers, on MNIST and on the
quick ImageNet target, and what Ray costs per generation.

Every configuration scores with one thread per process (``runtime.threads=1`` here, one
thread in each Ray worker), each generation cut into chunks of ``--chunk`` images (so that
two workers have two chunks to share; the same chunks in every configuration). A private
Ray instance (127.0.0.1, as many CPUs as workers asked) is started once, before the timed
runs. The rate counts generations 1..N of each run (generation 0 includes building the
workers); "overhead / generation" is Ray with 1 worker minus local, per generation.

    python benchmarks/ray_scaling.py [--workers 1 2] [--generations 30 8]
        [--experiments mnist_cppn_mapelites imagenet_cppn_mapelites-quick] [--chunk 100 50]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from evofool.config import load_experiment
from evofool.runner import run_experiment


def seconds_per_generation(experiment: str, generations: int, chunk: int, folder: Path,
                           backend: list[str]) -> tuple[float, int]:
    run_dir = folder / f"run{len(list(folder.iterdir()))}"
    overrides = [f"budget.generations={generations}", "budget.evaluations=null",
                 "log.progress=false", f"output_dir={run_dir}", "runtime.threads=1",
                 "runtime.device=cpu", f"runtime.batch_size={chunk}", *backend]
    run_experiment(load_experiment(experiment, overrides))
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    seconds = (log[-1]["wall_time"] - log[0]["wall_time"]) / (len(log) - 1)
    per_generation = (log[-1]["evaluations"] - log[0]["evaluations"]) // (len(log) - 1)
    return seconds, per_generation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", nargs="+",
                        default=["mnist_cppn_mapelites", "imagenet_cppn_mapelites-quick"])
    parser.add_argument("--generations", type=int, nargs="+", default=[30, 8])
    parser.add_argument("--chunk", type=int, nargs="+", default=[100, 50])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    from evofool.search.ray_map import connect
    import ray
    connect(None, max(args.workers))
    print(f"{'experiment':<32} {'backend':<16} {'s / gen':>8} {'evals/s':>8} "
          f"{'vs local':>8}  load avg")
    try:
        with tempfile.TemporaryDirectory() as folder:
            for experiment, generations, chunk in zip(args.experiments, args.generations,
                                                      args.chunk):
                rows = [("local, 1 thread", [])] + [
                    (f"ray, {n} worker{'s' * (n > 1)}",
                     ["evaluation.backend=ray", f"evaluation.workers={n}"]) for n in args.workers]
                local = None
                for label, backend in rows:
                    load = os.getloadavg()[0]
                    seconds, evaluations = seconds_per_generation(
                        experiment, generations, chunk, Path(folder), backend)
                    local = local or seconds
                    print(f"{experiment:<32} {label:<16} {seconds:>8.3f} "
                          f"{evaluations / seconds:>8.0f} {local / seconds:>7.2f}x  {load:.2f}",
                          flush=True)
                    if label == "ray, 1 worker":
                        print(f"{'':<32} {'overhead / gen':<16} {seconds - local:>8.3f}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
