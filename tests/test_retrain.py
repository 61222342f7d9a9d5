"""evofool retrain (paper sec. 5): an 11-output LeNet, the fooling class learned, the
per-iteration table, resume after an interrupted iteration, one-line errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import evofool.api
from evofool.cli import main
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.fitness.lenet import LeNet, build_lenet_target, load_lenet, save_lenet
from evofool.fitness.lenet_training import predict_lenet, train_lenet
from evofool.fitness.registry import build_target
from evofool.readers import read_npz
from evofool.retrain import ITERATION_JSON, share
from evofool.runner import run_experiment
from conftest import REPO, real_mnist_dir, small_experiment
from test_lenet import _synthetic_digits, _write_idx

TIMINGS = ("train_seconds", "evolve_seconds", "seconds")
ROW_FIELDS = ("iteration", "outputs", "held_out_accuracy", "real_as_fooling", "fooling_recall",
              "fooling_recall_held_out", "best", "median_best", "min_best", "digits_at_99",
              "digits_at_9999", "evaluations_to_99", "evaluations_to_9999",
              "median_evaluations_to_9999", "fooling_images", "fooling_train_images")


def tiny_retrain(folder: Path, **retrain) -> Path:
    """A retrain experiment that takes seconds: a few generations, one epoch per network."""
    data = {
        "name": "tiny_retrain", "seed": 1, "model": "lenet-mnist", "genome": {"type": "direct"},
        "algorithm": {"type": "map_elites", "init_size": 40, "offspring": 40},
        "budget": {"generations": 15}, "log": {"progress": False, "checkpoint_every": 10},
        "runtime": {"device": "cpu", "threads": 1},
        "retrain": {"iterations": 2, "images_per_iteration": 100, "epochs": 2, "runs": 2,
                    "threshold": 0.5, "holdout": 0.2, **retrain},
    }
    path = folder / "retrain.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """Synthetic IDX files in the train-5k layout (300 + 300 training, 2,000 held out)."""
    folder = tmp_path_factory.mktemp("mnist")
    _write_idx(folder, "train-5k", *_synthetic_digits(300, seed=1))
    _write_idx(folder, "t10k", *_synthetic_digits(2300, seed=2))
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, digits) -> dict:
    """Two iterations, never interrupted, through the Python API."""
    folder = tmp_path_factory.mktemp("reference")
    return evofool.api.retrain(tiny_retrain(folder), data_dir=digits, out=folder / "out",
                               echo=False)


def without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


# --- LeNet with a fooling class ------------------------------------------------------------

def test_eleven_output_lenet_loads_and_scores_with_class_names(tmp_path):
    torch.manual_seed(0)
    path = save_lenet(LeNet(11).eval(), tmp_path / "lenet11.safetensors")
    target = build_lenet_target("cpu", path)
    assert target.class_names == [str(d) for d in range(10)] + ["fooling"]
    scores = target.scores(torch.rand(4, 1, 28, 28))
    assert scores.shape == (4, 11)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-9)
    digits_only = build_target("lenet-mnist", torch.device("cpu"), str(path),
                               classes=list(range(10)))
    assert digits_only.scored_names == [str(d) for d in range(10)]
    part = digits_only.scores(torch.rand(4, 1, 28, 28))
    assert part.shape == (4, 10) and np.all(part.sum(axis=1) < 1.0)  # softmax over all 11
    # the shipped file keeps working, with 10 outputs
    assert build_lenet_target("cpu").class_names == [str(d) for d in range(10)]

    from safetensors.torch import save_file
    twelve = {k: v for k, v in LeNet(11).state_dict().items()}
    twelve["fc2.weight"], twelve["fc2.bias"] = torch.zeros(12, 500), torch.zeros(12)
    save_file(twelve, str(tmp_path / "lenet12.safetensors"))
    with pytest.raises(ValueError, match=r"fc2.weight' has shape \(12, 500\).*\(11, 500\)"):
        load_lenet(tmp_path / "lenet12.safetensors")


def test_eleven_output_lenet_works_in_run_rescore_and_transfer(tmp_path, capsys):
    torch.manual_seed(1)
    weights = save_lenet(LeNet(11).eval(), tmp_path / "lenet11.safetensors")
    path = small_experiment(tmp_path, model={"spec": "lenet-mnist", "weights_path": str(weights),
                                             "classes": list(range(10))},
                            budget={"generations": 2})
    result = run_experiment(load_experiment(path))
    assert result.archive_json["class_names"] == [str(d) for d in range(10)]
    model = f"lenet-mnist@{weights}"
    assert main(["rescore", str(result.run_dir), "--model", model, "--device", "cpu",
                 "--out", str(tmp_path / "rescored")]) == 0
    rows = json.loads((tmp_path / "rescored.json").read_text())["classes"]
    assert len(rows) == 10 and all(row["target_confidence"] is not None for row in rows)
    assert main(["transfer", str(result.run_dir), "--model", "lenet-mnist", "--model", model,
                 "--device", "cpu", "--out", str(tmp_path / "transfer")]) == 0
    assert (tmp_path / "transfer" / "transfer.json").is_file()
    capsys.readouterr()


def test_the_fooling_class_is_learned(tmp_path):
    """Noise labelled 10 beside bar digits: the trained network puts noise it never saw in
    the fooling class (chance: 1 in 11) and still reads the digits."""
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    _write_idx(data_dir, "train-5k", *_synthetic_digits(300, seed=1))
    test_images, test_labels = _synthetic_digits(2300, seed=2)
    _write_idx(data_dir, "t10k", test_images, test_labels)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(400, 28, 28)).astype(np.uint8)
    out = tmp_path / "lenet.safetensors"
    metrics = train_lenet(str(data_dir), out, seed=0, epochs=2, progress=False,
                          extra_images=noise[:300], extra_labels=np.full(300, 10))
    assert metrics["outputs"] == 11 and metrics["extra_images"] == 300
    assert load_lenet(out).fc2.out_features == 11
    recall = float((predict_lenet(out, noise[300:]) == 10).mean())
    assert recall > 0.5, f"fooling recall on unseen noise {recall:.0%} (chance 9%)"
    assert metrics["held_out_accuracy"] > 0.3


# --- the retrain loop ----------------------------------------------------------------------

@pytest.mark.long
def test_table_has_one_row_per_iteration_with_the_recorded_fields(reference):
    out = Path(reference["out"])
    rows = reference["rows"]
    assert [row["iteration"] for row in rows] == [1, 2] and reference["finished"]
    for row in rows:
        assert set(ROW_FIELDS) <= set(row)
        assert len(row["best"]) == 10 and len(row["evaluations_to_9999"]) == 10
        assert 0.0 <= row["held_out_accuracy"] <= 1.0
    first, second = rows
    assert first["outputs"] == 10 and first["fooling_recall"] is None
    assert first["fooling_images"] > 0, "iteration 1 gathered no fooling images"
    assert first["fooling_images"] <= 100 and first["fooling_held_out"] == round(
        0.2 * first["fooling_images"])
    # DNN_2 has the fooling class and recognises most of iteration 1's images (chance: 1/11)
    assert second["outputs"] == 11
    assert second["fooling_train_images"] == first["fooling_images"] - first["fooling_held_out"]
    assert second["fooling_recall"] > 0.5
    assert second["earlier_fooling_images"] == first["fooling_images"]

    table = list(csv.DictReader((out / "retrain.csv").open()))
    assert [r["iteration"] for r in table] == ["1", "2"] and "best_9" in table[0]
    assert json.loads((out / "retrain.json").read_text())["rows"] == rows
    for name in ("retrain.png", "report.html", "retrain.yaml"):
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "iter_001/run_0/report/index.html" in page
    fooling = read_npz(out / "iter_001" / "fooling.npz")
    assert fooling["images"].shape == (first["fooling_images"], 28, 28)
    assert fooling["images"].dtype == np.uint8 and fooling["train"].dtype == bool
    assert np.all(fooling["confidence"] >= 0.5)
    iteration = out / "iter_002"
    assert load_lenet(iteration / "lenet.safetensors").fc2.out_features == 11
    run = yaml.safe_load((iteration / "run_0" / "config.yaml").read_text())
    assert run["model"]["classes"] == list(range(10)) and "retrain" not in run
    assert json.loads((iteration / ITERATION_JSON).read_text()) == rows[1]


@pytest.mark.long
def test_resume_after_an_interrupted_iteration_repeats_the_uninterrupted_retrain(
        tmp_path, digits, reference, capsys, monkeypatch):
    import evofool.runner
    path = tiny_retrain(tmp_path)
    out = tmp_path / "out"
    real_run = evofool.runner.run_experiment

    def stopped_in_iteration_2(experiment, hooks=()):
        if "_iter002_run1" in experiment.name:  # run_0 of iteration 2 is done by now
            raise KeyboardInterrupt
        return real_run(experiment, hooks)

    monkeypatch.setattr(evofool.runner, "run_experiment", stopped_in_iteration_2)
    code = main(["retrain", str(path), "--data-dir", str(digits), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 130
    assert "interrupted in iteration 2" in captured.err and f"--out {out}" in captured.err
    assert (out / "iter_001" / ITERATION_JSON).is_file()
    assert (out / "iter_002" / "run_0").is_dir()
    assert not (out / "iter_002" / ITERATION_JSON).exists()
    assert "  1   10" in captured.out  # the table line of iteration 1 was printed

    monkeypatch.setattr(evofool.runner, "run_experiment", real_run)
    assert main(["retrain", str(path), "--data-dir", str(digits), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1 done, continuing" in captured.out
    rows = json.loads((out / "retrain.json").read_text())["rows"]
    assert without_timings(rows) == without_timings(reference["rows"])
    for k in (1, 2):
        mine = read_npz(out / f"iter_00{k}" / "fooling.npz")
        theirs = read_npz(Path(reference["out"]) / f"iter_00{k}" / "fooling.npz")
        assert mine.keys() == theirs.keys()
        assert all(np.array_equal(mine[key], theirs[key]) for key in mine)

    # a finished retrain with more iterations asked for would go on; the same one is done
    assert main(["retrain", str(path), "--data-dir", str(digits), "--out", str(out)]) == 0
    assert "2 done, continuing" in capsys.readouterr().out


def test_share_gives_each_digit_an_equal_part_and_passes_on_what_one_lacks():
    assert share(100, [50] * 10) == [10] * 10
    assert share(100, [0, 0, 0, 0, 0, 50, 50, 0, 0, 0]) == [0] * 5 + [50, 50] + [0] * 3
    assert share(10, [1, 100, 100]) == [1, 4, 5]
    assert sum(share(1300, [5000] * 10)) == 1300


# --- mistakes: one line each ---------------------------------------------------------------

def one_line_error(capsys, *args) -> str:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("evofool: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("retrain, fragments", [
    ({"iterations": 0}, ["retrain.iterations = 0", "positive"]),
    ({"iterations": 1000}, ["retrain.iterations = 1000", "at most 100"]),
    ({"threshold": 1.5}, ["retrain.threshold = 1.5", "(0, 1]"]),
    ({"holdout": 0.9}, ["retrain.holdout = 0.9", "[0, 0.5]"]),
    ({"runs": "two"}, ["retrain.runs = 'two'"]),
    ({"epochs": 2.5}, ["retrain.epochs = 2.5"]),
    ({"images": 10}, ["unknown key 'retrain.images'", "images_per_iteration"]),
])
def test_bad_retrain_values_are_one_line_errors(tmp_path, digits, capsys, retrain, fragments):
    path = tiny_retrain(tmp_path, **retrain)
    err = one_line_error(capsys, "retrain", path, "--data-dir", digits, "--out", tmp_path / "o")
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "o").exists()


def test_what_retrain_cannot_do_is_one_line(tmp_path, digits, capsys):
    path = tiny_retrain(tmp_path)
    err = one_line_error(capsys, "retrain", path, "model.spec=efficientnet-lite0",
                         "--data-dir", digits)
    assert "only MNIST (LeNet) retraining is implemented" in err
    err = one_line_error(capsys, "retrain", path, "model.classes=[1,2]", "--data-dir", digits)
    assert "model.classes" in err
    assert "needs --data-dir" in one_line_error(capsys, "retrain", path)
    images = tmp_path / "imagenet" / "n01440764"
    images.mkdir(parents=True)
    (images / "fish.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    err = one_line_error(capsys, "retrain", path, "--data-dir", tmp_path / "imagenet")
    assert "no MNIST training images" in err and "only MNIST (LeNet) retraining" in err
    # evofool run refuses an experiment with a retrain: section, pointing at evofool retrain
    err = one_line_error(capsys, "run", path)
    assert "'retrain:' section" in err and "evofool retrain" in err


def test_another_experiment_in_the_same_folder_is_refused(tmp_path, digits, reference, capsys):
    path = tiny_retrain(tmp_path)
    err = one_line_error(capsys, "retrain", path, "seed=2", "--data-dir", digits,
                         "--out", reference["out"])
    assert "another experiment" in err and "seed" in err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    err = one_line_error(capsys, "retrain", path, "--data-dir", digits, "--out", tmp_path / "busy")
    assert "holds no retrain" in err


def test_the_shipped_retrain_experiment():
    experiment = load_experiment(REPO / "experiments" / "mnist_retrain.yaml")
    assert experiment.retrain is not None and experiment.retrain.iterations >= 5
    assert experiment.description and experiment.model.spec == "lenet-mnist"
    with pytest.raises(EvofoolError, match="evofool retrain"):
        run_experiment(experiment)


@pytest.mark.long
@pytest.mark.mnist_data
def test_retrain_on_real_mnist(tmp_path):
    """Two quick iterations on the real digits: DNN_1 reads them, DNN_2 has the fooling
    class and recognises the images evolved against DNN_1."""
    data_dir = real_mnist_dir("the real-MNIST retrain")
    path = tiny_retrain(tmp_path, epochs=1, runs=1, images_per_iteration=300, threshold=0.9)
    summary = evofool.api.retrain(path, data_dir=data_dir, out=tmp_path / "out", echo=False,
                                  budget={"generations": 40},
                                  algorithm={"init_size": 100, "offspring": 100})
    first, second = summary["rows"]
    assert first["held_out_accuracy"] > 0.9 and second["held_out_accuracy"] > 0.9
    assert first["fooling_images"] >= 100, first["fooling_per_digit"]
    assert second["outputs"] == 11 and second["fooling_recall"] > 0.5
    assert second["real_as_fooling"] < 0.05
