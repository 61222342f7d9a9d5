"""Emitter mixes and stepping stones on one target, side by side: the median confidence of
the listed classes against evaluations.

    python benchmarks/emitters.py                              # ImageNet quick, 10,000 each
    python benchmarks/emitters.py --evaluations 31000 --rows es es+mutation
    python benchmarks/emitters.py --evaluations 4000 runtime.device=cuda

Each row is a shipped experiment with overrides, run to ``--evaluations`` evaluations (seed
0). The table gives the median over the classes at 1/8, 1/4, 1/2 and all of the budget
(from the run's log, the archive as it stood after the first generation that reached that
many evaluations), the evaluations per second, and at the end the classes at >= 90% and
>= 99% and the median from the saved PNGs (``png_confidence``). Extra ``key=value``
overrides apply to every row. Runs go to a temporary folder (``--keep DIR`` keeps them).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import algorithms  # benchmarks/algorithms.py: one row to a budget, figures from the PNGs

ROWS = {
    "mutation (CPPN)": ("imagenet_cppn_mapelites-quick", []),
    "mutation (CPPN), stepping stones": ("imagenet_cppn_mapelites-quick",
                                         ["algorithm.stepping_stones=true"]),
    "mutation + cma (CPPN)": ("imagenet_cppn_cmame-quick", []),
    "mutation (direct 16x16)": ("imagenet_es-quick", [
        "algorithm.emitters=[{type: mutation, batch: 100}]"]),
    "es (direct 16x16)": ("imagenet_es-quick", []),
    "es + mutation (direct 16x16)": ("imagenet_es-quick", [
        "algorithm.emitters=[{type: es}, {type: mutation, batch: 64}]"]),
    "es + mutation, stepping stones": ("imagenet_es-quick", [
        "algorithm.emitters=[{type: es}, {type: mutation, batch: 64}]",
        "algorithm.stepping_stones=true"]),
}


def medians_at(log_file: Path, marks: list[int]) -> list[float | None]:
    """The log's median after the first generation reaching each mark of evaluations."""
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    found = []
    for mark in marks:
        hit = next((r for r in records if r["evaluations"] >= mark), None)
        found.append(None if hit is None else hit["median"])
    return found


def run_row(name: str, overrides: list[str], evaluations: int, out: Path) -> dict:
    row = algorithms.run_row(name, overrides, evaluations, str(out))
    marks = [evaluations // 8, evaluations // 4, evaluations // 2, evaluations]
    return {**row, "medians": medians_at(out / "log.jsonl", marks)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=10_000)
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), metavar="ROW",
                        default=list(ROWS), help=f"rows to run (default: all): {sorted(ROWS)}")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    parser.add_argument("overrides", nargs="*", help="key=value for every row")
    args = parser.parse_args()
    n = args.evaluations
    header = "".join(f"{f'median@{m:,}':>16}" for m in (n // 8, n // 4, n // 2, n))
    print(f"{'row':<34}{header}{'evals/s':>9}{'>=90%':>7}{'>=99%':>7}{'PNG median':>11}",
          flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        for i, label in enumerate(args.rows):
            name, extra = ROWS[label]
            row = run_row(name, extra + args.overrides, n, root / f"row{i}")
            cells = "".join(f"{'-' if m is None else f'{m:.2%}':>16}" for m in row["medians"])
            print(f"{label:<34}{cells}{row['rate']:>9.1f}{row['above_90']:>5}/{row['classes']}"
                  f"{row['above_99']:>5}/{row['classes']}{row['median']:>11.2%}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
