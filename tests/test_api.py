"""The notebook API (evofool.run, evofool.load_run, evofool.api) and the examples/ scripts:
what a user relies on, checked against the files a run writes."""
import json
import math
import runpy
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import evofool
from evofool.api import override_strings, resume, transfer
from evofool.config import load_experiment, parse_override
from evofool.errors import EvofoolError
from evofool.render import render_to_png
from conftest import REPO, small_experiment

EXAMPLES = sorted((REPO / "examples").glob("*.py"))
# What each example writes into $EVOFOOL_EXAMPLES_OUT (a new example needs an entry here).
EXAMPLE_OUTPUTS = {
    "quickstart.py": ["quickstart_montage.png", "quickstart_report/index.html"],
    "inspect_run.py": ["inspect_progress.png", "inspect_elite.png", "inspect_elite_512.png",
                       "inspect_export/montage.png", "inspect_export/class_0000_0.json"],
    "transfer.py": ["transfer/transfer.csv", "transfer/transfer.json", "transfer/transfer.png"],
}


def one_line(error) -> bool:
    return "\n" not in str(error.value) and str(error.value).strip() != ""


def without_wall_time(log: list[dict]) -> list[dict]:
    return [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in record.items()
             if k != "wall_time"} for record in log]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3-generation run made through the API, its overrides given three ways."""
    folder = tmp_path_factory.mktemp("tiny")
    return evofool.run(small_experiment(folder), seed=4, budget={"generations": 3},
                       **{"algorithm.offspring": 20})


def test_overrides_given_as_keywords_apply(tiny):
    assert tiny.config["seed"] == 4 and tiny.config["budget"]["generations"] == 3
    assert tiny.config["algorithm"]["offspring"] == 20
    assert tiny.config["algorithm"]["init_size"] == 40  # a dict sets only the keys it names
    assert tiny.generations == 3 and tiny.evaluations == 40 + 3 * 20
    assert tiny.finished is True
    assert "10/10 classes filled" in repr(tiny) and "finished" in repr(tiny)


@pytest.mark.parametrize("value", [3, 1e-5, -0.5, True, None, "abc", "3", "null", "a: b",
                                   "", "two\nlines", [1, 2], [1, {"b": "c"}], {}])
def test_override_values_reach_the_config_unchanged(value):
    [text] = override_strings({"key": value})
    assert parse_override(text) == (["key"], value)


def test_dicts_set_only_the_keys_they_name():
    assert override_strings({"model": {"spec": "lenet-mnist", "classes": [1, 2]},
                             "budget.generations": 5}) == [
        "model.spec=lenet-mnist", "model.classes=[1, 2]", "budget.generations=5"]


def test_paths_tuples_and_numpy_numbers_become_plain_values(tmp_path):
    strings = override_strings({"output_dir": tmp_path, "model": {"classes": (1, 2)},
                                "seed": np.int64(7)})
    assert [parse_override(text) for text in strings] == [
        (["output_dir"], str(tmp_path)), (["model", "classes"], [1, 2]), (["seed"], 7)]


@pytest.mark.parametrize("overrides, fragment", [
    ({"budget": {"generations": -3}}, "budget.generations"),
    ({"budget": 3}, "budget"),
    ({"sede": 3}, "sede"),
    ({"seed": object()}, "override seed: "),
    ({"seed=3": 1}, "holds '='"),
])
def test_a_bad_override_is_a_one_line_error(tmp_path, overrides, fragment):
    with pytest.raises(EvofoolError, match=fragment) as error:
        evofool.run(small_experiment(tmp_path), **overrides)
    assert one_line(error)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_an_experiment_of_the_wrong_kind_is_a_one_line_error():
    with pytest.raises(EvofoolError, match="expected a YAML path") as error:
        evofool.run(42)
    assert one_line(error)


def test_archive_frame_holds_archive_json(tiny):
    pandas = pytest.importorskip("pandas", reason="Run.archive needs pandas (pip install pandas)")
    rows = json.loads((tiny.path / "archive" / "archive.json").read_text())["classes"]
    frame = tiny.archive
    assert list(frame.index) == [row["class_id"] for row in rows]
    assert frame.index.name == "class_id"
    # a per-class dict (evaluations_to) becomes one column per key
    flat = [{**{k: v for k, v in row.items() if k != "evaluations_to"},
             **{f"evaluations_to_{k}": v for k, v in row["evaluations_to"].items()}}
            for row in rows]
    assert set(frame.columns) == set(flat[0]) - {"class_id"}
    assert "evaluations_to_0.99" in frame.columns
    for row in flat:
        for column, value in row.items():
            if column != "class_id":
                got = frame.loc[row["class_id"], column]
                assert (got is pandas.NA) if value is None else got == value, column
    assert str(frame["generation"].dtype) == "Int64"  # integers, even with empty classes
    assert str(frame["evaluations_to_0.5"].dtype) == "Int64"


def test_without_pandas_the_archive_says_how_to_get_it(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(EvofoolError, match="pip install pandas") as error:
        tiny.archive
    assert one_line(error)
    assert len(tiny.classes) == 10  # the same rows, as dicts


def test_log_has_a_row_per_generation_as_written(tiny):
    lines = [json.loads(line) for line in (tiny.path / "log.jsonl").read_text().splitlines()]
    assert len(tiny.log) == len(lines) == tiny.generations + 1  # generation 0: random start
    assert [row["generation"] for row in tiny.log] == [0, 1, 2, 3]
    for row, line in zip(tiny.log, lines):
        assert row["evaluations"] == line["evaluations"]
        assert row["best"].tolist() == [math.nan if v is None else v for v in line["best"]]


def test_montage_is_the_saved_montage(tiny):
    montage = tiny.montage()
    assert isinstance(montage, Image.Image)
    saved = Image.open(tiny.path / "montage.png")
    assert montage.size == saved.size
    assert np.array_equal(np.asarray(montage.convert("RGB")), np.asarray(saved.convert("RGB")))
    assert tiny.montage(tile=28, columns=5).size[0] < montage.size[0]


def test_elite_is_the_saved_png_and_its_genome_draws_it(tiny, tmp_path):
    for row in tiny.classes:
        elite = tiny.elite(row["class_id"])
        png = np.asarray(Image.open(tiny.path / "archive" / row["png"]))
        assert elite.image.dtype == np.uint8 and elite.image.shape == (28, 28, 1)
        assert np.array_equal(elite.image[..., 0], png)
        assert np.array_equal(np.asarray(elite.render()), png)
        assert elite.genome.shape == (1, 28, 28)  # direct genomes: the pixels
        assert (elite.confidence, elite.generation) == (row["confidence"], row["generation"])
    large = tiny.render(3, size=56)
    render_to_png(tiny.path, tmp_path / "three.png", 56, cls=3)
    assert large.size == (56, 56)
    assert np.array_equal(np.asarray(large), np.asarray(Image.open(tmp_path / "three.png")))


@pytest.mark.parametrize("cls, fragment", [(10, "class 10 is out of range"),
                                           ("3", "class '3' is out of range"),
                                           (-1, "classes 0..9")])
def test_a_class_not_in_the_archive_is_a_one_line_error(tiny, cls, fragment):
    with pytest.raises(EvofoolError, match=fragment) as error:
        tiny.elite(cls)
    assert one_line(error)


def test_same_seed_repeats_exactly_however_given_and_resumed(tmp_path):
    """A dict, an Experiment object and a YAML path run twice and resumed: one result."""
    data = {"name": "same", "model": "lenet-mnist", "genome": {"type": "direct"},
            "algorithm": {"type": "map_elites", "init_size": 30, "offspring": 30},
            "budget": {"generations": 4}, "seed": 9, "runtime": {"device": "cpu"},
            "log": {"progress": False, "checkpoint_every": 2}}
    first = evofool.run(data, output_dir=tmp_path / "a")
    experiment = load_experiment(small_experiment(tmp_path, **data,
                                                  output_dir=str(tmp_path / "b")))
    second = evofool.run(experiment)
    half = evofool.run(small_experiment(tmp_path, **data, output_dir=str(tmp_path / "c")),
                       budget={"generations": 2})
    with pytest.raises(EvofoolError, match="not allowed when resuming") as error:
        half.resume(seed=3)
    assert one_line(error)
    resumed = half.resume(budget={"generations": 4})
    assert half.generations == 2 and resumed.generations == 4  # a Run is a snapshot
    for other in (second, resumed):
        assert other.classes == first.classes
        assert without_wall_time(other.log) == without_wall_time(first.log)


def test_load_run_checks_what_it_reads(tmp_path):
    with pytest.raises(EvofoolError, match="does not exist") as error:
        evofool.load_run(tmp_path / "nowhere")
    assert one_line(error)
    (tmp_path / "config.yaml").write_text("name: [unclosed\n")
    with pytest.raises(EvofoolError) as error:
        evofool.load_run(tmp_path)
    assert one_line(error)


def test_commands_on_a_run_and_trust_for_a_plugin_run(tmp_path):
    """report, export, rescore, compare, transfer through a Run; a run naming a module path
    opens only with trust=True, and a Run made here trusts what its caller wrote."""
    experiment = small_experiment(tmp_path, genome={"type": "plugin_genomes:StripesGenome"})
    made = evofool.run(experiment, budget={"generations": 2})
    assert made.trust and made.report(tmp_path / "report").is_file()
    with pytest.raises(EvofoolError, match="--trust") as error:
        evofool.load_run(made.path)
    assert one_line(error)
    opened = evofool.load_run(made.path, trust=True)
    written = opened.export(tmp_path / "export", genomes=True)
    assert len(written) == 11 and (tmp_path / "export" / "class_0000_0.json").is_file()
    rows = opened.rescore("lenet-mnist", device="cpu", out=tmp_path / "rescore")
    assert [row["class"] for row in rows] == list(range(10))
    assert all(row["target_confidence"] == pytest.approx(row["source_confidence"], abs=1e-6)
               for row in rows)
    assert (tmp_path / "rescore.csv").is_file() and (tmp_path / "rescore.json").is_file()
    compared = opened.compare(made)
    assert [row["confidence_a"] for row in compared] == [row["confidence_b"] for row in compared]
    matrix = transfer([opened], ["lenet-mnist"], device="cpu", out=tmp_path / "transfer")
    assert matrix["mean_confidence"][0][0] == pytest.approx(made.summary["mean"], abs=1e-6)
    assert (tmp_path / "transfer" / "transfer.png").is_file()
    with pytest.raises(EvofoolError, match="--trust"):
        transfer([made.path], ["lenet-mnist"], device="cpu")  # a path: not trusted
    with pytest.raises(EvofoolError, match="not a run directory"):
        resume(tmp_path)


@pytest.mark.parametrize("data_dir, download, fragment", [
    ("empty", False, "train lenet: "), (None, False, "give one of --data-dir / data_dir"),
    ("empty", True, "give one of --data-dir / data_dir")])
def test_train_lenet_errors_are_one_line(tmp_path, data_dir, download, fragment):
    with pytest.raises(EvofoolError, match=fragment) as error:
        evofool.api.train_lenet(data_dir and tmp_path, tmp_path / "lenet.safetensors",
                                epochs=1, download=download, progress=False)
    assert one_line(error)


def test_importing_evofool_does_not_import_torch():
    code = "import sys, evofool; evofool.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
    assert {"run", "load_run", "Run", "EvofoolError"} <= set(dir(evofool))
    assert "direct" in evofool.api.models()["genomes"]


def test_every_example_has_its_outputs_listed():
    assert sorted(path.name for path in EXAMPLES) == sorted(EXAMPLE_OUTPUTS)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_runs_and_writes_its_outputs(example, tmp_path, monkeypatch):
    """As ``python examples/NAME.py`` from an empty folder, in this process (a fresh one
    would spend most of the test importing torch)."""
    out = tmp_path / "out"
    monkeypatch.setenv("EVOFOOL_EXAMPLES_OUT", str(out))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(example)])
    runpy.run_path(str(example), run_name="__main__")
    for name in EXAMPLE_OUTPUTS[example.name]:
        assert (out / name).is_file(), name
    assert (tmp_path / "runs").is_dir()  # runs where `evofool run` puts them: ./runs
