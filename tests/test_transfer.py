"""Re-scoring elites on another model, the transfer matrix, and run comparison."""
import csv
import json

import pytest
import torch

from evofool.cli import main
from evofool.compare import compare_runs
from evofool.fitness.lenet import LeNet, save_lenet
from evofool.transfer import ModelSpec, rescore_run, transfer_matrix, write_transfer
from conftest import direct_and_cppn_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A direct and a CPPN run on the shipped LeNet, and a second, untrained LeNet."""
    root = tmp_path_factory.mktemp("runs")
    paths = direct_and_cppn_runs(root, 8)
    torch.manual_seed(3)
    save_lenet(LeNet(), root / "other.safetensors")
    paths["other"] = root / "other.safetensors"
    return paths


def test_rescore_on_the_source_model_reproduces_the_archive(runs):
    rows = rescore_run(runs["direct"], ModelSpec("lenet-mnist"), device="cpu")
    assert [row["class"] for row in rows] == list(range(10))
    for row in rows:
        assert row["target_confidence"] == pytest.approx(row["source_confidence"], abs=1e-6)


def test_rescore_cli_writes_csv_and_json_for_another_model(runs, tmp_path, capsys):
    out = tmp_path / "scores"
    assert main(["rescore", str(runs["cppn"]), "--model", f"lenet-mnist@{runs['other']}",
                 "--out", str(out), "--device", "cpu"]) == 0
    table = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert len(table) == 10 and set(table[0]) >= {"source_confidence", "target_confidence",
                                                 "target_top1", "target_top1_name"}
    content = json.loads(out.with_suffix(".json").read_text())
    assert content["model"] == "lenet-mnist@other.safetensors"
    # an untrained net is not fooled the way the trained one was
    assert any(abs(float(r["target_confidence"]) - float(r["source_confidence"])) > 0.1
               for r in table)


def test_transfer_matrix_over_runs_and_models(runs, tmp_path):
    models = [ModelSpec("lenet-mnist"), ModelSpec("lenet-mnist", str(runs["other"]))]
    matrix = transfer_matrix([runs["direct"], runs["cppn"]], models, threshold=0.5,
                             device="cpu")
    assert len(matrix["mean_confidence"]) == 2 and len(matrix["mean_confidence"][0]) == 2
    source = rescore_run(runs["direct"], models[0], device="cpu")
    assert matrix["mean_confidence"][0][0] == pytest.approx(
        sum(r["target_confidence"] for r in source) / 10)
    other = rescore_run(runs["direct"], models[1], device="cpu")
    assert matrix["fraction_half"][0][1] == sum(r["target_confidence"] >= 0.5 for r in other) / 10
    assert matrix["top1_agreement"][0][1] == sum(r["target_top1"] == r["class"] for r in other) / 10
    written = write_transfer(matrix, tmp_path / "transfer")
    assert [p.name for p in written] == ["transfer.csv", "transfer.json", "transfer.png"]
    table = list(csv.DictReader(open(written[0])))
    assert len(table) == 4 and {"fraction_at_or_above_0.5", "top1_agreement"} <= set(table[0])


def test_compare_lists_both_runs_per_class(runs, capsys):
    rows = compare_runs(runs["direct"], runs["cppn"])
    assert len(rows) == 10 and all(r["confidence_a"] is not None for r in rows)
    assert main(["compare", str(runs["direct"]), str(runs["cppn"])]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 13


@pytest.mark.parametrize("args, fragment", [
    (["rescore", "{missing}", "--model", "lenet-mnist"], "does not exist"),
    (["rescore", "{direct}", "--model", "alexnet-9000"], "unknown model 'alexnet-9000'"),
    (["rescore", "{direct}", "--model", "lenet-mnist@/no/such.safetensors"], "/no/such.safetensors"),
    (["transfer", "{direct}", "{empty}", "--model", "lenet-mnist", "--out", "{tmp}"],
     "not a run directory"),
    (["compare", "{direct}", "{corrupt}"], "corrupted"),
])
def test_bad_runs_and_models_are_one_line_errors(runs, tmp_path, capsys, args, fragment):
    corrupt = tmp_path / "corrupt"
    import shutil
    shutil.copytree(runs["direct"], corrupt)
    (corrupt / "archive" / "elites.npz").write_bytes(b"PK\x03\x04 nope")
    (tmp_path / "empty").mkdir()
    names = {"missing": tmp_path / "missing", "direct": runs["direct"], "empty": tmp_path / "empty",
             "corrupt": corrupt, "tmp": tmp_path / "out"}
    assert main([a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evofool: error: ") and "\n" not in err and fragment in err, err
