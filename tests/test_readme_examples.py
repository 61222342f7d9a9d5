"""The README's plugin examples work as written: its files, its command, the ``evofool``
console script, run from a folder outside the repository (the README as a whole is run by
``tests/readme_check.py`` in CI)."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO
from readme_check import code_blocks

CONSOLE_SCRIPT = Path(sys.executable).parent / "evofool"


def readme_files() -> dict[str, str]:
    blocks = code_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    return {b.file_name: "\n".join(b.lines) + "\n" for b in blocks if b.file_name}


def console(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(CONSOLE_SCRIPT), *args], cwd=folder, env=env,
                          capture_output=True, text=True)


def test_readme_genome_plugin_runs_with_the_console_script_from_its_folder(tmp_path):
    files = readme_files()
    for name in ("my_genomes.py", "stripes.yaml"):
        (tmp_path / name).write_text(files[name])
    result = console(tmp_path, "run", "stripes.yaml", "budget.generations=2",
                     "log.progress=false")
    assert result.returncode == 0, result.stderr
    archive = (tmp_path / "runs" / "stripes" / "latest" / "archive" / "archive.json")
    assert '"my_genomes:StripesGenome"' in archive.read_text()
    shown = console(tmp_path, "archive", "show", "runs/stripes", "--trust")
    assert shown.returncode == 0 and "filled" in shown.stdout, shown.stderr


def test_readme_algorithm_plugin_runs_with_the_console_script_from_its_folder(tmp_path):
    (tmp_path / "my_search.py").write_text(readme_files()["my_search.py"])
    experiment = {"model": "lenet-mnist", "genome": {"type": "direct"},
                  "algorithm": {"type": "my_search:RandomSearch", "batch": 20},
                  "budget": {"generations": 2}, "log": {"progress": False}}
    (tmp_path / "random.yaml").write_text(yaml.safe_dump(experiment))
    result = console(tmp_path, "run", "random.yaml")
    assert result.returncode == 0, result.stderr
    assert "generations 2, evaluations 60," in result.stdout  # the first batch, then 2


def test_a_missing_plugin_module_is_one_line_naming_it(tmp_path):
    (tmp_path / "stripes.yaml").write_text(readme_files()["stripes.yaml"])
    result = console(tmp_path, "run", "stripes.yaml")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "my_genomes" in result.stderr and "Traceback" not in result.stderr
