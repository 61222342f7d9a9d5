"""Per-genome cost of the CPPN genome type in the evolution loop: mutate, compile, render.

A MAP-Elites generation mutates 200 parents drawn from the archive, compiles each child and
renders it (28 x 28 gray for MNIST), then scores the batch. This times, best of a few
interleaved repeats, per genome:
  * mutate:  ``CppnGenome.mutate`` of the parents (copies, weights, activations, structure);
  * compile: ``compile_graph`` of each child;
  * render:  ``CppnGenome.render`` of the children (compiling each, evaluating it over the
             pixel grid, |o| and quantization); eval = render - compile;
  * loop:    ``render(mutate(parents))``, what one generation costs before the classifier.

Parents are either the elites of a run directory (``--run runs/mnist_cppn_mapelites``: 200
drawn from its archive, as the loop draws them) or random genomes grown by ``--mutations``
rounds of mutation (default 40 and 150: a mid-run and a late-run population).

    python benchmarks/cppn_loop.py [--run DIR] [--n 200] [--mutations 40 150] [--repeats 5]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from evofool.genomes.cppn import CppnGenome, CppnParams
from evofool.genomes.cppn_graph import compile_graph
from timing import best_times  # benchmarks/timing.py


def grown(genome: CppnGenome, n: int, mutations: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    population = genome.random(n, rng)
    for _ in range(mutations):
        population = genome.mutate(population, rng, generation=1)
    return population


def from_run(run_dir: str, n: int, seed: int = 0) -> tuple[CppnGenome, np.ndarray]:
    from evofool.archive_store import load_archive
    archive, genome, _ = load_archive(run_dir)
    elites = archive.genomes[np.flatnonzero(archive.filled)]
    return genome, elites[np.random.default_rng(seed).integers(len(elites), size=n)]


def measure(label: str, genome: CppnGenome, parents: np.ndarray, repeats: int) -> None:
    rng = np.random.default_rng(1)
    children = genome.mutate(parents, rng, generation=1)
    genome.render(children)  # warm-up
    n = len(parents)
    mutate, compile_, render, loop = best_times([
        lambda: genome.mutate(parents, rng, generation=1),
        lambda: [compile_graph(g) for g in children],
        lambda: genome.render(children),
        lambda: genome.render(genome.mutate(parents, rng, generation=1)),
    ], repeats, warm_up=False)
    nodes = np.mean([len(g) for g in children])
    edges = np.mean([g.number_of_edges() for g in children])
    ops = np.mean([len(compile_graph(g).ops) for g in children])
    us = 1e6 / n
    print(f"{label:<18}{nodes:>6.1f}{edges:>6.1f}{ops:>5.1f}{mutate * us:>9.1f}"
          f"{compile_ * us:>9.1f}{(render - compile_) * us:>9.1f}{render * us:>9.1f}"
          f"{loop * us:>9.1f}{loop * 1e3:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a CPPN run directory whose archive gives the parents")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--mutations", type=int, nargs="*", default=[40, 150])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"per genome in us, {args.n} parents, best of {args.repeats}")
    print(f"{'parents':<18}{'nodes':>6}{'edges':>6}{'ops':>5}{'mutate':>9}{'compile':>9}"
          f"{'eval':>9}{'render':>9}{'loop':>9}{'loop ms':>9}")
    if args.run:
        genome, parents = from_run(args.run, args.n)
        measure("run archive", genome, parents, args.repeats)
    genome = CppnGenome(CppnParams(), 1, (28, 28))
    for mutations in args.mutations:
        measure(f"{mutations} mutations", genome, grown(genome, args.n, mutations),
                args.repeats)
    print("\nrender = compile + eval; loop: render(mutate(parents)), one generation before the "
          "classifier (per genome, and in ms for the batch).")


if __name__ == "__main__":
    main()
