"""The shared variation operators against DEAP's, number for number on the same uniforms."""
import random

import numpy as np
import pytest
from deap import tools

from evofool.genomes.direct import DirectGenome, DirectParams
from evofool.genomes.variation import (bernoulli_positions, polynomial_mutation,
                                       polynomial_step, sbx_step, simulated_binary_crossover)

N = 600


def genes(rng, low=0.0, up=1.0):
    """Random genes in [low, up] with a few at each bound and a few a hair inside them."""
    x = low + (up - low) * rng.random(N)
    x[:20], x[20:40] = low, up
    x[40:50], x[50:60] = low + 1e-9, up - 1e-9
    return x


def feed_random(monkeypatch, draws):
    """Make ``random.random`` (which DEAP calls) return ``draws`` in order."""
    stream = iter([float(d) for d in draws])
    monkeypatch.setattr(random, "random", lambda: next(stream))
    return stream


@pytest.mark.parametrize("eta, low, up", [(15.0, 0.0, 1.0), (0.0, 0.0, 1.0), (5.0, -2.0, 3.0)])
def test_bounded_polynomial_step_is_deaps_mut_polynomial_bounded(monkeypatch, eta, low, up):
    rng = np.random.default_rng(int(eta))
    x, u = genes(rng, low, up), rng.random(N)
    u[:5] = 0.5
    # DEAP's order, per gene: the selection draw (always taken at indpb 1), then the step's
    stream = feed_random(monkeypatch, np.column_stack([np.full(N, 0.7), u]).ravel())
    (expected,) = tools.mutPolynomialBounded(x.tolist(), eta, low, up, indpb=1.0)
    assert next(stream, None) is None  # DEAP used exactly the draws we built
    got = polynomial_step(x, u, eta, bounded=True, low=low, up=up)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("eta, low, up", [(10.0, 0.0, 1.0), (2.0, 0.0, 1.0), (20.0, -1.0, 4.0)])
def test_sbx_step_is_deaps_cx_simulated_binary_bounded(monkeypatch, eta, low, up):
    rng = np.random.default_rng(int(eta) + 100)
    first, second = genes(rng, low, up), genes(rng, low, up)
    second[60:120] = first[60:120]  # equal genes: DEAP draws nothing more for them
    first[120:130], second[120:130] = low, up  # the widest spread
    u_cross, u_beta, u_swap = rng.random(N), rng.random(N), rng.random(N)
    u_cross[:3] = u_swap[3:6] = 0.5  # "<= 0.5" as in DEAP
    draws = []
    for i in range(N):  # DEAP's order: cross; if crossing different genes, beta then swap
        draws.append(u_cross[i])
        if u_cross[i] <= 0.5 and abs(first[i] - second[i]) > 1e-14:
            draws += [u_beta[i], u_swap[i]]
    stream = feed_random(monkeypatch, draws)
    expected1, expected2 = tools.cxSimulatedBinaryBounded(first.tolist(), second.tolist(),
                                                          eta, low, up)
    assert next(stream, None) is None
    child1, child2 = sbx_step(first, second, eta, u_cross, u_beta, u_swap, low=low, up=up,
                              eps=1e-14)
    np.testing.assert_allclose(child1, expected1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(child2, expected2, rtol=0, atol=1e-12)
    crossed = (u_cross <= 0.5) & (first != second)
    assert 0.3 < crossed.mean() < 0.6 and np.all(child1[~crossed] == first[~crossed])


def test_sferes_polynomial_step_is_the_released_codes_formula():
    rng = np.random.default_rng(7)
    x, u = genes(rng), rng.random(N)
    for eta in (15.0, 1.0):
        expected = []
        for gene, r in zip(x.tolist(), u.tolist()):
            if r < 0.5:
                delta = (2 * r) ** (1 / (eta + 1)) - 1
            else:
                delta = 1 - (2 * (1 - r)) ** (1 / (eta + 1))
            expected.append(min(max(gene + delta, 0.0), 1.0))
        np.testing.assert_allclose(polynomial_step(x, u, eta), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bounded", [False, True])
def test_polynomial_mutation_draws_positions_then_one_uniform_per_chosen_gene(bounded):
    x = genes(np.random.default_rng(3)).astype(np.float32).reshape(20, 30)
    before = x.copy()
    mutated = polynomial_mutation(x, 0.4, 15.0, np.random.default_rng(4), bounded=bounded)
    assert np.array_equal(x, before) and mutated.dtype == np.float32
    assert mutated.min() >= 0 and mutated.max() <= 1

    rng = np.random.default_rng(4)  # the same draws, by hand, through the core
    chosen = bernoulli_positions(x.size, 0.4, rng)
    expected = x.reshape(-1).copy()
    expected[chosen] = polynomial_step(expected[chosen], rng.random(chosen.size), 15.0, bounded)
    assert np.array_equal(mutated.reshape(-1), expected)


def test_simulated_binary_crossover_draws_beta_then_swap_then_cross():
    rng = np.random.default_rng(5)
    first = genes(rng).astype(np.float32).reshape(20, 30)
    second = genes(rng).astype(np.float32).reshape(20, 30)
    second[:, :3] = first[:, :3]
    copies = first.copy(), second.copy()
    child1, child2 = simulated_binary_crossover(first, second, 10.0, np.random.default_rng(6))
    assert np.array_equal(first, copies[0]) and np.array_equal(second, copies[1])
    assert child1.dtype == child2.dtype == np.float32
    assert min(child1.min(), child2.min()) >= 0 and max(child1.max(), child2.max()) <= 1

    rng = np.random.default_rng(6)
    u_beta, u_swap, u_cross = (rng.random(first.shape) for _ in range(3))
    expected = sbx_step(first, second, 10.0, u_cross, u_beta, u_swap)
    assert np.array_equal(child1, expected[0]) and np.array_equal(child2, expected[1])


def test_direct_genome_uses_the_bounded_variant_on_request():
    params = DirectParams(polynomial="bounded", mutation_rate=0.3)
    genome = DirectGenome(params, 1, (8, 8))
    population = genome.random(5, np.random.default_rng(0))
    mutated = genome.mutate(population, np.random.default_rng(1), generation=1)
    expected = polynomial_mutation(population, 0.3, params.mutation_eta,
                                   np.random.default_rng(1), bounded=True)
    assert np.array_equal(mutated, expected)
    sferes = DirectGenome(DirectParams(mutation_rate=0.3), 1, (8, 8))
    assert not np.array_equal(sferes.mutate(population, np.random.default_rng(1), 1), mutated)
