"""The direct-pixel genome: the paper's mutation, SBX, rendering and saving."""
import numpy as np
import torch

from evofool.genomes.contract import check_genome_type
from evofool.genomes.direct import DirectGenome, DirectParams
from evofool.genomes.variation import polynomial_mutation, simulated_binary_crossover


def test_direct_genome_keeps_the_genome_contract():
    check_genome_type(DirectGenome, DirectParams(), channels=1)
    check_genome_type(DirectGenome, DirectParams(crossover="sbx"), channels=3)


def test_polynomial_mutation_touches_about_rate_of_genes_by_small_steps():
    rng = np.random.default_rng(0)
    genes = rng.random((200, 784), dtype=np.float32) * 0.5 + 0.25  # away from the bounds
    mutated = polynomial_mutation(genes, 0.1, 15.0, rng)
    changed = mutated != genes
    assert 0.095 < changed.mean() < 0.105
    steps = np.abs(mutated - genes)[changed]
    assert 0.035 < np.median(steps) < 0.05  # paper.md: median |delta| 0.042 for eta 15
    assert mutated.min() >= 0 and mutated.max() <= 1
    assert not np.shares_memory(mutated, genes)


def test_every_gene_is_equally_likely_to_be_mutated():
    from evofool.genomes.variation import bernoulli_positions
    rng = np.random.default_rng(3)
    counts = np.zeros(500)
    for _ in range(4000):
        counts[bernoulli_positions(500, 0.1, rng)] += 1
    share = counts / 4000
    assert abs(share.mean() - 0.1) < 0.003
    assert share.min() > 0.08 and share.max() < 0.12  # first and last genes included
    assert len(bernoulli_positions(50, 1.0, rng)) == 50 and len(bernoulli_positions(50, 0, rng)) == 0
    assert len(bernoulli_positions(50, 1e-300, rng)) == 0  # tiny rates must not hang or overflow


def test_mutation_rate_halves_every_1000_generations_unless_constant():
    paper = DirectGenome(DirectParams(), 1, (28, 28))
    assert [paper.mutation_rate(g) for g in (1, 999, 1000, 2500)] == [0.1, 0.1, 0.05, 0.025]
    code = DirectGenome(DirectParams(rate_halving_every=0), 1, (28, 28))
    assert code.mutation_rate(5000) == 0.1


def test_sbx_children_stay_in_bounds_and_between_the_parents_spread():
    rng = np.random.default_rng(1)
    a, b = rng.random((50, 100), dtype=np.float32), rng.random((50, 100), dtype=np.float32)
    b[:, :10] = a[:, :10]  # equal genes
    c1, c2 = simulated_binary_crossover(a, b, 10.0, rng)
    assert c1.min() >= 0 and c2.max() <= 1
    assert np.array_equal(c1[:, :10], a[:, :10]) and np.array_equal(c2[:, :10], b[:, :10])
    z1, _ = simulated_binary_crossover(a, b, 10.0, rng, zero_equal_genes=True)
    assert np.all(z1[:, :10] == 0)  # the released code's quirk, on request
    assert (c1 != a).mean() > 0.3  # about half of the differing genes crossed


def test_quantized_render_is_exactly_what_an_8_bit_png_holds():
    genome = DirectGenome(DirectParams(), 1, (28, 28))
    population = genome.random(4, np.random.default_rng(2))
    images = genome.render(population)
    assert torch.equal(torch.round(images * 255) / 255, images)
    assert tuple(genome.render(population, size=(56, 56)).shape) == (4, 1, 56, 56)


def test_pack_rejects_genomes_of_the_wrong_shape():
    genome = DirectGenome(DirectParams(), 1, (28, 28))
    try:
        genome.unpack({"pixels": np.zeros((3, 1, 10, 10), np.float32)})
    except ValueError as error:
        assert "(N, 1, 28, 28)" in str(error)
    else:
        raise AssertionError("a wrongly shaped genome file was accepted")
