"""The distribution: a built wheel carries every import name and the LeNet weights."""
import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_imports_evofool_genomes_and_fitness_with_shipped_weights(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(REPO)],
                   check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("evofool-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "evofool/genomes/direct.py" in names and "evofool/fitness/lenet.py" in names
    assert "evofool/search/map_elites.py" in names
    assert "evofool/fitness/weights/lenet_mnist.safetensors" in names
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
