"""The README's plugin examples work as written: its files, its command, the ``evofool``
console script, run from a folder outside the repository (the README as a whole is run by
``tests/readme_check.py`` in CI)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evofool.cli import main

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


@pytest.mark.long
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


def test_readme_algorithm_plugin_runs_from_its_folder(tmp_path, monkeypatch, capsys):
    """The same for an algorithm, through the command's code in this process (the folder is
    not on sys.path here either)."""
    (tmp_path / "my_search.py").write_text(readme_files()["my_search.py"])
    experiment = {"model": "lenet-mnist", "genome": {"type": "direct"},
                  "algorithm": {"type": "my_search:RandomSearch", "batch": 20},
                  "budget": {"generations": 2}, "log": {"progress": False}}
    (tmp_path / "random.yaml").write_text(yaml.safe_dump(experiment))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_search", raising=False)
    assert main(["run", "random.yaml"]) == 0
    assert "generations 2, evaluations 60," in capsys.readouterr().out  # first batch, then 2
    assert str(tmp_path) not in sys.path  # found without being left on the import path


def test_a_missing_plugin_module_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "stripes.yaml").write_text(readme_files()["stripes.yaml"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_genomes", raising=False)
    assert main(["run", "stripes.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "my_genomes" in err and "Traceback" not in err, err
