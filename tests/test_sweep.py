"""``evofool sweep``: the product of override values, one run directory each, at most K at a
time, a summary table; ``--resume`` finishes only what is missing."""
import json
import shutil

import pytest

from evofool.cli import main
from evofool.errors import EvofoolError
from evofool.sweep import split_values


def test_values_split_on_top_level_commas_only():
    assert split_values("seed=0,1,2") == ["seed=0", "seed=1", "seed=2"]
    assert split_values("model.classes=[1,2],[3,4]") == ["model.classes=[1,2]",
                                                         "model.classes=[3,4]"]
    assert split_values("name='a,b',c") == ["name='a,b'", "name=c"]
    with pytest.raises(EvofoolError, match="not key=value"):
        split_values("seed")


@pytest.mark.long
def test_a_local_sweep_over_seeds_runs_each_and_resumes_what_is_missing(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "mnist_cppn_mapelites", "seed=0,1", "budget.generations=4",
            "--parallel", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    (folder,) = (tmp_path / "runs" / "mnist_cppn_mapelites").glob("sweep_*")
    runs = sorted(p for p in folder.iterdir() if p.is_dir())
    assert [p.name.split("_")[1] for p in runs] == ["seed=0", "seed=1"]
    summary = json.loads((folder / "sweep_summary.json").read_text())
    assert [row["status"] for row in summary] == ["finished"] * 2
    assert all(row["evaluations"] == 1000 for row in summary)  # 200 + 4 x 200
    for run in runs:
        assert json.loads((run / "run.json").read_text())["finished"] is True
        assert f"{run.name}  finished  10/10" in out
    assert (folder / "sweep_summary.csv").read_text().count("\n") == 3

    capsys.readouterr()
    assert main(["compare", str(folder)]) == 0  # the sweep's runs side by side
    table = capsys.readouterr().out
    assert all(f"{run.name}  finished  10/10" in table for run in runs)

    shutil.rmtree(runs[1])  # as if it had never started: --resume runs it, and only it
    before = (runs[0] / "log.jsonl").stat().st_mtime_ns
    assert main(["sweep", "--resume", str(folder)]) == 0
    assert (runs[1] / "archive" / "archive.json").is_file()
    assert (runs[0] / "log.jsonl").stat().st_mtime_ns == before


def test_an_invalid_combination_stops_the_sweep_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "mnist_cppn_mapelites", "seed=0,-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed" in err
    assert not (tmp_path / "runs").exists()


def test_python_values_become_the_command_lines_axes():
    from evofool.api import sweep_axes
    axes = sweep_axes({"seed": [0, 1], "name": ["a,b", "c"], "model.classes": [[1, 2]],
                       "budget.generations": 5})
    assert axes == ["seed=0,1", 'name="a,b",c', "model.classes=[1, 2]", "budget.generations=5"]
    assert [len(split_values(axis)) for axis in axes] == [2, 2, 1, 1]


def test_the_python_api_sweeps_lists_of_values(tmp_path, monkeypatch):
    import evofool.api
    monkeypatch.chdir(tmp_path)
    folder, rows = evofool.api.sweep("mnist_direct_mapelites", progress=False, parallel=2,
                                     seed=[3, 4], **{"budget.generations": 1})
    assert [row["overrides"] for row in rows] == ["seed=3 budget.generations=1",
                                                  "seed=4 budget.generations=1"]
    assert [row["status"] for row in rows] == ["finished"] * 2
    assert evofool.api.resume_sweep(folder, progress=False) == rows  # nothing left to do


def test_a_foreign_sweep_plan_cannot_escape_its_folder_or_run_code_without_trust(
        tmp_path, monkeypatch, capsys):
    from evofool.catalog import find_experiment
    monkeypatch.chdir(tmp_path)
    experiment = str(find_experiment("mnist_direct_mapelites").resolve())

    def resume_with(run: dict, *flags: str) -> str:
        folder = tmp_path / "sweep"
        folder.mkdir(exist_ok=True)
        (folder / "sweep.json").write_text(json.dumps({"experiment": experiment,
                                                       "runs": [run]}))
        assert main(["sweep", "--resume", str(folder), *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        return err

    assert "is not a folder name inside the sweep folder" in resume_with(
        {"name": "../escape", "overrides": []})
    assert not (tmp_path / "escape").exists()
    err = resume_with({"name": "000_x", "overrides": ["model.spec=python:evofool_payload:f"]})
    assert "--trust" in err and "evofool_payload" in err
    assert not (tmp_path / "sweep" / "000_x").exists()
