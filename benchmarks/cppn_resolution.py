"""Is an elite rendered large the picture that was scored? (CPPN runs.)

For every filled class of each run: the run's model's confidence in the elite at the scored
size, and in the elite rendered at ``--size`` px and averaged back down to the scored size,
and the mean absolute pixel difference of those two images (``evofool.render.resolution_check``).

    python benchmarks/cppn_resolution.py RUN_DIR [RUN_DIR ...] [--size 1024] [--sheet X.png]

``--sheet`` also writes, for the first run, a picture with each elite at the scored size
(top row, enlarged without smoothing) above its large render (bottom row, shrunk to match).
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from evofool.montage import to_uint8
from evofool.run_data import read_run
from evofool.render import resolution_check

TILE = 128


def write_sheet(run_dir: str, size: int, out: str) -> None:
    run = read_run(run_dir)
    cells = np.flatnonzero(run.archive.filled)
    sheet = Image.new("RGB", (len(cells) * (TILE + 4), 2 * TILE + 4), "white")
    for i, cell in enumerate(cells):
        genome = run.archive.genomes[cell:cell + 1]
        for row, (image, resample) in enumerate([
                (run.genome_type.render(genome), Image.NEAREST),
                (run.genome_type.render(genome, size=(size, size)), Image.LANCZOS)]):
            tile = Image.fromarray(to_uint8(image)[0].squeeze()).convert("RGB")
            sheet.paste(tile.resize((TILE, TILE), resample), (i * (TILE + 4), row * (TILE + 4)))
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="CPPN run directories")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sheet", help="PNG: the first run's elites, scored size over large")
    args = parser.parse_args()
    print(f"| run | class | confidence | {args.size} px, averaged down | mean abs pixel diff |")
    print("|---|---|---:|---:|---:|")
    summary = []
    for run in args.runs:
        rows = resolution_check(run, args.size, args.device)
        for row in rows:
            print(f"| {run} | {row['name']} | {row['confidence']:.6f} | "
                  f"{row['large_confidence']:.6f} | {row['mean_abs_pixel_difference']:.3f} |")
        kept = sum(r["large_confidence"] >= 0.9999 for r in rows)
        worst = max(r["mean_abs_pixel_difference"] for r in rows)
        summary.append(f"{run}: {kept}/{len(rows)} elites still >= 99.99% at {args.size} px "
                       f"averaged down; largest mean abs pixel difference {worst:.3f}")
    print()
    print("\n".join(summary))
    if args.sheet:
        write_sheet(args.runs[0], args.size, args.sheet)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
