"""Search algorithms: the built-ins and a plugin keep the ask/tell contract, and a plugin
joins through the documented routes (module:Class in the YAML, an evofool.algorithms entry
point) with no edit to the package."""
import json

import numpy as np
import pytest

from evofool.archive_store import load_archive
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.runner import run_experiment
from evofool.search.contract import check_algorithm
from evofool.search.ga import GAParams, GeneticAlgorithm
from evofool.search.map_elites import MapElites
from evofool.search.registry import available_algorithms, get_algorithm
from conftest import small_experiment
from plugin_algorithms import RandomSearch


@pytest.mark.parametrize("cls,params", [(MapElites, None), (RandomSearch, None),
                                        (GeneticAlgorithm, GAParams(population=10, elite=2))])
def test_algorithms_keep_the_ask_tell_contract(cls, params):
    check_algorithm(cls, params)


def test_the_contract_catches_an_algorithm_that_advances_state_when_asked():
    class Leaky(RandomSearch):
        name = "leaky"

        def propose(self):
            self.evaluations += 1  # a counter moved before the batch was told
            return super().propose()

    with pytest.raises(AssertionError, match="ask\\(\\) changed the saved state"):
        check_algorithm(Leaky)


def test_a_plugin_algorithm_runs_from_a_yaml_by_dotted_path(tmp_path):
    path = small_experiment(tmp_path, algorithm={"type": "plugin_algorithms:RandomSearch",
                                                 "batch": 30}, budget={"generations": 3})
    result = run_experiment(load_experiment(path))
    assert result.evaluations == 4 * 30
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3]
    archive, _, content = load_archive(tmp_path / "run")
    assert content["summary"]["filled"] == int(archive.filled.sum()) > 0


def test_plugin_params_are_validated_like_built_in_ones(tmp_path):
    path = small_experiment(tmp_path, algorithm={"type": "plugin_algorithms:RandomSearch",
                                                 "batch": 0})
    with pytest.raises(EvofoolError, match="algorithm.batch = 0 is invalid"):
        load_experiment(path)
    path = small_experiment(tmp_path, algorithm={"type": "plugin_algorithms:Nothing"})
    with pytest.raises(EvofoolError, match="algorithm 'plugin_algorithms:Nothing' could not "
                                           "be loaded"):
        load_experiment(path)


def test_entry_point_makes_a_plugin_algorithm_available_by_name(tmp_path, monkeypatch):
    dist = tmp_path / "random_search_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: random-search-plugin\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[evofool.algorithms]\nrandom_search = plugin_algorithms:RandomSearch\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "random_search" in available_algorithms()
    assert get_algorithm("random_search") is RandomSearch
    path = small_experiment(tmp_path, algorithm={"type": "random_search", "batch": 20},
                            budget={"generations": 2})
    assert run_experiment(load_experiment(path)).evaluations == 60


def test_toolbox_map_is_the_one_place_scoring_goes_through(tmp_path):
    """Registering another map (a pool, Ray) changes where chunks are scored, not what the
    run finds: chunks arrive in order and whole."""
    from evofool.runner import build_search
    experiment = load_experiment(small_experiment(tmp_path, runtime={"device": "cpu",
                                                                     "batch_size": 16}))
    plain, _ = build_search(experiment)
    mapped, _ = build_search(experiment)
    seen = []

    def recording_map(function, chunks):
        chunks = list(chunks)
        seen.append([len(c) for c in chunks])
        return [function(c) for c in reversed(chunks)][::-1]  # other order of work, same result

    mapped.toolbox.register("map", recording_map)
    for _ in range(4):
        plain.step(), mapped.step()
    assert seen[0] == [16, 16, 8] and seen[1] == [16, 16, 8]  # 40 candidates in chunks of 16
    assert plain.archive.rows() == mapped.archive.rows()
    assert np.array_equal(plain.archive.genomes, mapped.archive.genomes)
