"""Each run its own directory (runs/NAME/STAMP, runs/NAME/latest), and the experiments that
ship with the package (evofool experiments / init / run NAME)."""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from evofool.catalog import copy_experiment, find_experiment, packaged_experiments
from evofool.cli import main
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.run_dirs import new_run_dir, point_latest, resolve_run_dir
from conftest import REPO, small_experiment


def test_runs_started_in_the_same_second_get_different_directories(tmp_path):
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda _: new_run_dir("x", tmp_path), range(8)))
    assert len(set(made)) == 8 and all(path.is_dir() for path in made)
    assert {path.parent for path in made} == {tmp_path / "x"}


def test_latest_names_the_newest_run_and_every_command_accepts_it(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.chdir(tmp_path)
    path = small_experiment(tmp_path, output_dir=None, name="tiny", budget={"generations": 2})
    assert main(["run", str(path)]) == 0
    assert main(["run", str(path), "seed=5"]) == 0
    runs = sorted(p for p in (tmp_path / "runs" / "tiny").iterdir() if p.name != "latest")
    assert len(runs) == 2 and all((run / "config.yaml").is_file() for run in runs)
    assert os.readlink(tmp_path / "runs" / "tiny" / "latest") == runs[1].name
    assert yaml.safe_load((runs[1] / "config.yaml").read_text())["seed"] == 5
    for reference in ("runs/tiny", "runs/tiny/latest", "latest"):
        assert resolve_run_dir(reference) == runs[1].relative_to(tmp_path)
    capsys.readouterr()
    assert main(["archive", "show", "runs/tiny"]) == 0
    assert "filled" in capsys.readouterr().out
    assert main(["run", "--resume", "latest", "budget.generations=3"]) == 0
    assert f"run directory: {runs[1].relative_to(tmp_path)}" in capsys.readouterr().out


def test_a_fallback_latest_file_works_where_links_do_not(tmp_path, monkeypatch):
    run = new_run_dir("x", tmp_path)
    (run / "config.yaml").write_text("{}")
    monkeypatch.setattr(os, "symlink", lambda *a, **k: (_ for _ in ()).throw(OSError("no")))
    point_latest(run)
    assert (tmp_path / "x" / "latest").read_text().strip() == run.name
    assert resolve_run_dir(tmp_path / "x") == run


def test_latest_never_leads_outside_its_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "config.yaml").write_text("{}")
    (tmp_path / "x" / "latest").write_text("../secret\n")
    assert resolve_run_dir(tmp_path / "x") == tmp_path / "x"


def test_latest_without_any_run_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--resume", "latest"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run under 'runs'" in err


def test_an_explicit_output_dir_is_still_one_fixed_directory(tmp_path):
    path = small_experiment(tmp_path, budget={"generations": 1})
    assert main(["run", str(path)]) == 0
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert main(["run", str(path)]) == 2  # it holds a run now


def test_every_packaged_experiment_is_listed_valid_and_described():
    shipped = sorted(p.stem for p in (REPO / "experiments").glob("*.yaml"))
    listed = packaged_experiments()
    assert sorted(e.name for e in listed) == shipped
    for experiment in listed:
        assert 20 < len(experiment.description) < 200, experiment.name
        assert load_experiment(experiment.name).name == experiment.name


def test_find_experiment_prefers_a_file_then_a_local_yaml_then_the_package(tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    packaged = find_experiment("mnist_cppn_mapelites")
    assert packaged.parent.name == "experiments" and packaged.is_file()
    copied = copy_experiment("mnist_cppn_mapelites")
    assert find_experiment("mnist_cppn_mapelites") == copied  # the user's edited copy
    with pytest.raises(EvofoolError, match="does not exist, nor is it a packaged"):
        find_experiment("no_such_experiment")
    with pytest.raises(EvofoolError, match="already exists"):
        copy_experiment("mnist_cppn_mapelites")
    with pytest.raises(EvofoolError, match="no packaged experiment 'nope'"):
        copy_experiment("nope")


def test_experiments_and_init_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["experiments"]) == 0
    out = capsys.readouterr().out
    assert all(e.name in out and e.description in out for e in packaged_experiments())
    assert main(["init", "mnist_direct_ga", "mine"]) == 0
    assert (tmp_path / "mine" / "mnist_direct_ga.yaml").read_text() == (
        REPO / "experiments" / "mnist_direct_ga.yaml").read_text()
