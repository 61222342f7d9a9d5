"""Gradient ascent (algorithm: gradient_ascent): the paper's other way to fool a network."""
import json

import numpy as np
import pytest

from evofool.cli import main
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.fitness.lenet import build_lenet_target
from evofool.run_data import read_run
from evofool.runner import resume_run, run_experiment
from evofool.search.gradient_ascent import MILESTONES
from conftest import small_experiment

ASCENT = {"type": "gradient_ascent", "decay": 0.0}


def ascent_experiment(tmp_path, **sections):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return small_experiment(tmp_path, **{
        "model": {"spec": "lenet-mnist", "classes": [3, 5, 8]}, "algorithm": ASCENT,
        "budget": {"generations": 150, "stop_confidence": 0.99}, **sections})


def test_every_class_climbs_to_the_stop_confidence_in_its_saved_png(tmp_path):
    result = run_experiment(load_experiment(ascent_experiment(tmp_path)))
    content = json.loads((result.run_dir / "archive" / "archive.json").read_text())
    for row in content["classes"]:
        assert row["png_confidence"] >= 0.99, row
        steps = [row["first_step"][m] for m in MILESTONES[:2]]  # top-1, then 99%
        assert None not in steps and steps[0] <= steps[1]
        assert row["evaluation_equivalents"]["0.99"] == 3 * (steps[1] + 1)
    # the PNG holds the very pixels scored: re-scoring the saved image gives the same figure
    run = read_run(result.run_dir)
    images = run.genome_type.render(run.archive.genomes)
    again = build_lenet_target("cpu").scores(images)[:, [3, 5, 8]]
    assert np.diag(again) == pytest.approx(run.archive.confidence, abs=1e-9)
    # a class that reached the stop confidence stops costing: the run ends early, and the
    # evaluations are 3 per image per step (forward 1, backward 2)
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert result.generations < 149
    assert log[-1]["evaluations"] == 3 * log[-1]["forward_passes"] == 3 * log[-1]["backward_passes"]
    ascending = [line["ascending"] for line in log]
    assert ascending == sorted(ascending, reverse=True) and ascending[-1] == 0


@pytest.mark.parametrize("update", ["paper", "adam"])
def test_a_stopped_and_resumed_ascent_repeats_the_uninterrupted_one(tmp_path, update):
    budget, algorithm = {"generations": 24}, {**ASCENT, "update": update}
    whole = run_experiment(load_experiment(ascent_experiment(tmp_path / "a", budget=budget,
                                                             algorithm=algorithm)))
    half = ascent_experiment(tmp_path / "b", budget={"generations": 12}, algorithm=algorithm)
    resume_run(run_experiment(load_experiment(half)).run_dir, ["budget.generations=24"])
    first, second = read_run(whole.run_dir).archive, read_run(tmp_path / "b" / "run").archive
    assert np.array_equal(first.genomes, second.genomes)
    assert np.array_equal(first.confidence, second.confidence)


def test_ascent_refines_the_elites_of_an_evolved_run(tmp_path):
    (tmp_path / "evolved").mkdir()
    evolved = run_experiment(load_experiment(small_experiment(
        tmp_path / "evolved", model={"spec": "lenet-mnist", "classes": [3, 5, 8]}))).run_dir
    before = read_run(evolved).archive
    path = ascent_experiment(tmp_path / "refined", algorithm={**ASCENT, "start_from": str(evolved)},
                             budget={"generations": 3})
    after = read_run(run_experiment(load_experiment(path)).run_dir).archive
    assert np.all(after.confidence >= before.confidence - 1e-9)


@pytest.mark.parametrize("change, fragment", [
    ({"genome": {"type": "cppn"}, "algorithm": {**ASCENT, "blur_radius": 1.0}},
     "blur_radius cannot blur"),
    ({"evaluation": {"backend": "ray"}}, "use evaluation.backend: local"),
    ({"algorithm": {**ASCENT, "start": "ones"}}, "algorithm.start"),
    ({"algorithm": {**ASCENT, "blur_radius": 0.1}}, "algorithm.blur_radius"),
    ({"algorithm": {**ASCENT, "start_from": "/no/such/run"}}, "/no/such/run"),
    ({"algorithm": {**ASCENT, "grow": 8}}, "genome type 'direct' cannot grow"),
    ({"genome": {"type": "cppn"}, "algorithm": {**ASCENT, "grow": -1}}, "algorithm.grow"),
])
def test_what_ascent_cannot_do_is_one_line(tmp_path, capsys, change, fragment):
    assert main(["run", str(ascent_experiment(tmp_path, **change))]) != 0
    message = capsys.readouterr().err.strip()
    assert fragment in message and len(message.splitlines()) == 1


def test_cppns_are_refined_in_their_link_weights_and_stay_cppns(tmp_path):
    (tmp_path / "evolved").mkdir()
    evolved = run_experiment(load_experiment(small_experiment(
        tmp_path / "evolved", genome={"type": "cppn"}, budget={"generations": 2},
        model={"spec": "lenet-mnist", "classes": [3, 5, 8]}))).run_dir
    path = ascent_experiment(tmp_path / "refined", genome={"type": "cppn"},
                             algorithm={**ASCENT, "start_from": str(evolved)},
                             budget={"generations": 30})
    before = read_run(evolved).archive
    after = read_run(run_experiment(load_experiment(path)).run_dir).archive
    assert np.all(after.confidence >= before.confidence - 1e-9)
    assert np.any(after.confidence > before.confidence + 1e-3)
    for old, new in zip(before.genomes, after.genomes):  # same drawing, other weights
        assert sorted(old.edges) == sorted(new.edges) and dict(old.nodes) == dict(new.nodes)


def test_grown_cppns_start_as_the_same_images_and_climb_higher(tmp_path):
    """grow adds hidden nodes that leave the image as it is; their weights give the gradient
    room that a few evolved links do not (random CPPNs, 20 steps, the same starts)."""
    runs = {}
    for grow in (0, 16):
        path = ascent_experiment(tmp_path / f"grow{grow}", genome={"type": "cppn"},
                                 algorithm={**ASCENT, "start": "randu", "grow": grow},
                                 budget={"generations": 20})
        result = run_experiment(load_experiment(path))
        log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text()
               .splitlines()]
        runs[grow] = log[0]["best"], read_run(result.run_dir).archive
    (start, fixed), (grown_start, grown) = runs[0], runs[16]
    assert grown_start == start  # step 0 scores the very same images
    for small, big in zip(fixed.genomes, grown.genomes):
        hidden = [n for n, kind in big.nodes(data="kind") if kind == "hidden"]
        assert len(hidden) == 16 + sum(kind == "hidden" for _, kind in small.nodes(data="kind"))
    assert grown.confidence.sum() > fixed.confidence.sum() + 0.2


def test_grown_layers_leave_every_image_as_it_is():
    import torch
    from evofool.genomes.cppn import CppnGenome, CppnParams
    genome = CppnGenome(CppnParams(), channels=3, size=(32, 32))
    rng = np.random.default_rng(0)
    population = genome.mutate(genome.random(4, rng), rng, generation=1)
    grown = genome.grown(population, 8, rng, layers=3)
    assert torch.equal(genome.render(population), genome.render(grown))
    for small, big in zip(population, grown):
        # 8 nodes fed by x, y, d, bias; two layers fed by the bias and 8 nodes; 8 x 3 outputs
        assert big.number_of_edges() == small.number_of_edges() + 8 * 4 + 2 * 8 * 9 + 8 * 3
        assert len(big) == len(small) + 24
    sines = genome.grown(population, 8, rng, layers=2, activations=["sine"])
    assert torch.equal(genome.render(population), genome.render(sines))
    for small, big in zip(population, sines):
        new = [activation for node, activation in big.nodes(data="activation")
               if node not in small]
        assert new == ["sine"] * 16


def test_start_from_a_run_of_another_genome_type_is_refused(tmp_path):
    (tmp_path / "cppn").mkdir()
    cppn = run_experiment(load_experiment(small_experiment(
        tmp_path / "cppn", genome={"type": "cppn"}, budget={"generations": 1}))).run_dir
    path = ascent_experiment(tmp_path / "ascent", algorithm={**ASCENT, "start_from": str(cppn)})
    with pytest.raises(EvofoolError, match="its genomes are 'cppn', this run's 'direct'"):
        run_experiment(load_experiment(path))


def test_start_from_a_run_that_draws_differently_is_refused(tmp_path):
    (tmp_path / "small").mkdir()
    small = run_experiment(load_experiment(small_experiment(
        tmp_path / "small", genome={"type": "direct", "size": 14},
        budget={"generations": 1}))).run_dir
    path = ascent_experiment(tmp_path / "ascent", algorithm={**ASCENT, "start_from": str(small)})
    with pytest.raises(EvofoolError, match=r"draws differently \(size: 14 there, None here; "
                                           r"size \(14, 14\) there, \(28, 28\) here\)"):
        run_experiment(load_experiment(path))


def test_start_from_may_differ_in_keys_that_leave_its_images_as_they_are(tmp_path):
    """A wider weight_limit or other mutation rates draw the evolved elites as they are, so
    they may be refined; a narrower weight_limit would clip their links, and is refused."""
    (tmp_path / "evolved").mkdir()
    evolved = run_experiment(load_experiment(small_experiment(
        tmp_path / "evolved", genome={"type": "cppn"}, budget={"generations": 2},
        model={"spec": "lenet-mnist", "classes": [3, 5, 8]}))).run_dir
    wider = ascent_experiment(tmp_path / "wider", algorithm={**ASCENT, "start_from": str(evolved)},
                              genome={"type": "cppn", "weight_limit": 30.0,
                                      "add_node_rate": 0.1}, budget={"generations": 1})
    refined = read_run(run_experiment(load_experiment(wider)).run_dir).archive
    assert np.all(refined.confidence >= read_run(evolved).archive.confidence - 1e-9)
    narrower = ascent_experiment(tmp_path / "narrower", genome={"type": "cppn", "weight_limit": 0.5},
                                 algorithm={**ASCENT, "start_from": str(evolved)})
    with pytest.raises(EvofoolError, match=r"draws differently \(weight_limit: 10.0 there, "
                                           r"0.5 here\)"):
        run_experiment(load_experiment(narrower))

