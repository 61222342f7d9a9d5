"""Variation operators on real-valued genes, shared by every genome type that has them.

Each operator is a deterministic core that takes its uniform random numbers as arrays
(``polynomial_step``, ``sbx_step``), so it can be checked number for number against DEAP's
``mutPolynomialBounded`` and ``cxSimulatedBinaryBounded`` (tests/test_variation.py), plus a
wrapper that draws those numbers from a NumPy generator for whole populations at once. The
wrappers' draws (count and order) are part of a run's reproducibility: changing them changes
every seeded run.
"""
from __future__ import annotations

import numpy as np


def bernoulli_positions(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Indices in [0, n), each chosen independently with probability ``rate``.

    Drawn as a binomial count and that many distinct indices, which needs about ``rate * n``
    random numbers instead of ``n`` (one per gene): at the paper's rate 0.1, a tenth.
    """
    count = int(rng.binomial(n, rate)) if n else 0
    return rng.choice(n, size=count, replace=False) if count else np.zeros(0, dtype=np.int64)


def polynomial_step(x: np.ndarray, u: np.ndarray, eta: float, bounded: bool = False,
                    low: float = 0.0, up: float = 1.0) -> np.ndarray:
    """Each gene of ``x`` after polynomial mutation driven by its uniform ``u`` in [0, 1),
    clipped to [low, up]; float64.

    ``bounded=False``: the paper's released code (Sferes2): delta = (2u)^(1/(eta+1)) - 1 for
    u < 0.5, else 1 - (2(1-u))^(1/(eta+1)), in [-1, 1] whatever the gene's distance to the
    bounds, times the range, so genes near a bound are often clipped onto it.
    ``bounded=True``: Deb's bounded variant, as DEAP's ``mutPolynomialBounded`` computes it,
    whose step shrinks towards a near bound so that a bound is rarely hit.
    """
    x = np.asarray(x, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    exponent = 1.0 / (eta + 1.0)
    lower = u < 0.5
    if bounded:
        span = up - low
        xy = np.where(lower, 1.0 - (x - low) / span, 1.0 - (up - x) / span) ** (eta + 1.0)
        val = np.where(lower, 2.0 * u + (1.0 - 2.0 * u) * xy,
                       2.0 * (1.0 - u) + 2.0 * (u - 0.5) * xy)
        delta = np.where(lower, val ** exponent - 1.0, 1.0 - val ** exponent)
    else:
        base = np.where(lower, 2.0 * u, 2.0 * (1.0 - u)) ** exponent
        delta = np.where(lower, base - 1.0, 1.0 - base)
    return np.clip(x + delta * (up - low), low, up)


def polynomial_mutation(genes: np.ndarray, rate: float, eta: float, rng: np.random.Generator,
                        bounded: bool = False) -> np.ndarray:
    """A mutated copy of ``genes`` (in [0, 1]): each gene with probability ``rate``
    (:func:`bernoulli_positions`) gets :func:`polynomial_step` (eta 15, unbounded: median
    |delta| 0.042). Draws: the positions, then one uniform per chosen gene."""
    out = genes.copy()
    flat = out.reshape(-1)
    chosen = bernoulli_positions(flat.size, rate, rng)
    u = rng.random(chosen.size)
    flat[chosen] = polynomial_step(flat[chosen], u, eta, bounded)
    return out


def sbx_step(first: np.ndarray, second: np.ndarray, eta: float, u_cross: np.ndarray,
             u_beta: np.ndarray, u_swap: np.ndarray, zero_equal_genes: bool = False,
             low: float = 0.0, up: float = 1.0, eps: float | None = None,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Two children of bounded SBX (Deb & Agrawal), as DEAP's ``cxSimulatedBinaryBounded``
    computes it, gene by gene and with one uniform of each array per gene: a gene crosses
    when ``u_cross <= 0.5`` and the parents differ by more than ``eps`` (default: the dtype's
    machine epsilon; DEAP uses 1e-14), its spread factor comes from ``u_beta``, and
    ``u_swap <= 0.5`` gives the first child the upper child value. Other genes are copied;
    with ``zero_equal_genes`` (the released code's quirk) genes equal in both parents become
    0. Children keep the parents' dtype."""
    y1, y2 = np.minimum(first, second), np.maximum(first, second)
    spread = y2 - y1
    differ = spread > (np.finfo(first.dtype).eps if eps is None else eps)
    safe = np.where(differ, spread, 1.0)
    exponent = 1.0 / (eta + 1.0)

    def contracted(beta: np.ndarray) -> np.ndarray:
        alpha = 2.0 - beta ** -(eta + 1.0)
        return np.where(u_beta <= 1.0 / alpha, (u_beta * alpha) ** exponent,
                        (1.0 / (2.0 - u_beta * alpha)) ** exponent)

    c1 = 0.5 * (y1 + y2 - contracted(1.0 + 2.0 * (y1 - low) / safe) * spread)
    c2 = 0.5 * (y1 + y2 + contracted(1.0 + 2.0 * (up - y2) / safe) * spread)
    swap = u_swap <= 0.5
    c1, c2 = np.where(swap, c2, c1), np.where(swap, c1, c2)
    crossed = differ & (u_cross <= 0.5)
    child1 = np.where(crossed, np.clip(c1, low, up), first).astype(first.dtype)
    child2 = np.where(crossed, np.clip(c2, low, up), second).astype(first.dtype)
    if zero_equal_genes:
        child1[~differ] = 0.0
        child2[~differ] = 0.0
    return child1, child2


def simulated_binary_crossover(first: np.ndarray, second: np.ndarray, eta: float,
                               rng: np.random.Generator, zero_equal_genes: bool = False,
                               ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sbx_step` on [0, 1] for whole populations of parents paired by position.
    Draws, each one uniform per gene: the spread factors, the swaps, the crossings."""
    u_beta = rng.random(first.shape)
    u_swap = rng.random(first.shape)
    u_cross = rng.random(first.shape)
    return sbx_step(first, second, eta, u_cross, u_beta, u_swap, zero_equal_genes)
