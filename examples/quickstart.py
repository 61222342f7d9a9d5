"""Quickstart: evolve images that fool the shipped MNIST LeNet, then look at them.

    python examples/quickstart.py

Runs go where `evofool run` puts them (./runs/NAME/DATE_TIME); the pictures this script
makes go to $EVOFOOL_EXAMPLES_OUT (default ./evofool-examples). In a notebook, paste the
lines one cell at a time: a Run and a PIL image show themselves.
"""
import os
from pathlib import Path

import evofool

out = Path(os.environ.get("EVOFOOL_EXAMPLES_OUT", "evofool-examples"))
out.mkdir(parents=True, exist_ok=True)

# The paper's direct-encoding MAP-Elites run on MNIST, cut to 30 generations (a few seconds;
# the full 1,000 take about a minute on 2 cores). Keyword arguments are the command line's
# key=value overrides; a dict sets keys of one section.
run = evofool.run("mnist_direct_mapelites", seed=1, budget={"generations": 30})
print(run)  # classes filled, median confidence, generations, where the run is

# The per-class table: a pandas DataFrame (run.classes holds the same rows as dicts).
try:
    print(run.archive[["name", "confidence", "png_confidence", "generation"]])
except evofool.EvofoolError as exc:  # pandas not installed
    print(exc)
    for row in run.classes:
        print(row["class_id"], row["name"], row["confidence"])

run.montage().save(out / "quickstart_montage.png")  # every elite with its confidence
report = run.report(out / "quickstart_report")      # the HTML report, opens from disk
print(f"montage: {out / 'quickstart_montage.png'}\nreport: {report}")
