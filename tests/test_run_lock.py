"""One writer per run directory: a second run or a resume while a run is alive gets one line
naming the holder; a holder killed with kill -9 leaves the directory free to resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import small_experiment

LONG = dict(algorithm={"type": "map_elites", "init_size": 20, "offspring": 20},
            budget={"generations": 600}, log={"progress": False, "checkpoint_every": 5})


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "evofool", "run", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_lines(log, count, process, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline and process.poll() is None:
        if log.exists() and log.read_text().count("\n") >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"the run did not log {count} lines (exit {process.poll()})")


@pytest.mark.long
def test_two_runs_into_one_dir_one_proceeds_and_a_killed_holder_can_be_resumed(tmp_path):
    path = small_experiment(tmp_path, **LONG)
    run_dir = tmp_path / "run"
    first, second = start(path), start(path)  # started together
    try:
        deadline = time.time() + 60
        while first.poll() is None and second.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        loser, winner = (first, second) if first.poll() is not None else (second, first)
        _, stderr = loser.communicate(timeout=60)
        assert loser.returncode == 2 and winner.poll() is None, "exactly one run proceeds"
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
        assert ("in use by another evofool run" in stderr or "already holds a run" in stderr)

        wait_for_lines(run_dir / "log.jsonl", 12, winner)
        resume = start("--resume", run_dir)
        _, stderr = resume.communicate(timeout=60)
        assert resume.returncode == 2
        assert f"in use by another evofool run (PID {winner.pid})" in stderr
        assert stderr.count("\n") == 1
    finally:
        for process in (first, second):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()

    # the killed holder's lock is free: resume takes it over and finishes the run
    resumed = start("--resume", run_dir)
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(601))
