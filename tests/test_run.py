"""Whole runs on the shipped LeNet at small budgets: outputs, reproducibility, resume."""
import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from evofool.archive_store import export_archive, load_archive
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.runner import resume_run, run_experiment
from conftest import small_experiment


def test_a_run_writes_config_log_archive_pngs_and_montage(experiment_file, tmp_path):
    result = run_experiment(load_experiment(experiment_file))
    run = tmp_path / "run"
    assert load_experiment(run / "config.yaml").to_dict()["budget"]["generations"] == 6
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [line["generation"] for line in lines] == list(range(7))
    assert lines[-1]["evaluations"] == 40 + 6 * 40 == result.evaluations
    assert len(lines[-1]["best"]) == len(lines[-1]["batch_median"]) == 10
    content = json.loads((run / "archive" / "archive.json").read_text())
    assert len(content["classes"]) == 10
    for row in content["classes"]:
        png = Image.open(run / "archive" / row["png"])
        assert png.size == (28, 28) and png.mode == "L"
        # direct genomes are 8-bit already: the PNG scores exactly what evolution scored
        assert abs(row["png_confidence"] - row["confidence"]) < 1e-6
        assert 0 <= row["generation"] <= 6 and 1 <= row["evaluations"] <= 280
    montage = Image.open(run / "montage.png")
    assert montage.width > 10 * 28


def test_map_elites_improves_every_class_over_random_images(tmp_path):
    path = small_experiment(tmp_path, budget={"generations": 30})
    result = run_experiment(load_experiment(path))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    # every digit's elite beats the best of the 40 random images it started from
    assert all(end > start for start, end in zip(log[0]["best"], log[-1]["best"]))
    assert result.archive_json["summary"]["median"] == log[-1]["median"] > log[0]["median"]


def test_same_seed_same_archive_and_other_seed_differs(tmp_path):
    def archive_of(name, seed):
        path = small_experiment(tmp_path / name, seed=seed, output_dir=str(tmp_path / name / "r"))
        run_experiment(load_experiment(path))
        return (tmp_path / name / "r" / "archive" / "archive.json").read_text()

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    first = archive_of("a", 5)
    assert archive_of("b", 5) == first
    assert archive_of("c", 6) != first


def test_evaluation_budget_is_met_exactly(tmp_path):
    path = small_experiment(tmp_path, budget={"evaluations": 130})
    assert run_experiment(load_experiment(path)).evaluations == 130


@pytest.mark.long
def test_stop_confidence_ends_the_run_early(tmp_path):
    path = small_experiment(tmp_path, budget={"generations": 500, "stop_confidence": 0.05})
    result = run_experiment(load_experiment(path))
    assert result.generations < 500
    assert result.archive_json["summary"]["min"] >= 0.05


def test_resume_extends_a_finished_run_like_one_long_run(tmp_path):
    (tmp_path / "long").mkdir(), (tmp_path / "short").mkdir()
    long_path = small_experiment(tmp_path / "long", budget={"generations": 8},
                                 output_dir=str(tmp_path / "long" / "r"))
    run_experiment(load_experiment(long_path))
    short_path = small_experiment(tmp_path / "short", budget={"generations": 5},
                                  output_dir=str(tmp_path / "short" / "r"))
    run_experiment(load_experiment(short_path))
    resume_run(tmp_path / "short" / "r", ["budget.generations=8"])
    assert ((tmp_path / "short" / "r" / "archive" / "archive.json").read_text()
            == (tmp_path / "long" / "r" / "archive" / "archive.json").read_text())


def test_ga_runs_each_target_class_and_fills_only_those(tmp_path):
    path = small_experiment(tmp_path, algorithm={"type": "ga", "population": 20, "elite": 2,
                                                 "target_classes": [3, 7]},
                            genome={"type": "direct", "crossover": "sbx"},
                            budget={"generations": 4})
    result = run_experiment(load_experiment(path))
    filled = [row["class"] for row in result.archive_json["classes"] if row["confidence"]]
    assert filled == [3, 7]
    assert result.evaluations == 2 * (20 + 4 * 18)


def test_ga_resumed_from_its_checkpoint_matches_an_uninterrupted_run(tmp_path):
    ga = {"type": "ga", "population": 12, "elite": 2, "tournament_size": 3,
          "target_classes": [2]}
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    whole = small_experiment(tmp_path / "a", algorithm=ga, budget={"generations": 6},
                             genome={"type": "direct", "crossover": "sbx"},
                             output_dir=str(tmp_path / "a" / "r"))
    run_experiment(load_experiment(whole))
    part = small_experiment(tmp_path / "b", algorithm=ga, budget={"generations": 3},
                            genome={"type": "direct", "crossover": "sbx"},
                            output_dir=str(tmp_path / "b" / "r"))
    run_experiment(load_experiment(part))
    resume_run(tmp_path / "b" / "r", ["budget.generations=6"])
    assert ((tmp_path / "a" / "r" / "archive" / "archive.json").read_text()
            == (tmp_path / "b" / "r" / "archive" / "archive.json").read_text())


def test_archive_copied_elsewhere_can_be_shown_and_exported(experiment_file, tmp_path):
    run_experiment(load_experiment(experiment_file))
    copy = tmp_path / "elsewhere"
    import shutil
    shutil.copytree(tmp_path / "run" / "archive", copy)
    shutil.rmtree(tmp_path / "run")
    archive, genome_type, content = load_archive(copy)
    assert archive.filled.all() and genome_type.size == (28, 28)
    written = export_archive(copy, tmp_path / "exported")
    assert len(written) == 11
    original = np.asarray(Image.open(copy / content["classes"][4]["png"]))
    again = np.asarray(Image.open(tmp_path / "exported" / content["classes"][4]["png"]))
    assert np.array_equal(original, again)


def test_tensorboard_logging_is_opt_in_and_records_per_generation_scalars(tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    path = small_experiment(tmp_path, log={"progress": False, "tensorboard": True})
    run_experiment(load_experiment(path))
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    accumulator.Reload()
    medians = accumulator.Scalars("archive/median")
    assert [m.step for m in medians] == [40 + 40 * g for g in range(7)]
    assert "best/3" in accumulator.Tags()["scalars"]
    (tmp_path / "b").mkdir()
    plain = small_experiment(tmp_path / "b", output_dir=str(tmp_path / "b" / "run"))
    run_experiment(load_experiment(plain))
    assert not (tmp_path / "b" / "run" / "tensorboard").exists()


def test_an_archive_saved_with_a_cuda_render_device_opens_renders_and_rescores_on_the_cpu(
        tmp_path):
    """Render placement is runtime, not genome: an archive whose files say cuda (as evofool
    0.1 wrote them, and as a GPU run's config says) still works on a CPU-only machine."""
    from evofool.archive_store import ARCHIVE_JSON
    from evofool.render import render_to_png
    from evofool.report import write_report
    from evofool.transfer import ModelSpec, write_rescore
    path = small_experiment(tmp_path, genome={"type": "cppn"}, budget={"generations": 2})
    run_experiment(load_experiment(path))
    run = tmp_path / "run"
    archive_json = run / "archive" / ARCHIVE_JSON
    content = json.loads(archive_json.read_text())
    content["genome"].update(render_device="cuda", batching="by_depth")
    archive_json.write_text(json.dumps(content))
    config = (run / "config.yaml").read_text()
    assert "render_device: cpu" in config
    (run / "config.yaml").write_text(config.replace("render_device: cpu",
                                                    "render_device: cuda"))

    archive, genome_type, _ = load_archive(run)
    assert genome_type.device.type == "cpu" and not genome_type.by_depth
    written = render_to_png(run, tmp_path / "big.png", 64, cls=archive.class_ids[0])
    assert Image.open(written[0]).size == (64, 64)
    _, _, rows = write_rescore(run, ModelSpec.parse("lenet-mnist"), tmp_path / "rescore", "cpu")
    expected = {r["class"]: r["png_confidence"] for r in content["classes"] if r["png"]}
    for row in rows:
        if row["class"] in expected:  # the same model re-scores the saved PNG the same way
            assert abs(row["target_confidence"] - expected[row["class"]]) < 1e-5
    assert write_report(run).is_file()
    assert len(export_archive(run, tmp_path / "out")) == 11


def test_a_model_returning_nan_for_some_inputs_never_gets_a_nan_elite(tmp_path):
    """Every third image of a chunk scores NaN (tests/plugin_models.py): those candidates
    take no cell, even an empty one, and each generation's log line counts them."""
    path = small_experiment(tmp_path, model="python:plugin_models:sometimes_nan_net",
                            algorithm={"type": "map_elites", "init_size": 30, "offspring": 30},
                            runtime={"device": "cpu", "batch_size": 10},
                            budget={"generations": 5})
    result = run_experiment(load_experiment(path))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [line["nonfinite"] for line in log] == [9] * 6  # 3 of every chunk of 10
    archive, _, content = load_archive(tmp_path / "run")
    assert content["summary"]["filled"] == 10 == result.archive_json["summary"]["filled"]
    assert np.isfinite(archive.confidence).all() and np.isfinite(archive.probabilities).all()
    # no elite is a candidate the model scored NaN: each generation is 30 candidates in
    # chunks of 10, and the NaN ones sit at places 1, 4 and 7 of a chunk
    places = {(row["evaluations"] - 1) % 10 for row in content["classes"]}
    assert not places & {1, 4, 7}


@pytest.mark.long
def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_beginning(tmp_path):
    """kill -9 right after config.yaml is written, as the first checkpoint is about to be:
    --resume starts the run over (same result) instead of stranding the directory."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    whole = small_experiment(tmp_path / "a", output_dir=str(tmp_path / "a" / "r"))
    run_experiment(load_experiment(whole))
    cut = small_experiment(tmp_path / "b", output_dir=str(tmp_path / "b" / "r"))
    killer = ("import os, signal, sys, evofool.runner\n"
              "def kill(*args, **kwargs):\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "evofool.runner.save_checkpoint = kill\n"
              "from evofool.cli import main\n"
              "sys.exit(main(['run', sys.argv[1]]))\n")
    process = subprocess.run([sys.executable, "-c", killer, str(cut)], capture_output=True)
    assert process.returncode == -signal.SIGKILL
    run = tmp_path / "b" / "r"
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.yaml", "log.jsonl"]
    assert (run / "log.jsonl").read_text() == ""
    resume_run(run)
    assert ((run / "archive" / "archive.json").read_text()
            == (tmp_path / "a" / "r" / "archive" / "archive.json").read_text())
    # a directory whose checkpoint is gone but whose archive is there is not started over
    (run / "checkpoint.npz").unlink()
    with pytest.raises(EvofoolError, match="no checkpoint"):
        resume_run(run)


def test_resuming_someone_elses_run_does_not_run_the_code_its_config_names(tmp_path, capsys):
    """config.yaml is an artifact: a python: model (or a module:Class) in it is code that
    --resume would run; without --trust it is one line, and the module is never imported."""
    from evofool.cli import main
    run_experiment(load_experiment(small_experiment(tmp_path, budget={"generations": 1})))
    config = tmp_path / "run" / "config.yaml"
    payload = tmp_path / "payload_dir"
    payload.mkdir()
    marker = tmp_path / "imported"
    (payload / "evofool_resume_payload.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef factory():\n    raise SystemExit(9)\n")
    sys.path.insert(0, str(payload))
    try:
        for replace, name in (("spec: lenet-mnist", "spec: python:evofool_resume_payload:factory"),
                              ("type: map_elites", "type: evofool_resume_payload:Search")):
            original = config.read_text()
            config.write_text(original.replace(replace, name))
            assert main(["run", "--resume", str(tmp_path / "run"),
                         "budget.generations=2"]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "--trust" in err and "evofool_resume_payload" in err
            config.write_text(original)
        assert not marker.exists()
    finally:
        sys.path.remove(str(payload))


def test_a_model_that_scores_only_nan_runs_out_saves_an_empty_archive_and_says_so(tmp_path,
                                                                                  capsys):
    from evofool.cli import main
    path = small_experiment(tmp_path, model="python:plugin_models:nan_in_batches_net",
                            budget={"generations": 3})
    assert main(["run", str(path)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "NaN or inf" in line]
    assert len(warnings) == 1 and "every one of the 40 candidates of step 0" in warnings[0]
    content = json.loads((tmp_path / "run" / "archive" / "archive.json").read_text())
    assert content["summary"]["filled"] == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [line["nonfinite"] for line in log] == [40] * 4


def test_bf16_on_a_cpu_without_native_bf16_is_warned_about(monkeypatch, capsys):
    from types import SimpleNamespace
    import torch
    from evofool.runner import warn_if_slow_bf16
    cpu = SimpleNamespace(device=torch.device("cpu"))
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False,
                        raising=False)
    warn_if_slow_bf16("fp32", cpu)
    assert capsys.readouterr().err == ""
    warn_if_slow_bf16("bf16", cpu)
    assert "use model.precision=fp32" in capsys.readouterr().err
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True,
                        raising=False)
    warn_if_slow_bf16("bf16", cpu)
    assert capsys.readouterr().err == ""
