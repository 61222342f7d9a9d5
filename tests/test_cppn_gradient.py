"""The differentiable CPPN drawing that carries gradient ascent's gradient to link weights."""
import numpy as np
import torch

from evofool.genomes.cppn import CppnGenome, CppnParams, coordinate_inputs
from evofool.genomes.cppn_gradient import draw, hsv_to_rgb, link_weights


def evolved_and_grown(size: int, grow: int, layers: int, seed: int = 0):
    """Mutated random CPPNs (a few evolved-looking hidden nodes), then grown layers with
    random output weights, so that every link shapes the image."""
    genome = CppnGenome(CppnParams(quantize=False), channels=3, size=(size, size))
    rng = np.random.default_rng(seed)
    population = genome.random(3, rng)
    for generation in range(1, 4):
        population = genome.mutate(population, rng, generation=generation)
    grown = genome.grown(population, grow, rng, layers=layers)
    weights = link_weights(grown)
    weights += rng.uniform(-0.5, 0.5, weights.shape).astype(np.float32) * (weights == 0)
    return genome, genome.with_parameters(grown, weights)


def test_the_drawing_is_the_exact_render():
    genome, population = evolved_and_grown(size=24, grow=6, layers=3)
    inputs = coordinate_inputs(24, 24, "picbreeder", (24, 24))
    raw = torch.stack([draw(graph, torch.from_numpy(row), inputs, 3)
                       for graph, row in zip(population, link_weights(population))])
    drawn = hsv_to_rgb(raw.abs().clamp(max=1.0)).clamp(0.0, 1.0).view(3, 3, 24, 24)
    assert torch.allclose(drawn, genome.render(population), atol=1e-5)


def test_the_drawing_s_gradient_is_its_derivative():
    """Every link weight's gradient, evolved or grown, against finite differences (float64)."""
    _, population = evolved_and_grown(size=6, grow=2, layers=2, seed=1)
    inputs = coordinate_inputs(6, 6, "picbreeder", (6, 6)).double()
    for graph, row in zip(population, link_weights(population)):
        weights = torch.from_numpy(row[:graph.number_of_edges()]).double().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda w: draw(graph, w, inputs, 3), (weights,),
                                         fast_mode=True)
