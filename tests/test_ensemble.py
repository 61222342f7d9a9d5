"""Ensemble targets: ``model: [a, b]`` evolves images scored by the min (or mean) of members."""
import json

import numpy as np
import pytest
import torch
import yaml

from evofool.cli import main
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.fitness.lenet import LeNet, build_lenet_target, save_lenet
from evofool.fitness.registry import build_ensemble
from evofool.run_data import read_run
from evofool.runner import run_experiment
from conftest import small_experiment


@pytest.fixture(scope="module")
def other_lenet(tmp_path_factory):
    """A second LeNet (untrained, seeded): it disagrees with the shipped one."""
    path = tmp_path_factory.mktemp("weights") / "other.safetensors"
    torch.manual_seed(3)
    save_lenet(LeNet(), path)
    return path


def test_min_and_mean_combine_the_members_confidences(other_lenet):
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    members = [build_lenet_target("cpu").scores(images),
               build_lenet_target("cpu", other_lenet).scores(images)]
    specs = ["lenet-mnist", f"lenet-mnist@{other_lenet}"]
    lowest = build_ensemble(specs, torch.device("cpu"), "min")
    assert lowest.scores(images) == pytest.approx(np.minimum(*members), abs=1e-12)
    average = build_ensemble(specs, torch.device("cpu"), "mean", classes=[7, 2])
    assert average.scored_names == ["7", "2"]
    assert average.scores(images) == pytest.approx(((members[0] + members[1]) / 2)[:, [7, 2]])


def test_an_ensemble_run_keeps_elites_scored_by_the_weakest_member(tmp_path, other_lenet):
    experiment = small_experiment(tmp_path, model=["lenet-mnist", f"lenet-mnist@{other_lenet}"])
    result = run_experiment(load_experiment(experiment))
    run = read_run(result.run_dir)
    filled = np.flatnonzero(run.archive.filled)
    assert len(filled) > 0
    images = run.genome_type.render(run.archive.genomes[filled])
    lowest = np.minimum(build_lenet_target("cpu").scores(images),
                        build_lenet_target("cpu", other_lenet).scores(images))
    assert run.archive.confidence[filled] == pytest.approx(lowest[np.arange(len(filled)), filled])
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert saved["model"]["spec"] == ["lenet-mnist", f"lenet-mnist@{other_lenet}"]
    assert saved["model"]["ensemble"] == "min"
    assert json.loads((result.run_dir / "archive" / "archive.json").read_text())["summary"]


@pytest.mark.parametrize("model, fragment", [
    ({"spec": ["lenet-mnist"]}, "or a list of 2 to 8 specs"),
    ({"spec": ["lenet-mnist", "lenet-mnist"], "weights_path": "x.safetensors"},
     "give each ensemble member its weights as SPEC@WEIGHTS_FILE"),
    ({"spec": ["lenet-mnist", "lenet-mnist"], "ensemble": "max"}, "model.ensemble"),
])
def test_bad_ensemble_keys_are_one_line_errors(tmp_path, model, fragment):
    with pytest.raises(EvofoolError, match=fragment):
        load_experiment(small_experiment(tmp_path, model=model))


def test_members_that_label_differently_or_fail_are_named(tmp_path, capsys):
    labels = small_experiment(tmp_path, model=["lenet-mnist", "python:plugin_models:tiny_net"],
                              genome={"type": "direct", "size": 28})
    assert main(["run", str(labels)]) != 0
    message = capsys.readouterr().err.strip()
    assert "label their outputs differently" in message and len(message.splitlines()) == 1
    missing = small_experiment(tmp_path, model=["lenet-mnist", "lenet-mnist@/no/such.safetensors"])
    assert main(["run", str(missing)]) != 0
    assert "/no/such.safetensors" in capsys.readouterr().err


def test_an_ensemble_serves_stepping_stones(tmp_path, other_lenet):
    # stepping stones score every class of the combined model, not only model.classes
    experiment = small_experiment(
        tmp_path, model={"spec": ["lenet-mnist", f"lenet-mnist@{other_lenet}"],
                         "classes": [1, 7]},
        algorithm={"type": "map_elites", "init_size": 10, "offspring": 10,
                   "stepping_stones": True}, budget={"generations": 2})
    result = run_experiment(load_experiment(experiment))
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert log[-1]["stones_filled"] == 10
    assert read_run(result.run_dir).archive.class_ids == [1, 7]
