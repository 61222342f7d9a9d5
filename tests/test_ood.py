"""``evofool ood``: pytorch-ood's detectors on fooling images vs in-distribution images.

Most tests use a small synthetic in-distribution ImageFolder, so the detector code runs
without the real MNIST files; one test scores the real MNIST test split when it is there."""
import csv
import json
import shutil
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import evofool
import evofool.api
from evofool.cli import main
from evofool.config import load_experiment
from evofool.dataset_export import export_dataset
from evofool.fitness.lenet import LeNet, save_lenet
from evofool.fitness.registry import build_target
from evofool.ood import DETECTORS, in_dist_sets
from evofool.runner import run_experiment
from conftest import real_mnist_dir, small_experiment


@pytest.fixture(scope="module")
def pytorch_ood():
    return pytest.importorskip("pytorch_ood", reason="evofool ood needs pytorch-ood "
                                                     "(pip install 'evofool[ood]')")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ood")
    run_experiment(load_experiment(small_experiment(folder, genome={"type": "cppn"},
                                                    budget={"generations": 3})))
    return folder / "run"


def strokes_folder(path, size: int = 28, mode: str = "L", per_class: int = 12):
    """An ImageFolder of two classes: white bars on black, horizontal or vertical."""
    rng = np.random.default_rng(0)
    for label, axis in (("horizontal", 0), ("vertical", 1)):
        (path / label).mkdir(parents=True)
        for i in range(per_class):
            image = np.zeros((size, size), dtype=np.uint8)
            at, width = rng.integers(4, size - 8), rng.integers(2, 5)
            if axis == 0:
                image[at:at + width, 3:-3] = 255
            else:
                image[3:-3, at:at + width] = 255
            Image.fromarray(image).convert(mode).save(path / label / f"{i:02d}.png")
    return path


def auroc(ood: np.ndarray, in_dist: np.ndarray) -> float:
    """The chance that a fooling image scores higher (more OOD) than an in-dist one."""
    greater = (ood[:, None] > in_dist[None, :]).mean()
    return float(greater + 0.5 * (ood[:, None] == in_dist[None, :]).mean())


def test_ood_prints_four_detectors_and_writes_json_and_csv(pytorch_ood, run, tmp_path, capsys):
    folder = strokes_folder(tmp_path / "digits")
    assert main(["ood", str(run), "--in-dist", str(folder), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "10 fooling images (OOD) vs 12 " in out, out
    for name in DETECTORS:
        assert any(line.startswith(name) for line in out.splitlines()), out
    assert "temperature 1000, eps 0.0014" in out and "LeNet's penultimate layer" in out
    result = json.loads((tmp_path / "out" / "ood.json").read_text())
    with open(tmp_path / "out" / "ood.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["detector"] for row in result["rows"]] == [r["detector"] for r in table] \
        == list(DETECTORS)
    for row, line in zip(result["rows"], table):
        for key in ("auroc", "fpr_at_95_tpr", "aupr_in", "aupr_out"):
            assert 0 <= row[key] <= 1 and float(line[key]) == pytest.approx(row[key])
        assert (row["ood_images"], row["in_dist_images"], row["model"]) == (10, 12,
                                                                            "lenet-mnist")

    # MaxSoftmax, by hand: a fooling image is more OOD when its top softmax is lower
    target = build_target("lenet-mnist", torch.device("cpu"))
    test = in_dist_sets(str(folder), None, 10_000, 0)[0]
    in_dist = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32)[None])
                           for p in test.items]) / 255
    elites = sorted((run / "archive").glob("class_*.png"))
    ood = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32)[None])
                       for p in elites]) / 255
    expected = auroc(-target.scores(ood).max(1), -target.scores(in_dist).max(1))
    assert result["rows"][0]["auroc"] == pytest.approx(expected, abs=1e-9)


def test_an_exported_dataset_scores_like_its_runs(pytorch_ood, run, tmp_path):
    folder = strokes_folder(tmp_path / "digits")
    export_dataset([run], tmp_path / "fooling")
    from_run = evofool.api.ood([run], in_dist=str(folder), device="cpu")
    from_dataset = evofool.api.ood(tmp_path / "fooling", in_dist=str(folder), device="cpu")
    assert from_run == from_dataset


def test_another_model_on_rgb_images_uses_its_logits(pytorch_ood, run, tmp_path):
    folder = strokes_folder(tmp_path / "things", size=32, mode="RGB")
    rows = evofool.api.ood([run], model="python:plugin_models:tiny_net", in_dist=str(folder),
                           device="cpu")
    assert [row["detector"] for row in rows] == list(DETECTORS)
    assert all(0 <= row["auroc"] <= 1 for row in rows)
    assert "features: the logits" in rows[-1]["settings"]
    assert rows[0]["model"] == "python:plugin_models:tiny_net"


def test_sources_of_different_models_need_model(pytorch_ood, run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(run, other)
    torch.manual_seed(3)
    save_lenet(LeNet(), tmp_path / "other.safetensors")
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["model"]["weights_path"] = str(tmp_path / "other.safetensors")
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    folder = strokes_folder(tmp_path / "digits")
    args = ["ood", str(run), str(other), "--in-dist", str(folder), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "were evolved against different models" in err and "give --model" in err
    assert main(args + ["--model", "lenet-mnist"]) == 0
    assert "20 fooling images (OOD)" in capsys.readouterr().out


def test_without_pytorch_ood_one_line_says_how_to_install(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_ood", None)  # import pytorch_ood now fails
    assert main(["ood", str(run), "--in-dist", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("evofool: error: evofool ood needs pytorch-ood: pip install 'evofool[ood]' "
                   "(or pip install 'pytorch-ood>=0.4')")


@pytest.mark.parametrize("args, fragment", [
    (["{run}"], "--in-dist mnist-test needs the MNIST IDX files: give --data-dir DIR or set "
                "EVOFOOL_MNIST_DIR"),
    (["{run}", "--data-dir", "{empty}"], "--data-dir: "),
    (["{run}", "--in-dist", "{missing}"], "is neither 'mnist-test' nor a folder of images"),
    (["{run}", "--in-dist", "{empty}"], "holds no images in class folders"),
    (["{run}", "--in-dist", "{broken}"], "is not an image file that Pillow reads"),
    (["{missing}", "--in-dist", "{digits}"], "does not exist"),
    (["{empty}", "--in-dist", "{digits}"], "not a run directory"),
    (["{run}", "--in-dist", "{digits}", "--model", "nonet"], "unknown model 'nonet'"),
    (["{run}", "--in-dist", "{digits}", "--fit-images", "x"], "--fit-images 'x' is invalid"),
    (["{run}", "--in-dist", "{digits}", "--device", "tpu"], "--device 'tpu' is not a device"),
])
def test_bad_inputs_are_one_line_errors(pytorch_ood, run, tmp_path, capsys, monkeypatch, args,
                                        fragment):
    monkeypatch.delenv("EVOFOOL_MNIST_DIR", raising=False)
    (tmp_path / "empty").mkdir()
    broken = strokes_folder(tmp_path / "broken", per_class=3)
    (broken / "vertical" / "01.png").write_bytes(b"not a png")
    names = {"run": run, "empty": tmp_path / "empty", "missing": tmp_path / "missing",
             "broken": broken, "digits": strokes_folder(tmp_path / "digits")}
    assert main(["ood"] + [a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evofool: error: ") and "\n" not in err and fragment in err, err


@pytest.mark.long
@pytest.mark.mnist_data
def test_ood_on_the_real_mnist_test_split(pytorch_ood, run, tmp_path, capsys, monkeypatch):
    data_dir = real_mnist_dir("the real-MNIST OOD benchmark")
    monkeypatch.setenv("EVOFOOL_MNIST_DIR", str(data_dir))  # the variable, not --data-dir
    assert main(["ood", str(run), "--fit-images", "500", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "10 fooling images (OOD) vs 10,000 mnist-test images" in out
    assert "fit on 500 MNIST training images" in out
    for name in DETECTORS:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert 0 <= float(line.split()[1]) <= 1
