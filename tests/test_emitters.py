"""MAP-Elites emitters (CMA-ES, search-gradient ES, the paper's mutation, mixed in one run)
and stepping stones (a cell for every model class; the listed ones reported)."""
import json

import numpy as np
import pytest

from evofool.archive_store import load_archive
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.genomes.cppn import CppnGenome, CppnParams
from evofool.genomes.cppn_gradient import links
from evofool.run_data import read_run
from evofool.runner import resume_run, run_experiment
from evofool.search.base import Budget
from evofool.search.contract import CLASSES, check_algorithm, made_up_scores
from evofool.search.map_elites import MapElites, MapElitesParams
from conftest import edit_arrays, small_experiment

MIXES = {
    "mutation": [{"type": "mutation", "batch": 10}],
    "mutation+cma": [{"type": "mutation", "batch": 6},
                     {"type": "cma", "sigma": 0.1, "population": 6, "restart_after": 2}],
    "es+mutation": [{"type": "es", "pairs": 3, "cells": 2, "restart_after": 2},
                    {"type": "mutation", "batch": 4}],
}


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_every_emitter_mix_keeps_the_ask_tell_contract(mix):
    # asks are repeatable, checkpoints through npz + JSON resume exactly (emitter states,
    # restarts included: restart_after 2 makes them happen within 8 generations)
    check_algorithm(MapElites, MapElitesParams(init_size=8, emitters=MIXES[mix]), generations=8)


def test_stepping_stones_keep_the_ask_tell_contract():
    check_algorithm(MapElites, MapElitesParams(init_size=8, offspring=6, stepping_stones=True),
                    generations=5)


def _search(emitters, genome_type=None, seed=0, classes=CLASSES, stop_confidence=None):
    from evofool.genomes.direct import DirectGenome, DirectParams
    genome_type = genome_type or DirectGenome(DirectParams(), 1, (6, 6))
    def evaluate(candidates):  # the made-up scorer on the rendered pixels
        return made_up_scores(genome_type.render(candidates).numpy())
    return MapElites(MapElitesParams(init_size=8, emitters=emitters), genome_type,
                     list(classes), Budget(generations=30, stop_confidence=stop_confidence),
                     seed, evaluate=evaluate)


@pytest.mark.parametrize("emitter", [{"type": "cma", "sigma": 0.2},
                                     {"type": "es", "pairs": 4, "sigma": 0.1, "step": 0.05}])
def test_a_per_cell_optimizer_climbs_its_cells(emitter):
    # class "b" of the made-up scorer wants dark images: random pixels start near 0.5
    search = _search([emitter])
    search.step()
    start = search.archive.confidence.copy()
    for _ in range(15):
        report = search.step()
    assert np.all(search.archive.confidence >= start)
    assert search.archive.confidence[1] > start[1] + 0.05, (start, search.archive.confidence)
    assert report.generation == 15 and search.log_fields()["emitter_batches"]


def test_a_cell_at_the_stop_confidence_gets_no_more_samples():
    # the same start twice; the second run's goal is what its best cell already holds
    emitter = {"type": "es", "pairs": 4}
    first = _search([emitter])
    first.step()
    goal = float(first.archive.confidence.max())
    search = _search([emitter], stop_confidence=goal)
    search.step()
    done = search.archive.confidence >= goal
    assert done.sum() == 1
    sampled = []
    for _ in range(3):
        search.step()
        sampled.append(search.log_fields()["emitter_batches"][0])
    assert sampled == [9 * (len(CLASSES) - 1)] * 3  # 4 pairs and the centre, open cells only
    assert np.all(search.archive.confidence[~done] < goal)  # (else fewer cells were open)


def test_cma_over_cppn_weights_keeps_each_cells_topology():
    genome_type = CppnGenome(CppnParams(), 1, (6, 6))
    search = _search([{"type": "cma", "sigma": 0.5, "population": 5}], genome_type)
    search.step()
    elites = {cell: search.archive.genomes[cell] for cell in range(len(CLASSES))}
    candidates = search.ask()
    assert len(candidates) == 5 * len(CLASSES)
    for k, graph in enumerate(candidates):
        template = elites[k // 5]
        assert links(graph) == links(template)
        assert (dict(graph.nodes(data=True))
                == dict(template.nodes(data=True)))
    weights = np.array([[g.edges[e]["weight"] for e in links(g)] for g in candidates[:5]])
    assert len(np.unique(weights.round(6), axis=0)) == 5  # samples differ in their weights
    # later generations: the mutation emitter changes the elites' topologies under the
    # running strategies, which keep their own template
    search.params.emitters.append({"type": "mutation", "batch": 6})
    mixed = _search(search.params.emitters, genome_type)
    for _ in range(8):
        mixed.step()
    assert mixed.log_fields()["emitter_batches"] == [5 * len(CLASSES), 6]


def test_emitters_run_from_yaml_resume_exactly_and_log_their_batches(tmp_path):
    emitters = [{"type": "mutation", "batch": 10},
                {"type": "es", "pairs": 2, "cells": 3, "restart_after": 3}]
    common = dict(genome={"type": "direct", "size": 8},
                  algorithm={"type": "map_elites", "init_size": 12, "emitters": emitters},
                  budget={"generations": 8})
    whole = tmp_path / "whole"
    whole.mkdir()
    run_experiment(load_experiment(small_experiment(whole, **common)))
    halves = tmp_path / "halves"
    halves.mkdir()
    path = small_experiment(halves, **{**common, "budget": {"generations": 8}})
    run_experiment(load_experiment(path, ["budget.generations=3"]))
    resume_run(halves / "run", ["budget.generations=8"])
    log = [json.loads(line) for line in (whole / "run" / "log.jsonl").read_text().splitlines()]
    assert [r.get("emitter_batches") for r in log[1:]] == [[10, 15]] * 8  # 3 cells x (2 pairs + centre)
    ours, _, _ = load_archive(whole / "run")
    theirs, _, _ = load_archive(halves / "run")
    assert ours.rows() == theirs.rows()
    assert np.array_equal(ours.genomes, theirs.genomes)


def _edit_checkpoint(path, change):
    def edit(arrays):
        state = json.loads(str(arrays["state"]))
        change(state, arrays)
        arrays["state"] = np.array(json.dumps(state))
    edit_arrays(path, edit)


def _first_running(state):
    return state["emitters"][0]["running"][0]


TAMPERED = {  # a checkpoint from a stranger: each a one-line refusal, nothing run or lost
    "a cell out of range": (lambda state, arrays: state["emitters"][0]["running"].append(99),
                            "names cell 99 of 3"),
    "a centre of another size": (lambda state, arrays: arrays.__setitem__(
        f"emitter0.cell{_first_running(state)}.centre", np.zeros(5)), "centre (5,)"),
    "an array missing": (lambda state, arrays: arrays.pop(
        f"emitter0.cell{_first_running(state)}.direction"), "not best (), centre (64,), direction (64,)"),
    "no template": (lambda state, arrays: [arrays.pop(k) for k in list(arrays)
                                           if ".template." in k], "direct genomes must be an array"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_emitter_state_is_refused_in_one_line(tmp_path, capsys, case):
    from evofool.cli import main
    path = small_experiment(tmp_path, genome={"type": "direct", "size": 8},
                            model={"spec": "lenet-mnist", "classes": [3, 5, 8]},
                            algorithm={"type": "map_elites", "init_size": 12,
                                       "emitters": [{"type": "es", "pairs": 2}]},
                            budget={"generations": 3})
    run = run_experiment(load_experiment(path)).run_dir
    change, fragment = TAMPERED[case]
    _edit_checkpoint(run / "checkpoint.npz", change)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["run", "--resume", str(run), "budget.generations=5"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "checkpoint.npz" in err and fragment in err, err
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_stepping_stones_keep_every_class_but_report_the_listed_ones(tmp_path):
    path = small_experiment(tmp_path, model={"spec": "lenet-mnist", "classes": [3, 5]},
                            algorithm={"type": "map_elites", "init_size": 20, "offspring": 20,
                                       "stepping_stones": True},
                            budget={"generations": 4})
    run_experiment(load_experiment(path))
    archive, _, content = load_archive(tmp_path / "run")
    assert archive.class_ids == [3, 5] and content["summary"]["classes"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["stones_filled"] == 10   # a cell for each of LeNet's 10 digits
    assert len(log[-1]["best"]) == 2 and read_run(tmp_path / "run").archive.class_ids == [3, 5]
    with np.load(tmp_path / "run" / "checkpoint.npz", allow_pickle=False) as npz:
        assert npz["stones.confidence"].shape == (10,)
        # the listed classes' stones are their archive cells
        assert np.allclose(npz["stones.confidence"][[3, 5]], archive.confidence)


@pytest.mark.parametrize("entry, message", [
    ({"type": "nope"}, r"algorithm.emitters\[1\].*unknown emitter 'nope' \(available: cma, "
                       r"es, mutation"),
    ({"type": "cma", "sigma": -1}, r"experiment.yaml: algorithm.emitters\[1\].sigma = -1 is "
                                   r"invalid: expected a positive number"),
    ({"type": "es", "pair": 3}, r"unknown key 'algorithm.emitters\[1\].pair' \(allowed here: "
                                r"cells, min_step, momentum, pairs, patience, restart_after, shrink_sigma, "
                                r"sigma, step, step_decay\)"),
    ({"type": "cma", "population": 1}, r"algorithm.emitters\[1\]: population = 1: CMA-ES "
                                       r"needs at least 2"),
])
def test_a_bad_emitter_entry_is_one_line_naming_it(tmp_path, entry, message):
    path = small_experiment(tmp_path, algorithm={"type": "map_elites", "emitters": [
        {"type": "mutation"}, entry]})
    with pytest.raises(EvofoolError, match=message) as error:
        load_experiment(path)
    assert "\n" not in str(error.value)


def test_cma_refuses_a_genome_too_large_for_a_full_covariance(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "direct", "channels": 3, "size": 64},
                            algorithm={"type": "map_elites", "emitters": [{"type": "cma"}]})
    with pytest.raises(EvofoolError, match=r"emitter cma: the genome has 12,288 parameters; "
                                           r"full-covariance CMA-ES takes at most 1,024"):
        run_experiment(load_experiment(path))
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_a_genome_type_without_parameters_cannot_take_a_per_cell_emitter(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "plugin_genomes:StripesGenome"},
                            algorithm={"type": "map_elites", "emitters": [{"type": "es"}]})
    with pytest.raises(EvofoolError, match="emitter 'es' needs a genome type with parameters"):
        run_experiment(load_experiment(path))
