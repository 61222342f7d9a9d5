"""Inspect a run: the per-class table, the log as a plot, one elite's image and genome, and
that elite drawn large.

    python examples/inspect_run.py [RUN_DIR]

RUN_DIR is any run directory (or runs/NAME for the latest run of NAME); without it, a short
CPPN run is made first. Pictures go to $EVOFOOL_EXAMPLES_OUT (default ./evofool-examples).
"""
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files, no window (a notebook shows figures inline anyway)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import evofool  # noqa: E402

out = Path(os.environ.get("EVOFOOL_EXAMPLES_OUT", "evofool-examples"))
out.mkdir(parents=True, exist_ok=True)

if len(sys.argv) > 1:
    run = evofool.load_run(sys.argv[1])  # add trust=True only for a run from someone you trust
else:  # CPPN genomes fool LeNet within a few generations, and draw at any size
    run = evofool.run("mnist_cppn_mapelites", budget={"generations": 8})
print(run)

# The archive: one row per class. Which classes are fooled at >= 99%?
try:
    table = run.archive
    print(table[table.confidence >= 0.99][["name", "confidence", "generation"]])
except evofool.EvofoolError as exc:  # pandas not installed
    print(exc)

# The log: one record per generation (generation 0 is the random start). "min", "median"
# and "max" summarise the elites over classes; "best" holds each class's elite confidence.
step = [record.get("step", record["generation"]) for record in run.log]
best = np.stack([record["best"] for record in run.log])  # (records, classes)
figure, axis = plt.subplots(figsize=(6, 3.5))
axis.plot(step, [record["median"] for record in run.log], label="median over classes")
axis.plot(step, [record["min"] for record in run.log], label="worst class")
axis.plot(step, np.nanmax(best, axis=1), label="best class")
axis.set_xlabel("generation")
axis.set_ylabel("elite confidence")
axis.legend()
figure.tight_layout()
figure.savefig(out / "inspect_progress.png")

# One elite: the class with the most confident elite. Its image is uint8 (H, W, C), exactly
# the PNG in the archive; its genome is what evolution changed (pixels, or a CPPN graph).
top = max((row for row in run.classes if row["confidence"] is not None),
          key=lambda row: row["confidence"])
elite = run.elite(top["class_id"])
print(elite)
print("image", elite.image.shape, elite.image.dtype, "| genome:",
      run.genome_type.describe(elite.genome))
elite.render().save(out / "inspect_elite.png")          # as scored (28 x 28 for MNIST)
elite.render(size=512).save(out / "inspect_elite_512.png")  # a CPPN redrawn, not upscaled
run.export(out / "inspect_export", genomes=True)  # every PNG + genome JSON + the montage
print(f"wrote {out / 'inspect_progress.png'}, {out / 'inspect_elite_512.png'} and "
      f"{out / 'inspect_export'}")
