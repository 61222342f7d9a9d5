"""``evofool sweep``: one experiment run for every combination of override values.

``evofool sweep EXP seed=0,1,2 model.spec=a,b`` makes 6 runs, each an ordinary run directory
(resumable, readable by every command) inside one sweep folder,
``runs/NAME/sweep_YYYY-MM-DD_HH-MM-SS/`` (with ``sweep.json``, the plan). At most
``parallel`` runs go at once, as processes here (``backend="local"``) or as Ray tasks
(``backend="ray"``: on a cluster the sweep folder must be on a file system every node sees).
One progress bar follows them all; at the end a summary table (``sweep_summary.csv`` and
``.json``) compares them. ``evofool sweep --resume DIR`` continues the runs that did not
finish and starts those that never began.
"""
from __future__ import annotations

import csv
import io
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from evofool.config import apply_overrides, load_experiment, read_yaml, validate_experiment
from evofool.cpu_threads import usable_cores
from evofool.errors import EvofoolError
from evofool.files import write_json, write_text
from evofool.plugins import trusted_artifacts
from evofool.readers import read_json, shown
from evofool.run_data import CONFIG_NAME, LOG_NAME, RUN_INFO
from evofool.run_dirs import RUNS_ROOT, new_run_dir

PLAN = "sweep.json"
SUMMARY = "sweep_summary"
MAX_RUNS = 10_000
_POLL_S = 0.5


@dataclass
class PlannedRun:
    name: str             # its folder inside the sweep folder
    overrides: list[str]  # this run's key=value


def split_values(text: str) -> list[str]:
    """``seed=0,1,2`` -> ``["seed=0", "seed=1", "seed=2"]``; commas inside [], {} or quotes
    belong to one value (``model.classes=[1,2],[3,4]`` is two values)."""
    key, sep, values = text.partition("=")
    if not sep or not key:
        raise EvofoolError(f"sweep override '{text}' is not key=value[,value...]")
    parts, depth, quote, current = [], 0, "", ""
    for char in values:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [f"{key}={value}" for value in parts + [current]]


def _folder_name(index: int, overrides: list[str]) -> str:
    text = "_".join(overrides) or "run"
    return f"{index:03d}_" + re.sub(r"[^A-Za-z0-9=.,_-]+", "-", text)[:100]


def plan_runs(experiment: str, overrides: list[str]) -> list[PlannedRun]:
    """Every combination, each checked as a whole experiment before any run starts."""
    axes = [split_values(text) for text in overrides]
    combinations = list(itertools.islice(itertools.product(*axes), MAX_RUNS + 1))
    if len(combinations) > MAX_RUNS:
        raise EvofoolError(f"sweep: more than {MAX_RUNS:,} combinations")
    for combination in combinations:
        load_experiment(experiment, list(combination))  # one-line error if any is invalid
    return [PlannedRun(_folder_name(i, list(c)), list(c)) for i, c in enumerate(combinations)]


def _command(experiment: str, run: PlannedRun, run_dir: Path, trust: bool) -> list[str]:
    """The ``evofool run`` for one run: resumed when it has started before (with --trust
    when the sweep is: the run then may load the code its config names)."""
    base = [sys.executable, "-m", "evofool", "run"]
    if (run_dir / CONFIG_NAME).is_file():
        return base + ["--resume", str(run_dir), "log.progress=false"] + ["--trust"] * trust
    return base + [experiment, *run.overrides, f"output_dir={run_dir}", "log.progress=false"]


def _finished(run_dir: Path) -> bool:
    try:
        return read_json(run_dir / RUN_INFO).get("finished") is True
    except (EvofoolError, OSError):
        return False


class RunProgress:
    """The fraction of one run done, from its log: each poll reads only the bytes the log
    gained since the last (a long run's log grows to many MB)."""

    def __init__(self, run_dir: Path, generations: int | None) -> None:
        self.run_dir, self.generations = run_dir, generations
        self.read, self.lines, self.done = 0, 0, _finished(run_dir)

    def fraction(self, ended: bool) -> float:
        """``ended``: its process has exited (then run.json says whether it finished)."""
        if self.done or (ended and _finished(self.run_dir)):
            self.done = True
            return 1.0
        try:
            with open(self.run_dir / LOG_NAME, "rb") as log:
                log.seek(self.read)
                new = log.read()
        except OSError:
            return 0.0
        self.read += len(new)
        self.lines += new.count(b"\n")
        return min(0.99, self.lines / (self.generations + 1)) if self.generations else 0.0


class LocalLauncher:
    """Runs as child processes, each computing with its share of the cores."""

    def __init__(self, parallel: int) -> None:
        threads = max(1, usable_cores() // parallel)
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, key: str, command: list[str]) -> None:
        self.processes[key] = subprocess.Popen(command, env=self.env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def done(self) -> dict[str, int]:
        """Runs that ended since the last call, with their exit codes."""
        ended = {k: p.returncode for k, p in self.processes.items() if p.poll() is not None}
        for key in ended:
            self.processes.pop(key).stderr.close()
        return ended

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)  # each saves its state and exits 143
        for process in self.processes.values():
            process.wait(timeout=120)


class RayLauncher:
    """Runs as Ray tasks (one CPU each), each an ``evofool run`` process on its node."""

    def __init__(self, parallel: int, address: str | None) -> None:
        from evofool.search.ray_map import connect
        self.started = connect(address, parallel)
        import ray
        self.ray = ray
        self.task = ray.remote(num_cpus=1, max_retries=0)(_run_command)
        self.refs: dict[str, object] = {}

    def start(self, key: str, command: list[str]) -> None:
        self.refs[key] = self.task.remote(command)

    def done(self) -> dict[str, int]:
        if not self.refs:
            return {}
        ready, _ = self.ray.wait(list(self.refs.values()), num_returns=len(self.refs),
                                 timeout=0)
        ended = {k: r for k, r in self.refs.items() if r in ready}
        for key in ended:
            self.refs.pop(key)
        return {k: self.ray.get(r) for k, r in ended.items()}

    def stop(self) -> None:
        for ref in self.refs.values():
            self.ray.cancel(ref)
        if self.started:
            self.ray.shutdown()


def _run_command(command: list[str]) -> int:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *command[1:]], env=environment,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def summary_rows(folder: Path, runs: list[PlannedRun], codes: dict[str, int]) -> list[dict]:
    rows = []
    for run in runs:
        run_dir = folder / run.name
        row = {"run": run.name, "overrides": " ".join(run.overrides)}
        try:
            info = read_json(run_dir / RUN_INFO)
            summary = read_json(run_dir / "archive" / "archive.json")["summary"]
        except (EvofoolError, OSError, KeyError, TypeError):
            code = codes.get(run.name)
            rows.append({**row, "status": f"failed (exit {code})" if code else "not run"})
            continue
        rows.append({**row, "status": "finished" if info.get("finished") else "unfinished",
                     "filled": f"{summary['filled']}/{summary['classes']}",
                     "median": summary["median"], "above_0.99": summary["above_0.99"],
                     "above_0.9999": summary["above_0.9999"],
                     "evaluations": info.get("evaluations"), "wall_s": info.get("wall_time_s")})
    return rows


def format_table(rows: list[dict]) -> str:
    columns = ["run", "status", "filled", "median", "above_0.99", "above_0.9999",
               "evaluations", "wall_s"]

    def cell(column: str, value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1f}" if column == "wall_s" else f"{value:.6f}"
        return str(value)

    table = [columns] + [[cell(c, row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(line, widths))
                     for line in table)


def _write_summary(folder: Path, rows: list[dict]) -> None:
    write_json(folder / f"{SUMMARY}.json", rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=sorted({k for row in rows for k in row}))
    writer.writeheader()
    writer.writerows(rows)
    write_text(folder / f"{SUMMARY}.csv", buffer.getvalue())


def start_sweep(experiment: str, overrides: list[str], root: Path = RUNS_ROOT) -> Path:
    """Check every combination, then make the sweep folder and its plan."""
    from evofool.catalog import find_experiment
    path = find_experiment(experiment).resolve()
    runs = plan_runs(str(path), overrides)
    name = load_experiment(str(path)).name
    folder = new_run_dir(name, root, prefix="sweep_")
    write_json(folder / PLAN, {"experiment": str(path),
                               "runs": [{"name": r.name, "overrides": r.overrides} for r in runs]})
    return folder


def read_plan(folder: Path, as_artifact: bool = False) -> tuple[str, list[PlannedRun]]:
    """The sweep's experiment file and runs. ``as_artifact``: the folder may be someone
    else's, so every run it plans is checked as a run's config.yaml is on --resume (code it
    names needs --trust) and its folder must lie inside the sweep folder."""
    source = f"'{folder / PLAN}'"
    content = read_json(folder / PLAN)
    try:
        experiment = content["experiment"]
        runs = [PlannedRun(str(r["name"]), [str(o) for o in r["overrides"]])
                for r in content["runs"]]
    except (KeyError, TypeError) as exc:
        raise EvofoolError(f"{source} is not a sweep plan ({exc})") from None
    if not isinstance(experiment, str):
        raise EvofoolError(f"{source}: experiment is {type(experiment).__name__}, expected "
                           "a file path")
    for run in runs:
        if Path(run.name).name != run.name or run.name in ("", ".", ".."):
            raise EvofoolError(f"{source}: run name {shown(run.name)} is not a folder name "
                               "inside the sweep folder")
        if as_artifact:
            data = apply_overrides(read_yaml(Path(experiment)), list(run.overrides), source)
            validate_experiment(data, source, run.name, artifact=True)
    return experiment, runs


def run_sweep(folder: Path, backend: str = "local", parallel: int | None = None,
              address: str | None = None, progress: bool = True,
              resuming: bool = False) -> list[dict]:
    """Run the sweep in ``folder`` (``resuming``: continue one, maybe someone else's: its
    plan is then checked as an artifact, see :func:`read_plan`); returns the summary rows."""
    from tqdm import tqdm
    folder = folder.resolve()  # the runs' processes (Ray's too) may start elsewhere
    experiment, runs = read_plan(folder, as_artifact=resuming)
    trust = not resuming or trusted_artifacts()
    parallel = max(1, parallel or usable_cores())
    launcher = LocalLauncher(parallel) if backend == "local" else RayLauncher(parallel, address)
    progress_of = {r.name: RunProgress(folder / r.name,
                                       load_experiment(experiment, r.overrides).budget.generations)
                   for r in runs}
    waiting = [r for r in runs if not _finished(folder / r.name)]
    running: set[str] = set()
    codes: dict[str, int] = {}
    bar = tqdm(total=len(runs), disable=not progress, unit="run", desc="sweep",
               bar_format="{l_bar}{bar}| {n:.1f}/{total} runs [{elapsed}<{remaining}]{postfix}")
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                run = waiting.pop(0)
                launcher.start(run.name, _command(experiment, run, folder / run.name, trust))
                running.add(run.name)
            for name, code in launcher.done().items():
                running.discard(name)
                codes[name] = code
            bar.n = sum(tracker.fraction(name in codes) for name, tracker in progress_of.items())
            bar.set_postfix_str(f"running {len(running)}, failed "
                                f"{sum(1 for c in codes.values() if c != 0)}")
            time.sleep(_POLL_S)
    except BaseException:
        launcher.stop()
        raise
    finally:
        bar.close()
    if backend != "local":
        launcher.stop()
    rows = summary_rows(folder, runs, codes)
    _write_summary(folder, rows)
    return rows
