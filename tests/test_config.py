"""Experiment YAML: validation with one-line errors, overrides, the resolved config."""
import pytest
import yaml

from evofool.config import load_experiment
from evofool.errors import EvofoolError
from conftest import REPO, small_experiment


def test_shipped_experiments_validate():
    for path in sorted((REPO / "experiments").glob("*.yaml")):
        experiment = load_experiment(path)
        assert experiment.name == path.stem


def test_defaults_are_the_papers_parameters(experiment_file):
    experiment = load_experiment(experiment_file)
    assert experiment.genome.mutation_rate == 0.1
    assert experiment.genome.mutation_eta == 15
    assert experiment.genome.rate_halving_every == 1000
    assert experiment.genome.crossover == "none"


def test_overrides_set_nested_keys_with_yaml_values(experiment_file):
    experiment = load_experiment(experiment_file, ["budget.generations=3", "seed=7",
                                                   "genome.crossover=sbx", "model.weights_path=x"])
    assert experiment.budget.generations == 3 and experiment.seed == 7
    assert experiment.genome.crossover == "sbx"
    assert experiment.model.spec == "lenet-mnist" and experiment.model.weights_path == "x"


def test_resolved_config_round_trips(experiment_file, tmp_path):
    experiment = load_experiment(experiment_file)
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(experiment.to_dict()))
    assert load_experiment(again).to_dict() == {**experiment.to_dict(), "name": "tiny"}


@pytest.mark.parametrize("override, message", [
    ("colour=red", "unknown key 'colour'"),
    ("genome.mutation_rte=0.2", "unknown key 'genome.mutation_rte'"),
    ("budget.generations=-5", "budget.generations = -5 is invalid: expected a positive integer"),
    ("budget.generations=ten", "budget.generations = 'ten' is invalid: expected a positive integer"),
    ("genome.mutation_rate=1.5", "genome.mutation_rate = 1.5 is invalid: expected a number in [0, 1]"),
    ("genome.crossover=blend", "genome.crossover = 'blend' is invalid: expected one of 'none', 'sbx'"),
    ("seed=true", "seed = True is invalid: expected an integer"),
    ("device=tpu", "device = 'tpu' is invalid: expected auto, cpu, cuda, cuda:N or mps"),
    ("genome.type=hologram", "unknown genome type 'hologram'"),
    ("algorithm.type=annealing", "unknown algorithm 'annealing'"),
    ("log.checkpoint_every=0", "log.checkpoint_every = 0 is invalid"),
])
def test_bad_values_are_one_line_errors_naming_key_and_value(experiment_file, override, message):
    with pytest.raises(EvofoolError) as error:
        load_experiment(experiment_file, [override])
    text = str(error.value)
    assert message in text and "\n" not in text
    assert str(experiment_file) in text


def test_budget_needs_generations_or_evaluations(tmp_path):
    path = small_experiment(tmp_path, budget={"stop_confidence": 0.9})
    with pytest.raises(EvofoolError, match="budget needs generations and/or evaluations"):
        load_experiment(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(EvofoolError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("genome: [direct\nbudget: 3\n")
    with pytest.raises(EvofoolError, match=r"malformed YAML at line \d+"):
        load_experiment(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(EvofoolError, match="must be a YAML mapping"):
        load_experiment(scalar)
