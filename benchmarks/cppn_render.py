"""How long rendering CPPNs takes next to the classifier that scores them, and which batching
strategy renders faster on this machine.

For a batch of 400 CPPNs (random genomes after 50 mutations each, as mid-run offspring are,
plus a "grown" population mutated without deletions: bigger live networks, an upper bound)
it times, best of a few repeats:
  * per-individual rendering (what ``CppnGenome.render`` does: each genome compiled and
    evaluated over the whole pixel grid with in-place torch and NumPy ops on reused planes);
  * ``batching: by_depth`` (the strategy for GPUs, here on the CPU): every op of every genome
    at the same depth in one gather + weighted sum (sources padded to the widest node) +
    one call per activation (``evofool.genomes.cppn_batched``);
  * the classifier on the same 400 images, as the loop scores them (``Target.scores``):
    LeNet (lenet-mnist) at 28 x 28 gray, and at 224 x 224 RGB EfficientNet-Lite0
    (efficientnet-lite0, from the ``zoo`` extra; without it, torchvision's EfficientNet-B0
    with random weights stands in: of comparable size and cost, a little heavier).
Prints a table with the render/classifier ratio (the target at 224 px is <= 10%).

    python benchmarks/cppn_render.py [--n 400] [--mutations 50] [--repeats 3]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from evofool.errors import EvofoolError
from evofool.fitness.registry import build_target
from evofool.genomes.cppn import CppnGenome, CppnParams
from evofool.genomes.cppn_graph import compile_graph
from timing import best_times  # benchmarks/timing.py


def population(genome: CppnGenome, n: int, mutations: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pop = genome.random(n, rng)
    for _ in range(mutations):
        pop = genome.mutate(pop, rng, generation=1)
    return pop


# --- the table -------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--mutations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.n} CPPNs after {args.mutations} mutations each")

    lenet = build_target("lenet-mnist", torch.device("cpu"))
    try:
        lite0 = build_target("efficientnet-lite0", torch.device("cpu"))
        large = ("EfficientNet-Lite0 (efficientnet-lite0)", lite0.scores)
    except EvofoolError:  # the zoo extra is not installed
        import torchvision
        effnet = torchvision.models.efficientnet_b0(weights=None).eval()

        def effnet_scores(images: torch.Tensor) -> None:
            with torch.inference_mode():
                torch.softmax(effnet(images), dim=1)
        large = ("EfficientNet-B0, random weights (stand-in for Lite0)", effnet_scores)

    def in_batches_of_100(score):
        return lambda images: [score(images[i:i + 100]) for i in range(0, len(images), 100)]

    classifiers = {28: ("LeNet (lenet-mnist)", lenet.scores),
                   224: (large[0], in_batches_of_100(large[1]))}
    classifier_time = {}
    rows = []
    no_deletions = dict(delete_connection_rate=0.0, delete_node_rate=0.0)
    for size, channels in ((28, 1), (224, 3)):
        for label, extra in (("mid-run", {}), ("grown", no_deletions)):
            genome = CppnGenome(CppnParams(**extra), channels, (size, size))
            pop = population(genome, args.n, args.mutations, seed=size)
            programs = [compile_graph(g) for g in pop]
            live = np.mean([len(p.ops) for p in programs])
            nodes = np.mean([len(g) for g in pop])
            images = genome.render(pop)
            by_depth = CppnGenome(CppnParams(**extra), channels, (size, size))
            by_depth.place(torch.device("cpu"), "by_depth")
            differ = (by_depth.render(pop) != images).float().mean().item()
            per_individual, layered = best_times(
                [lambda: genome.render(pop), lambda: by_depth.render(pop)], args.repeats)
            if size not in classifier_time:
                name, score = classifiers[size]
                score(images[:8])  # warm-up
                (seconds,) = best_times([lambda: score(images)],
                                        2 if size == 224 else args.repeats, warm_up=False)
                classifier_time[size] = (name, seconds)
            name, seconds = classifier_time[size]
            rows.append((f"{size}x{size}x{channels} {label}", nodes, live, per_individual,
                         layered, differ, name, seconds))

    print(f"\n{'images':<22}{'nodes':>6}{'live ops':>9}{'per-indiv.':>12}{'layered':>10}"
          f"{'differ':>8}{'classifier':>12}{'render/clf':>11}  classifier")
    for label, nodes, live, per, lay, differ, name, clf in rows:
        print(f"{label:<22}{nodes:>6.1f}{live:>9.1f}{per * 1e3:>10.1f}ms{lay * 1e3:>8.1f}ms"
              f"{differ:>8.1%}{clf * 1e3:>10.1f}ms{per / clf:>11.1%}  {name}")
    print("\nper-indiv. = CppnGenome.render on the CPU (runtime.render_batching: per_genome); layered = "
          "render_batching: by_depth;\ndiffer = share of pixels where the two disagree (float rounding "
          "order); times are the best of the repeats.")


if __name__ == "__main__":
    main()
