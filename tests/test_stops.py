"""Exact resume under every stop: real SIGINT, SIGTERM and SIGKILL (and an exception) at many
moments, mid-scoring included, for MAP-Elites and a two-class GA. Each chain stops one run
again and again, resuming it each time, and must end with the archive and log of a run that
was never stopped.

Stops come from two places: the model itself (tests/plugin_models.py ``StopOnCall``: on its
Nth forward call it sends its own process the signal, so the signal lands inside scoring,
at a chosen chunk of a chosen generation) and this test (a signal sent once the run's log
has grown by some lines: whatever the run is doing then, asking, telling, logging or
writing a checkpoint)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from evofool.config import load_experiment
from evofool.runner import run_experiment

TESTS = Path(__file__).resolve().parent

EXPERIMENTS = {
    # 3 chunks of 10 per generation: forward call 1 is the probe, 2-4 generation 0, ...
    "map_elites": {"algorithm": {"type": "map_elites", "init_size": 30, "offspring": 30},
                   "budget": {"generations": 20}, "batch_size": 10},
    # 3 chunks per generation (6 + 6 + 4, then 6 + 6 + 2), 10 generations per class, 2
    # classes: call 32 of a fresh run is the first chunk of the second class
    "ga": {"algorithm": {"type": "ga", "population": 16, "elite": 2, "tournament_size": 3,
                         "target_classes": [3, 7]},
           "budget": {"generations": 9}, "batch_size": 6},
}

# Moments, one per process of a chain: "@N" = the model's Nth forward call in that process
# (mid-scoring: chunk N of the run from where the process resumed), "+K" = this test signals
# once K more lines are in the log. Each chain meets every kind of stop: each signal
# mid-scoring in one of the chains, and SIGKILL (MAP-Elites) or SIGTERM (GA) from outside at
# whatever moment the loop is in.
MOMENTS = {
    "map_elites": ["@2", "@9", "+3", "@4", "@15"],
    "ga": ["@3", "@32", "+3", "@5", "@4"],
}
STOPS = {
    "map_elites": ["SIGINT", "SIGTERM", "SIGKILL", "raise", "SIGKILL"],
    "ga": ["SIGTERM", "SIGKILL", "SIGTERM", "raise", "SIGINT"],
}
EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -signal.SIGKILL, "raise": 1}


def write_experiment(folder: Path, algorithm: str) -> Path:
    spec = EXPERIMENTS[algorithm]
    data = {"name": algorithm, "seed": 3, "model": "python:plugin_models:stopping_tiny_net",
            "genome": {"type": "direct", "crossover": "sbx"}, "algorithm": spec["algorithm"],
            "budget": spec["budget"], "output_dir": str(folder / "run"),
            "log": {"progress": False, "checkpoint_every": 4},
            "runtime": {"device": "cpu", "batch_size": spec["batch_size"], "threads": 1}}
    path = folder / "experiment.yaml"
    folder.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def log_lines(run_dir: Path) -> int:
    try:
        return (run_dir / "log.jsonl").read_text().count("\n")
    except FileNotFoundError:
        return 0


def run_process(args: list[str], run_dir: Path, stop: str | None, moment: str | None):
    """One evofool process, stopped as ``stop`` (a signal name or "raise") at ``moment``;
    returns (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("EVOFOOL_TEST_STOP", None)
    if moment and moment.startswith("@"):
        env["EVOFOOL_TEST_STOP"] = f"{stop}{moment}"
    process = subprocess.Popen([sys.executable, "-m", "evofool", "run", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if moment and moment.startswith("+"):
        wanted = log_lines(run_dir) + int(moment[1:])
        deadline = time.time() + 120
        while process.poll() is None and time.time() < deadline:
            if log_lines(run_dir) >= wanted:
                process.send_signal(getattr(signal, stop))
                break
            time.sleep(0.002)
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def run_chain(folder: Path, algorithm: str, stops: list[str]) -> tuple[list[str], list[str]]:
    """Start, stop at each moment (stops[i] at MOMENTS[algorithm][i]), resume until done.
    Returns what went wrong (empty when every stop behaved) and the stops that happened."""
    experiment = write_experiment(folder, algorithm)
    run_dir = folder / "run"
    problems, happened = [], []
    resume = ["--resume", str(run_dir), "--trust"]  # our own run: its python: model may load
    for number, (stop, moment) in enumerate(zip(stops, MOMENTS[algorithm])):
        args = [str(experiment)] if number == 0 else resume
        code, stderr = run_process(args, run_dir, stop, moment)
        if code == 0 and moment.startswith("+"):
            return problems, happened  # finished before the test's signal came
        happened.append(stop)
        if code != EXIT[stop]:
            problems.append(f"{stop} at {moment}: exit {code}, expected {EXIT[stop]}: {stderr}")
        if stop in ("SIGINT", "SIGTERM"):
            last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            if (len(stderr.strip().splitlines()) != 1 or f"stopped by {stop}" not in last
                    or "--resume" not in last or "error" in stderr):
                problems.append(f"{stop} at {moment}: stderr is not one stop line: {stderr!r}")
    last = resume if stops else [str(experiment)]
    code, stderr = run_process(last, run_dir, None, None)
    if code != 0:
        problems.append(f"final resume: exit {code}: {stderr}")
    return problems, happened


def outcome(run_dir: Path) -> tuple[str, dict, list[dict]]:
    """archive.json, elites.npz arrays and the log without its wall-clock times."""
    with np.load(run_dir / "archive" / "elites.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    for record in log:
        record.pop("wall_time")
    return (run_dir / "archive" / "archive.json").read_text(), arrays, log


def run_all_chains(root: Path) -> dict[str, tuple[Path, list[str], list[str]]]:
    """For each algorithm, a chain of stopped and resumed processes (the two chains side by
    side, each process computing with one thread) and, meanwhile in this process, the same
    run never stopped."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {algorithm: pool.submit(run_chain, root / algorithm / "stopped", algorithm,
                                          STOPS[algorithm]) for algorithm in STOPS}
        for algorithm in STOPS:
            run_experiment(load_experiment(write_experiment(root / algorithm / "whole",
                                                            algorithm)))
        return {algorithm: (root / algorithm, *future.result())
                for algorithm, future in futures.items()}


@pytest.mark.long
@pytest.mark.slow
def test_every_stop_kind_at_every_moment_resumes_to_the_uninterrupted_run(tmp_path):
    # One test for both algorithms, so that one pytest-xdist worker runs both chains at once.
    for algorithm, (folder, problems, happened) in run_all_chains(tmp_path).items():
        assert problems == [], algorithm
        assert set(happened) == {"SIGINT", "SIGTERM", "SIGKILL", "raise"}, (algorithm, happened)
        assert len(happened) >= len(STOPS[algorithm]) - 1, f"{algorithm}: only {happened}"

        archive, arrays, log = outcome(folder / "whole" / "run")
        steps = [record["step"] for record in log]
        assert steps == list(range(21 if algorithm == "map_elites" else 20))
        if algorithm == "ga":
            assert [r["target_class"] for r in log] == [3] * 10 + [7] * 10
            assert [r["generation"] for r in log] == list(range(10)) * 2
        stopped_archive, stopped_arrays, stopped_log = outcome(folder / "stopped" / "run")
        assert stopped_archive == archive, f"{algorithm}: archive.json differs"
        assert stopped_arrays.keys() == arrays.keys()
        for key in arrays:
            assert np.array_equal(stopped_arrays[key], arrays[key]), f"{algorithm}: {key}"
        assert stopped_log == log, f"{algorithm}: log differs"
