"""Seconds per generation of an experiment with torch's thread count chosen three ways, on an
idle machine and with other processes keeping cores busy.

For each load (0, 1, 2 ... busy processes: each a Python loop spinning on one core, started
before the run and stopped after it) and each ``runtime.threads`` setting (``null``: evofool's
default, one per core this process may use; and explicit counts), one ``evofool run`` of the
experiment for ``--generations`` generations; the figure is the median wall time between
consecutive log lines after generation 0 (the model loaded and warmed up).

    python benchmarks/threads.py [EXPERIMENT] [--generations 12] [--loads 0 1 2]
        [--threads default 1 2]

Default experiment: imagenet_cppn_mapelites-quick (efficientnet-lite0, offline; needs the zoo
extra). The 1-minute load average at the start of each run is printed beside its figure.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SPIN = "while True: pass"


def seconds_per_generation(experiment: str, threads: str, generations: int,
                           folder: Path) -> float:
    run_dir = folder / f"run-{threads}-{len(list(folder.iterdir()))}"
    overrides = [f"budget.generations={generations}", "budget.evaluations=null",
                 "log.progress=false", f"output_dir={run_dir}",
                 f"runtime.threads={'null' if threads == 'default' else threads}"]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    subprocess.run([sys.executable, "-m", "evofool", "run", experiment, *overrides],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    times = [json.loads(line)["wall_time"]
             for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return statistics.median(b - a for a, b in zip(times[1:], times[2:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", nargs="?", default="imagenet_cppn_mapelites-quick")
    parser.add_argument("--generations", type=int, default=12)
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", nargs="+", default=["default", "1", "2"])
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.experiment}, {args.generations} generations, {cores} usable cores, "
          f"os.cpu_count() {os.cpu_count()}")
    print(f"{'busy processes':>14}  {'runtime.threads':>15}  {'s / generation':>14}  "
          f"{'load avg (1 min)':>16}")
    with tempfile.TemporaryDirectory() as folder:
        for load in args.loads:
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(load)]
            try:
                for threads in args.threads:
                    load_average = os.getloadavg()[0]
                    seconds = seconds_per_generation(args.experiment, threads,
                                                     args.generations, Path(folder))
                    print(f"{load:>14}  {threads:>15}  {seconds:>14.2f}  {load_average:>16.2f}",
                          flush=True)
            finally:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()


if __name__ == "__main__":
    main()
