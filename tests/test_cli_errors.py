"""User mistakes: one clear line on stderr, a non-zero exit, earlier results left intact."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evofool.cli import main


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    assert err.startswith("evofool: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def finished_run(experiment_file, capsys, tmp_path) -> Path:
    assert run_cli(capsys, "run", experiment_file)[0] == 0
    return tmp_path / "run"


def test_missing_experiment_file(capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, "run", tmp_path / "absent.yaml"),
                          "absent.yaml", "does not exist")


def test_malformed_yaml(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("budget: {generations: 3\n")
    assert_one_line_error(*run_cli(capsys, "run", path), "bad.yaml", "malformed YAML")


@pytest.mark.parametrize("override, fragments", [
    ("genome.type=voxels", ["unknown genome type 'voxels'", "direct"]),
    ("model=resnet-9000", ["unknown model 'resnet-9000'", "lenet-mnist"]),
    ("genome.sigma=3", ["unknown key 'genome.sigma'"]),
    ("budget.generations=2.5", ["budget.generations = 2.5", "positive integer"]),
    ("budget.evaluations=-10", ["budget.evaluations = -10", "positive integer"]),
    ("algorithm.offspring=many", ["algorithm.offspring = 'many'"]),
    ("model.weights_path=/nonexistent/lenet.safetensors", ["/nonexistent/lenet.safetensors"]),
])
def test_bad_keys_values_and_names(capsys, experiment_file, override, fragments):
    code, err = run_cli(capsys, "run", experiment_file, "budget.generations=1", override)
    assert_one_line_error(code, err, *fragments)


def test_unwritable_output_dir(capsys, experiment_file, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_one_line_error(*run_cli(capsys, "run", experiment_file,
                                   f"output_dir={blocker}/run"), "is not writable")


def test_running_into_an_existing_run_refuses_and_keeps_it(capsys, experiment_file, finished_run):
    before = digest(finished_run)
    assert_one_line_error(*run_cli(capsys, "run", experiment_file), "already holds a run",
                          "--resume")
    assert digest(finished_run) == before


def test_corrupted_checkpoint_is_reported_and_archive_kept(capsys, finished_run):
    archive_before = digest(finished_run / "archive")
    (finished_run / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    assert_one_line_error(*run_cli(capsys, "run", "--resume", finished_run),
                          "checkpoint.npz", "corrupted")
    assert digest(finished_run / "archive") == archive_before


def test_checkpoint_from_another_genome_shape_is_reported(capsys, finished_run):
    config = finished_run / "config.yaml"
    config.write_text(config.read_text().replace("size: null", "size: 14"))
    assert_one_line_error(*run_cli(capsys, "run", "--resume", finished_run),
                          "does not match", "config.yaml")


def test_resume_refuses_overrides_that_would_change_the_search(capsys, finished_run):
    assert_one_line_error(*run_cli(capsys, "run", "--resume", finished_run, "seed=9"),
                          "not allowed when resuming")


def test_resume_of_a_folder_that_is_no_run(capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, "run", "--resume", tmp_path), "not a run directory")


def test_corrupted_archive_json_and_npz(capsys, finished_run):
    archive = finished_run / "archive"
    (archive / "elites.npz").write_bytes(b"garbage")
    assert_one_line_error(*run_cli(capsys, "archive", "show", finished_run), "elites.npz",
                          "corrupted")
    (archive / "archive.json").write_text("{not json")
    assert_one_line_error(*run_cli(capsys, "archive", "export", finished_run, "--out",
                                   finished_run / "x"), "archive.json", "corrupted")


def test_archive_with_mismatched_genomes_is_reported(capsys, finished_run):
    npz = finished_run / "archive" / "elites.npz"
    arrays = dict(np.load(npz))
    arrays["genome.pixels"] = arrays["genome.pixels"][:3]
    np.savez(npz, **arrays)
    assert_one_line_error(*run_cli(capsys, "archive", "show", finished_run),
                          "3 genomes for 10 filled cells")


def test_archive_show_on_a_missing_folder(capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, "archive", "show", tmp_path / "gone"), "does not exist")


def test_console_script_exits_non_zero_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "evofool", "run", str(tmp_path / "x.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_render_without_class_into_a_png_name_is_an_error_not_a_folder(finished_run, capsys,
                                                                       tmp_path):
    out = tmp_path / "x.png"
    assert_one_line_error(*run_cli(capsys, "render", finished_run, "--size", 28, "--out", out),
                          "x.png", "--class")
    assert not out.exists()
    assert run_cli(capsys, "render", finished_run, "--size", 28, "--out", tmp_path / "all")[0] == 0
    assert len(list((tmp_path / "all").glob("*.png"))) == 10


def test_version(capsys):
    from evofool import __version__
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"evofool {__version__}"
