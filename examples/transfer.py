"""Do fooling images transfer? Score two runs' elites on two LeNets (the paper, sec. 3.3).

    python examples/transfer.py [OTHER_LENET.safetensors]

The other LeNet comes from `evofool.api.train_lenet(MNIST_DIR, "lenet_seed1.safetensors",
seed=1)` (or `evofool train lenet`); without one, the shipped LeNet stands in for it, so
the two columns agree. Two short runs are made first (./runs/NAME/DATE_TIME); the matrix
goes to $EVOFOOL_EXAMPLES_OUT (default ./evofool-examples).
"""
import os
import sys
from pathlib import Path

import evofool
from evofool.api import transfer

out = Path(os.environ.get("EVOFOOL_EXAMPLES_OUT", "evofool-examples"))
out.mkdir(parents=True, exist_ok=True)
other = f"lenet-mnist@{sys.argv[1]}" if len(sys.argv) > 1 else "lenet-mnist"

# Two encodings against the same network, a short budget each.
direct = evofool.run("mnist_direct_mapelites", budget={"generations": 10})
cppn = evofool.run("mnist_cppn_mapelites", budget={"generations": 5})

# Class by class, side by side.
for row in direct.compare(cppn):
    print(f"{row['class']}: direct {row['confidence_a']:.4f}  cppn {row['confidence_b']:.4f}")

# Each elite on the other LeNet: still its class? (rows are dicts; pandas.DataFrame(rows))
for row in cppn.rescore(other, device="cpu"):
    print(f"{row['class']}: {row['source_confidence']:.4f} -> {row['target_confidence']:.4f}"
          f" (top-1 there: {row['target_top1_name']})")

# The matrix: runs x models, mean confidence in their own class and the share >= 99%.
matrix = transfer([direct, cppn], ["lenet-mnist", other], threshold=0.99, device="cpu",
                  out=out / "transfer")
for run_dir, means in zip(matrix["runs"], matrix["mean_confidence"]):
    print(run_dir, [round(m, 4) for m in means])
print(f"wrote {out / 'transfer'}/transfer.csv, .json and .png")
