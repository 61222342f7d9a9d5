"""Shared helpers: small experiment files that finish in a second or two on 2 CPU cores."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (setup.cfg runs one worker per core), every worker computes with one
# thread, and so do the evofool processes tests start: workers using torch's default of a
# thread per core would fight over the cores and run slower than one worker.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list) -> None:
    """Tests marked ``long`` first: pytest-xdist's workers then finish together instead of
    one waiting for the other's last long test."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def small_experiment(tmp_path: Path, **sections) -> Path:
    """Write a tiny MAP-Elites experiment on the shipped LeNet; ``sections`` replace keys."""
    data = {
        "name": "tiny", "seed": 1, "runtime": {"device": "cpu"}, "model": "lenet-mnist",
        "genome": {"type": "direct"},
        "algorithm": {"type": "map_elites", "init_size": 40, "offspring": 40},
        "budget": {"generations": 6},
        "output_dir": str(tmp_path / "run"),
        "log": {"progress": False, "checkpoint_every": 2},
    }
    data.update(sections)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def edit_arrays(path: Path, change) -> None:
    """Rewrite the npz file ``path`` after ``change(arrays)`` edits its {name: array} dict
    in place (a tampered checkpoint or archive, as a stranger might send)."""
    import numpy as np
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    change(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def direct_and_cppn_runs(root: Path, generations: int, named: bool = False) -> dict[str, Path]:
    """A finished tiny MAP-Elites run of each built-in genome type on the shipped LeNet
    (``named``: experiments called tiny_direct, tiny_cppn); {genome: run directory}."""
    from evofool.config import load_experiment
    from evofool.runner import run_experiment
    paths = {}
    for genome in ("direct", "cppn"):
        folder = root / genome
        folder.mkdir()
        names = {"name": f"tiny_{genome}"} if named else {}
        run_experiment(load_experiment(small_experiment(
            folder, genome={"type": genome}, budget={"generations": generations}, **names)))
        paths[genome] = folder / "run"
    return paths


@pytest.fixture
def experiment_file(tmp_path: Path) -> Path:
    return small_experiment(tmp_path)


def mnist_dir() -> Path | None:
    """The real MNIST files, from EVOFOOL_MNIST_DIR or the workplace's shared folder."""
    candidate = Path(os.environ.get("EVOFOOL_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
    return candidate if (candidate / "t10k-images-idx3-ubyte.gz").is_file() else None


def real_mnist_dir(what: str) -> Path:
    """The real MNIST folder for a test marked ``mnist_data``; without it the test is skipped
    with the reason in the summary (failed under EVOFOOL_REQUIRE_MNIST=1), never passed."""
    folder = mnist_dir()
    if folder is None:
        reason = ("real MNIST not found (set EVOFOOL_MNIST_DIR to a folder with the t10k "
                  "and the train or train-5k IDX files)")
        if os.environ.get("EVOFOOL_REQUIRE_MNIST") == "1":
            pytest.fail(f"EVOFOOL_REQUIRE_MNIST=1 but {reason}")
        warnings.warn(f"skipping {what}: {reason}")
        pytest.skip(reason)
    return folder
