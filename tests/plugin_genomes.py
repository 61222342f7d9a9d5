"""A genome type that lives outside the package, as a user's plugin would.

Each genome is two numbers (frequency, phase) drawing horizontal stripes.
"""
from dataclasses import dataclass

import numpy as np
import torch

from evofool.genomes import GenomeType


@dataclass
class StripesParams:
    sigma: float = 0.3


class StripesGenome(GenomeType):
    name = "stripes"
    Params = StripesParams

    def random(self, n, rng):
        return rng.random((n, 2))

    def mutate(self, population, rng, generation):
        return np.clip(population + rng.normal(0, self.params.sigma, population.shape), 0, 1)

    def render(self, population, size=None):
        height, width = size or self.size
        rows = torch.linspace(0, 1, height).view(1, 1, height, 1)
        genes = torch.from_numpy(population).float()
        frequency, phase = genes[:, 0].view(-1, 1, 1, 1) * 20, genes[:, 1].view(-1, 1, 1, 1) * 6
        stripes = 0.5 + 0.5 * torch.sin(rows * frequency + phase)
        return stripes.expand(-1, self.channels, height, width).contiguous()

    def pack(self, population):
        return {"genes": population.astype(np.float64)}

    def unpack(self, arrays):
        genes = arrays["genes"]
        if genes.ndim != 2 or genes.shape[1] != 2:
            raise ValueError("stripes genomes are (N, 2) arrays")
        return genes
