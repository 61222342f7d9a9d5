"""A contract test that any genome type (built in or plugin) can run against itself.

    from evofool.genomes.contract import check_genome_type
    check_genome_type(MyGenome)            # raises AssertionError on a broken contract
"""
from __future__ import annotations

import io
import json

import numpy as np
import torch

from evofool.genomes.base import GenomeType


def check_genome_type(cls: type[GenomeType], params=None, channels: int = 1,
                      size: tuple[int, int] = (12, 12), n: int = 6, seed: int = 0) -> None:
    """Exercise every method the engine calls and check the shapes, ranges and round trips
    the engine relies on (arrays through ``np.savez``, one genome through JSON)."""
    genome_type = cls(params if params is not None else cls.Params(), channels, size)
    rng = np.random.default_rng(seed)
    population = genome_type.random(n, rng)
    assert isinstance(population, np.ndarray) and len(population) == n, \
        "random(n) must return a NumPy array with n individuals on the first axis"

    again = genome_type.random(n, np.random.default_rng(seed))
    assert _same_images(genome_type, population, again), "random() must depend only on the rng"

    before = genome_type.render(population).clone()
    mutants = genome_type.mutate(population, rng, generation=1)
    assert len(mutants) == n, "mutate() must return one mutant per individual"
    assert torch.equal(genome_type.render(population), before), "mutate() changed its input"

    first, second = genome_type.crossover(population[: n // 2], mutants[: n // 2], rng)
    assert len(first) == len(second) == n // 2, "crossover() must return two populations"
    joined = np.concatenate([first, second, population[np.array([0, 1])]])

    images = genome_type.render(joined)
    channels_out = genome_type.channels
    assert images.dtype == torch.float32, "render() must return float32"
    assert tuple(images.shape) == (len(joined), channels_out, *genome_type.size), \
        f"render() shape {tuple(images.shape)} is not (N, C, H, W) at the genome's size"
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0, "pixels must be in [0, 1]"
    bigger = genome_type.render(joined, size=(2 * size[0], 2 * size[1]))
    assert tuple(bigger.shape[-2:]) == (2 * size[0], 2 * size[1]), "render(size=...) ignored"

    arrays = genome_type.pack(mutants)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:  # pack() must need no pickle
        restored = genome_type.unpack({k: loaded[k] for k in loaded.files})
    assert _same_images(genome_type, mutants, restored), "unpack(pack(p)) must render as p"

    for i in (0, n - 1):  # one genome's JSON, as genome files hold it
        data = genome_type.to_json(mutants[i])
        text = json.dumps(data, allow_nan=False)
        assert json.loads(text) == data, \
            "to_json() must give plain JSON (dicts with string keys, lists, str, finite numbers)"
        one = genome_type.from_json(json.loads(text))
        assert len(one) == 1, "from_json() must return a population of one genome"
        assert _same_images(genome_type, mutants[i:i + 1], one), \
            "from_json(to_json(p[i])) must render as p[i:i + 1]"


def _same_images(genome_type: GenomeType, a: np.ndarray, b: np.ndarray) -> bool:
    return torch.equal(genome_type.render(a), genome_type.render(b))
