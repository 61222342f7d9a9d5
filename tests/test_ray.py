"""Scoring on Ray (``evaluation.backend: ray``): a local Ray instance with two CPU workers
gives the archive the local backend gives, also when a worker is killed mid-run; a cluster
that is not there is a one-line error. Skipped without the ``ray`` extra."""
import importlib.util
import json
import socket

import numpy as np
import pytest

from evofool.cli import main
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.runner import run_experiment
from conftest import small_experiment

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="ray not installed (pip install \"evofool[ray]\")")


def archive_arrays(run_dir):
    with np.load(run_dir / "archive" / "elites.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once the probe closes: nothing listens there


@pytest.mark.long
@pytest.mark.slow
def test_ray_workers_give_the_local_archive_also_when_one_dies(tmp_path, monkeypatch):
    # One test, so that one pytest-xdist worker starts one Ray instance for all the runs.
    def run(folder: str, *overrides: str) -> dict:
        path = small_experiment(tmp_path / folder, output_dir=str(tmp_path / folder / "run"),
                                model="python:plugin_models:die_once_net",
                                runtime={"device": "cpu", "batch_size": 10, "threads": 1})
        run_experiment(load_experiment(path, list(overrides)))
        return archive_arrays(tmp_path / folder / "run")

    for folder in ("local", "unreachable", "one", "two"):
        (tmp_path / folder).mkdir()
    local = run("local")

    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(EvofoolError) as error:
        run("unreachable", "evaluation.backend=ray", f"evaluation.address={address}")
    assert "\n" not in str(error.value) and f"cannot reach a Ray cluster at {address}" in str(
        error.value)

    import ray
    from evofool.search.ray_map import connect
    monkeypatch.setenv("EVOFOOL_TEST_DIE", f"9@{tmp_path / 'died'}")  # workers inherit it
    assert connect(None, 2)  # one Ray instance (on 127.0.0.1) for the runs below
    try:
        one = run("one", "evaluation.backend=ray", "evaluation.workers=1")
        two = run("two", "evaluation.backend=ray", "evaluation.workers=2")
        assert (tmp_path / "died").exists()  # the worker of run "one" killed itself mid-run
        for name, arrays in (("one worker", one), ("two workers", two)):
            assert arrays.keys() == local.keys()
            for key in local:
                assert np.array_equal(arrays[key], local[key]), f"{name}: {key} differs"

        # a sweep of two seeds as Ray tasks, on the same instance
        monkeypatch.chdir(tmp_path)
        assert main(["sweep", "mnist_cppn_mapelites", "seed=0,1", "budget.generations=3",
                     "--backend", "ray", "--parallel", "2"]) == 0
        (folder,) = (tmp_path / "runs" / "mnist_cppn_mapelites").glob("sweep_*")
        summary = json.loads((folder / "sweep_summary.json").read_text())
        assert [row["status"] for row in summary] == ["finished"] * 2
        assert [row["overrides"] for row in summary] == [
            f"seed={seed} budget.generations=3" for seed in range(2)]
    finally:
        ray.shutdown()
