"""``evofool export-dataset``: runs' elites as an ImageFolder with a manifest, written whole
or not at all; bad inputs are one-line errors."""
import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from torchvision.datasets import ImageFolder

import evofool
import evofool.api
import evofool.dataset_export as dataset_export
from evofool.cli import main
from evofool.errors import EvofoolError
from conftest import direct_and_cppn_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A direct and a CPPN run on the shipped LeNet (10 classes each)."""
    return direct_and_cppn_runs(tmp_path_factory.mktemp("runs"), 3, named=True)


def archive_rows(run: Path) -> list[dict]:
    return json.loads((run / "archive" / "archive.json").read_text())["classes"]


def test_export_is_an_imagefolder_of_the_archive_pngs(runs, tmp_path, capsys):
    out = tmp_path / "fooling"
    assert main(["export-dataset", str(runs["direct"]), str(runs["cppn"]), "--out",
                 str(out)]) == 0
    assert "wrote 20 images of 10 classes from 2 run(s)" in capsys.readouterr().out
    dataset = ImageFolder(str(out))
    # every digit is there, so ImageFolder's label is the class id
    assert dataset.classes == [f"{digit:04d}_{digit}" for digit in range(10)]
    with open(out / "manifest.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    rows = json.loads((out / "manifest.json").read_text())["images"]
    assert len(dataset) == len(table) == len(rows) == 20
    by_file = {row["file"]: row for row in rows}
    for (path, label), line in zip(sorted(dataset.samples), sorted(table, key=lambda r: r["file"])):
        row = by_file[Path(path).relative_to(out).as_posix()]
        assert line["file"] == row["file"] and int(line["class_id"]) == row["class_id"] == label
        assert float(line["confidence"]) == row["confidence"]
        run = Path(row["run"])
        source = next(r for r in archive_rows(run) if r["class_id"] == label)
        assert Path(path).read_bytes() == (run / "archive" / source["png"]).read_bytes()
        assert row["confidence"] == source["png_confidence"] and row["confidence_of"] == "png"
        assert row["generation"] == source["generation"]
        assert row["evaluations"] == source["evaluations"]
        genome = "direct" if run == runs["direct"] else "cppn"
        assert (row["model"], row["genome"], row["algorithm"], row["seed"], row["experiment"]) \
            == ("lenet-mnist", genome, "map_elites", 1, f"tiny_{genome}")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


def test_threshold_keeps_elites_at_or_above_it(runs, tmp_path):
    confidences = sorted(r["png_confidence"] for r in archive_rows(runs["cppn"]))
    threshold = confidences[5]
    rows = dataset_export.export_dataset([runs["cppn"]], tmp_path / "out", threshold)
    assert len(rows) == 5 and all(row["confidence"] >= threshold for row in rows)
    assert len(ImageFolder(str(tmp_path / "out"))) == 5


def test_api_takes_runs_or_paths(runs, tmp_path):
    rows = evofool.api.export_dataset(evofool.load_run(runs["direct"]), tmp_path / "a")
    assert [row["class_id"] for row in rows] == list(range(10))
    assert rows == evofool.api.export_dataset(str(runs["direct"]), tmp_path / "b")


def test_an_existing_folder_is_kept_unless_forced_over_an_export(runs, tmp_path, capsys):
    out = tmp_path / "out"
    dataset_export.export_dataset([runs["cppn"]], out, threshold=0.0)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["export-dataset", str(runs["direct"]), "--out", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert main(["export-dataset", str(runs["direct"]), "--out", str(out), "--force"]) == 0
    assert {row["genome"] for row in json.loads((out / "manifest.json").read_text())["images"]} \
        == {"direct"}
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main(["export-dataset", str(runs["direct"]), "--out", str(other), "--force"]) == 2
    assert "replaces only a folder that export-dataset wrote" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export-dataset", str(runs["direct"]), "--out", str(empty)]) == 0


def test_a_failed_write_leaves_no_dataset_and_the_old_one_whole(runs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    dataset_export.export_dataset([runs["cppn"]], out)
    old = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    written = []

    def fail_on_third(path, data):
        written.append(path)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        path.write_bytes(data)

    monkeypatch.setattr(dataset_export, "_write_file", fail_on_third)
    for target, force in ((tmp_path / "new", False), (out, True)):
        with pytest.raises(EvofoolError, match="cannot write the dataset .No space left"):
            dataset_export.export_dataset([runs["direct"]], target, force=force)
        written.clear()
    assert not (tmp_path / "new").exists()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporaries


def test_classes_named_differently_by_two_runs_are_refused(runs, tmp_path):
    renamed = tmp_path / "renamed"
    shutil.copytree(runs["cppn"], renamed)
    path = renamed / "archive" / "archive.json"
    content = json.loads(path.read_text())
    content["class_names"][3] = content["classes"][3]["name"] = "three"
    content["classes"][3]["png"] = "class_0003_three.png"
    path.write_text(json.dumps(content))
    (renamed / "archive" / "class_0003_3.png").rename(renamed / "archive" / "class_0003_three.png")
    with pytest.raises(EvofoolError, match="class 3 is '3' in run .* but 'three' in run"):
        dataset_export.export_dataset([runs["direct"], renamed], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def broken_run(runs, tmp_path, how: str) -> Path:
    run = tmp_path / "broken"
    shutil.copytree(runs["direct"], run)
    png = run / "archive" / archive_rows(run)[2]["png"]
    if how == "npz":
        (run / "archive" / "elites.npz").write_bytes(b"PK\x03\x04 nope")
    elif how == "png":
        png.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif how == "jpeg":
        from PIL import Image
        Image.new("L", (28, 28)).save(png, format="JPEG")
    elif how == "size":
        from PIL import Image
        Image.new("L", (12, 12)).save(png, format="PNG")
    elif how == "folder":
        png.unlink()
        png.mkdir()
    elif how == "link":  # to a PNG elsewhere on this machine
        shutil.copy(png, tmp_path / "elsewhere.png")
        png.unlink()
        png.symlink_to(tmp_path / "elsewhere.png")
    elif how == "outside":  # the archive folder leads elsewhere
        shutil.move(run / "archive", tmp_path / "archive_elsewhere")
        (run / "archive").symlink_to(tmp_path / "archive_elsewhere")
    elif how == "low":  # every PNG scored 50%
        content = json.loads((run / "archive" / "archive.json").read_text())
        for row in content["classes"]:
            row["png_confidence"] = 0.5
        (run / "archive" / "archive.json").write_text(json.dumps(content))
    elif how == "config":
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["model"]["spec"] = "python:os:getcwd"
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


@pytest.mark.parametrize("args, fragment", [
    (["{missing}"], "does not exist"),
    (["{empty}"], "not a run directory"),
    (["{npz}"], "elites.npz' is corrupted"),
    (["{png}"], "is not a readable image"),
    (["{jpeg}"], "is not a PNG image, expected an elite's PNG"),
    (["{size}"], "is 12 x 12 pixels, expected an elite's PNG"),
    (["{folder}"], "is a symbolic link or not a regular file, expected an elite's PNG"),
    (["{link}"], "is a symbolic link or not a regular file, expected an elite's PNG"),
    (["{outside}"], "leads outside the run directory"),
    (["{config}"], "pass --trust"),
    (["{direct}", "{direct}"], "is given twice"),
    (["{direct}", "--threshold", "2"], "--threshold '2' is invalid"),
    (["{low}", "--threshold", "0.9"], "no elite of the runs reaches --threshold 0.9 (the best "
                                      "is 0.5): nothing to export"),
    (["{direct}", "--out", "{file}"], "exists and is not a folder"),
])
def test_bad_inputs_are_one_line_errors(runs, tmp_path, capsys, args, fragment):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty",
             "direct": runs["direct"], "file": tmp_path / "file"}
    for how in ("npz", "png", "jpeg", "size", "folder", "link", "outside", "low", "config"):
        if "{" + how + "}" in args:
            names[how] = broken_run(runs, tmp_path, how)
    if "--out" not in args:
        args = args + ["--out", str(tmp_path / "out")]
    assert main(["export-dataset"] + [a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evofool: error: ") and "\n" not in err and fragment in err, err
    assert not (tmp_path / "out").exists()
