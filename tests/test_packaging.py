"""The distribution: a built wheel carries every import name, the LeNet weights and the
experiments, and works for a user who has only the wheel, in an empty folder."""
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from readme_check import copy_tracked_files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools writes build/ into the tree it builds, and other tests
    # check that nothing appears in the repository while they run.
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    copy_tracked_files(source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(dist), str(source)],
                   check=True, cwd=dist)
    (built,) = dist.glob("evofool-*.whl")
    return built


@pytest.mark.long
def test_wheel_imports_evofool_genomes_and_fitness_with_shipped_weights(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "evofool/genomes/direct.py" in names and "evofool/fitness/lenet.py" in names
    assert "evofool/search/map_elites.py" in names
    assert "evofool/fitness/weights/lenet_mnist.safetensors" in names
    shipped = {p.name for p in (REPO / "experiments").glob("*.yaml")}
    assert shipped and {f"evofool/experiments/{n}" for n in shipped} <= set(names)
    assert "evofool/experiments/README.md" in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "import evofool, evofool.genomes, evofool.fitness, evofool.cli, evofool.runner;"
            "from evofool.search.registry import get_algorithm; get_algorithm('ga');"
            "from evofool.fitness.lenet import DEFAULT_WEIGHTS, load_lenet;"
            "assert all(m.__file__.startswith(sys.argv[1]) for m in "
            "(evofool, evofool.genomes, evofool.fitness, evofool.runner)), 'imported the source tree';"
            "load_lenet(); print('ok')")
    result = subprocess.run([sys.executable, "-c", code, str(unpacked)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.stdout.strip() == "ok", result.stderr
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "evofool = evofool.cli:main" in entry_points


@pytest.mark.long
def test_a_wheel_user_runs_packaged_experiments_from_an_empty_folder(wheel, tmp_path):
    """A fresh venv with only the wheel installed (its dependencies are this environment's,
    seen through a .pth line, so nothing downloads) and no repository anywhere near."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def evofool(*args: str) -> str:
        result = subprocess.run([str(venv / "bin" / "evofool"), *args], cwd=empty, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import evofool.runner as m; print(m.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True).stdout
    assert where.startswith(str(site)), where  # the wheel's code, not the repository's
    listing = evofool("experiments")
    assert "mnist_direct_mapelites" in listing and "paper Fig. 4" in listing
    out = evofool("run", "mnist_direct_mapelites", "budget.generations=2", "log.progress=false")
    assert f"{site}/evofool/experiments/mnist_direct_mapelites.yaml" in out
    assert "generations 2," in out
    assert "wrote mnist_cppn_mapelites.yaml" in evofool("init", "mnist_cppn_mapelites")
    assert (empty / "mnist_cppn_mapelites.yaml").read_text().startswith("# The paper's MNIST CPPN")
    table = evofool("archive", "show", "runs/mnist_direct_mapelites/latest")
    assert "filled 10/10" in table
