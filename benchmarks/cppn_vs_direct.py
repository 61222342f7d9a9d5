"""The MNIST CPPN run's loop speed next to the direct-encoding run's, on this machine.

Runs the two shipped experiments (``experiments/mnist_direct_mapelites.yaml``, 1,000
generations, and ``experiments/mnist_cppn_mapelites.yaml``, 200 generations) one after the
other, ``--pairs`` times, each as its own ``evofool run`` process writing to a temporary
folder, and reads the loop's evaluations/s from each run's ``run.json``. On a shared machine
single runs vary by +-10%, so it prints every pair and the medians; the issue asks for a
CPPN/direct ratio >= 0.5.

    python benchmarks/cppn_vs_direct.py [--pairs 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def run(experiment: str, out: Path) -> dict:
    subprocess.run([sys.executable, "-m", "evofool", "run", str(EXPERIMENTS / experiment),
                    f"output_dir={out}", "log.progress=false", "device=cpu"],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "run.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    print("| pair | direct evaluations/s | CPPN evaluations/s | CPPN / direct |")
    print("|---:|---:|---:|---:|")
    direct, cppn = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(1, args.pairs + 1):
            d = run("mnist_direct_mapelites.yaml", Path(tmp) / f"direct{pair}")
            c = run("mnist_cppn_mapelites.yaml", Path(tmp) / f"cppn{pair}")
            direct.append(d["evaluations_per_s"])
            cppn.append(c["evaluations_per_s"])
            print(f"| {pair} | {direct[-1]:,.0f} | {cppn[-1]:,.0f} | {cppn[-1] / direct[-1]:.2f} |")
    ratio = statistics.median(cppn) / statistics.median(direct)
    print(f"| median | {statistics.median(direct):,.0f} | {statistics.median(cppn):,.0f} | "
          f"{ratio:.2f} |")
    print(f"\nCPPN loop / direct loop, medians: {ratio:.2f} (the issue asks for >= 0.5); "
          f"runs: direct {d['generations']} generations ({d['evaluations']:,} evaluations), "
          f"CPPN {c['generations']} ({c['evaluations']:,})")


if __name__ == "__main__":
    main()
