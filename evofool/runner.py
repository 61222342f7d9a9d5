"""Run an experiment into a run directory, or resume one; the library behind ``evofool run``.

A run directory holds: ``config.yaml`` (the resolved config), ``log.jsonl`` (one line per
generation), ``checkpoint.npz`` (everything needed to resume exactly), ``run.json`` (timings),
and, when the run stops, ``archive/`` (archive.json, elites.npz, a PNG per class) and
``montage.png``.

A generation is ask -> ``toolbox.map(evaluate, chunks)`` -> tell (:mod:`evofool.search.base`),
then the hooks (log line, progress bar) and, every ``log.checkpoint_every`` generations, a
checkpoint. Ctrl-C and SIGTERM drop the generation in flight, save the state of the last
whole one and exit 130/143; a crash while asking or scoring saves it too; kill -9 leaves the
last periodic checkpoint. ``--resume`` from any of them repeats the uninterrupted run.
"""
from __future__ import annotations

import gc
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import yaml

from evofool import __version__
from evofool.archive_store import MONTAGE_PNG, save_archive
from evofool.checkpoint import (CHECKPOINT_NAME, load_checkpoint, remove_stale_temporaries,
                                save_checkpoint)
from evofool.config import Experiment, apply_overrides, read_yaml, validate_experiment
from evofool.cpu_threads import default_threads, usable_cores
from evofool.errors import EvofoolError
from evofool.files import write_json, write_text
from evofool.fitness.registry import resolve_device
from evofool.fitness.target import Target
from evofool.genomes.base import GenomeType
from evofool.genomes.registry import get_genome_type
from evofool.hooks import JsonLinesLog, NonFiniteWarning, ProgressBar, TensorBoardLog
from evofool.run_data import CONFIG_NAME, LOG_NAME, RUN_INFO
from evofool.run_dirs import new_run_dir, point_latest, resolve_run_dir
from evofool.run_lock import RunDirLock
from evofool.schema import show
from evofool.search.base import SearchAlgorithm
from evofool.search.evaluation import ChunkEvaluator
from evofool.search.registry import get_algorithm
from evofool.stops import RunStopped, StopRequested, StopSignals

# What a resume may change: how far to go, what to log, where to compute; never what is searched.
RESUME_OVERRIDABLE = ("budget.", "log.", "runtime.", "evaluation.", "device=", "batch_size=")


@dataclass
class RunResult:
    run_dir: Path
    archive_json: dict
    generations: int
    evaluations: int
    wall_time: float


def build_scoring(experiment: Experiment) -> tuple[GenomeType, Target]:
    """The experiment's genome type and target, placed as its ``runtime`` section says: what
    scores a chunk of genomes (here, or in an evaluation worker)."""
    runtime = experiment.runtime
    torch.set_num_threads(runtime.threads or default_threads())
    torch.manual_seed(experiment.seed)
    target = experiment.model.build_target(resolve_device(runtime.device))
    warn_if_slow_bf16(experiment.model.precision, target)
    genome_cls = get_genome_type(experiment.genome_type)
    try:
        genome_type = genome_cls(experiment.genome, target.channels, target.image_size)
        genome_type.ready()
    except ValueError as exc:
        raise EvofoolError(f"genome: {exc}") from None
    try:
        genome_type.place(resolve_device(runtime.render_device, "runtime.render_device"),
                          runtime.render_batching)
    except ValueError as exc:
        raise EvofoolError(f"runtime: {exc}") from None
    return genome_type, target


def warn_if_slow_bf16(precision: str, target: Target) -> None:
    """bf16 on a CPU without native bf16 (oneDNN's check: AVX512-BF16 or AMX) is emulated:
    on an AVX2-only AMD EPYC, EfficientNet-Lite0 scored 2.8 images/s against 38 in fp32
    (docs/BENCHMARKS.md), so say so once, before the run."""
    if precision != "bf16" or getattr(target, "device", torch.device("cpu")).type != "cpu":
        return
    native = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)()
    if not native:
        print("evofool: warning: model.precision bf16 on this CPU (no native bf16: "
              f"{torch.backends.cpu.get_cpu_capability()}) is emulated and much slower than "
              "fp32; use model.precision=fp32", file=sys.stderr, flush=True)


def make_evaluator(experiment: Experiment, genome_type: GenomeType,
                   target: Target) -> ChunkEvaluator:
    """The toolbox's ``evaluate`` for a run: every model class's confidence when the
    algorithm keeps stepping stones (MapElites), else the scored classes'."""
    all_classes = bool(getattr(experiment.algorithm, "stepping_stones", False))
    return ChunkEvaluator(genome_type, target, all_classes=all_classes)


def build_search(experiment: Experiment) -> tuple[SearchAlgorithm, Target]:
    """The algorithm (with its DEAP toolbox: operators, ``evaluate`` and ``map``) and the
    target for an experiment."""
    genome_type, target = build_scoring(experiment)
    classes = getattr(experiment.algorithm, "target_classes", None) or []
    bad = [c for c in classes if c not in target.class_ids]
    if bad:
        scored = (f"0..{target.num_classes - 1}" if experiment.model.classes is None
                  else f"model.classes {show(target.class_ids)}")
        raise EvofoolError(f"algorithm.target_classes: {show(bad)} not among the scored "
                           f"classes of model '{target.name}' ({scored})")
    try:
        algorithm = get_algorithm(experiment.algorithm_type)(
            experiment.algorithm, genome_type, target.scored_names, experiment.budget,
            experiment.seed, class_ids=target.class_ids,
            evaluate=make_evaluator(experiment, genome_type, target),
            chunk_size=experiment.runtime.batch_size)
    except ValueError as exc:  # a combination the algorithm cannot work with
        raise EvofoolError(f"algorithm '{experiment.algorithm_type}': {exc}") from None
    if experiment.evaluation.backend != "local" and not algorithm.remote_scoring:
        raise EvofoolError(f"evaluation.backend: {experiment.evaluation.backend} cannot serve "
                           f"algorithm '{experiment.algorithm_type}', which scores in this "
                           "process (it takes gradients); use evaluation.backend: local")
    return algorithm, target


@contextmanager
def evaluation_backend(experiment: Experiment, algorithm: SearchAlgorithm) -> Iterator[None]:
    """Within the block, the algorithm's ``toolbox.map`` scores on the experiment's
    ``evaluation.backend`` (local: DEAP's, in this process; ray: Ray workers)."""
    evaluation = experiment.evaluation
    if evaluation.backend == "local":
        yield
        return
    from evofool.search.ray_map import RayMap
    ray_map = RayMap(experiment.to_dict(), evaluation.workers or usable_cores(),
                     evaluation.gpus_per_worker, evaluation.address, evaluation.timeout_s)
    algorithm.toolbox.register("map", ray_map)
    try:
        yield
    finally:
        ray_map.close()


def _make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise EvofoolError(f"output_dir '{run_dir}' is not writable: {exc.strerror}") from None


def _refuse_existing_run(run_dir: Path) -> None:
    if (run_dir / CONFIG_NAME).exists() or (run_dir / CHECKPOINT_NAME).exists():
        raise EvofoolError(f"output_dir '{run_dir}' already holds a run; continue it with "
                           f"'evofool run --resume {run_dir}' or set output_dir=ANOTHER_DIR")


def _finish(run_dir: Path, experiment: Experiment, algorithm: SearchAlgorithm, target,
            wall_time: float, finished: bool) -> dict:
    meta = {"genome": experiment.to_dict()["genome"], "model": experiment.to_dict()["model"],
            "generation": algorithm.generation, "evaluations": algorithm.evaluations,
            "class_notes": algorithm.class_notes()}
    # the PNGs are re-scored in fp32 whatever model.precision: both figures are recorded
    content = save_archive(run_dir / "archive", algorithm.archive, algorithm.genome_type, meta,
                           target.in_fp32())
    shutil.copyfile(run_dir / "archive" / MONTAGE_PNG, run_dir / MONTAGE_PNG)
    write_json(run_dir / RUN_INFO, {
        "finished": finished, "generations": algorithm.generation,
        "evaluations": algorithm.evaluations, "wall_time_s": round(wall_time, 3),
        "evaluations_per_s": round(algorithm.evaluations / max(wall_time, 1e-9), 1),
        "device": str(target.device), "evofool": __version__, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads()})
    return content


def _loop(run_dir: Path, experiment: Experiment, algorithm: SearchAlgorithm, target,
          wall_before: float, extra_hooks: tuple = ()) -> RunResult:
    checkpoint_path = run_dir / CHECKPOINT_NAME
    log = JsonLinesLog(run_dir / LOG_NAME)
    bar = ProgressBar(algorithm.total_steps, algorithm.steps, experiment.log.progress)
    hooks = (log, bar, NonFiniteWarning(", ".join(experiment.model.specs))) + (
        (TensorBoardLog(run_dir / "tensorboard"),) if experiment.log.tensorboard else ()) + (
        tuple(extra_hooks))
    started = time.perf_counter()

    def elapsed() -> float:
        return wall_before + time.perf_counter() - started

    def checkpoint() -> None:
        info, arrays = algorithm.state()
        save_checkpoint(checkpoint_path, {**info, "wall_time": elapsed()}, arrays)

    finished, whole, stop = False, True, None
    # The objects alive now (torch, the model) never become garbage; frozen, the collector's
    # full passes skip them (a full pass over them took ~70 ms on 2 cores, several per run).
    gc.freeze()
    with StopSignals() as stops:
        try:
            with stops.deferred():
                checkpoint()  # a run killed before its first periodic checkpoint resumes too
            while not algorithm.finished():
                candidates = algorithm.ask()
                scores = algorithm.score(candidates)
                with stops.deferred():  # a generation is committed whole, or not at all
                    whole = False
                    report = algorithm.tell(candidates, scores)
                    for hook in hooks:
                        hook.on_generation(algorithm, report, elapsed())
                    if algorithm.steps % experiment.log.checkpoint_every == 0:
                        checkpoint()
                    whole = True
            finished = True
            with stops.deferred():
                checkpoint()
        except StopRequested as request:
            stop = request
        except Exception:
            if whole:  # failed while asking or scoring: the last tell's state is complete
                checkpoint()
            raise
        finally:
            stops.deferring = True  # a second Ctrl-C waits: the files below are written whole
            if stop is not None:
                checkpoint()
            gc.unfreeze()
            for hook in hooks:
                hook.close()
            content = _finish(run_dir, experiment, algorithm, target, elapsed(), finished)
    if stop is not None:
        raise RunStopped(f"stopped by {stop} at generation {algorithm.generation} "
                         f"({algorithm.evaluations:,} evaluations); continue with "
                         f"'evofool run --resume {run_dir}'", stop.signum)
    return RunResult(run_dir, content, algorithm.generation, algorithm.evaluations, elapsed())


def run_experiment(experiment: Experiment, hooks: tuple = ()) -> RunResult:
    """Start a new run: in ``experiment.output_dir`` when it is set (it must not hold a run
    yet), else in a new ``runs/NAME/STAMP`` (:mod:`evofool.run_dirs`). ``hooks``: more
    subscribers to the generations, beside the log and the progress bar (objects with
    ``on_generation(algorithm, report, wall_time)`` and ``close()``, as in
    :mod:`evofool.hooks`; ``report.candidates`` is the batch told)."""
    if getattr(experiment, "retrain", None) is not None:
        raise EvofoolError(f"experiment '{experiment.name}' has a 'retrain:' section: run it "
                           "with 'evofool retrain EXPERIMENT --data-dir MNIST_DIR' (evofool "
                           "run evolves against one fixed model)")
    if not experiment.output_dir:
        algorithm, target = build_search(experiment)  # a model that fails leaves no folder
        run_dir = new_run_dir(experiment.name)
        with RunDirLock(run_dir):
            point_latest(run_dir)
            return _start(run_dir, experiment, algorithm, target, hooks)
    run_dir = Path(experiment.output_dir)
    _refuse_existing_run(run_dir)  # before the model loads: the common mistake fails fast
    _make_run_dir(run_dir)
    with RunDirLock(run_dir):
        _refuse_existing_run(run_dir)  # again, now that no one else can start one here
        return _start(run_dir, experiment, *build_search(experiment), hooks)


def _start(run_dir: Path, experiment: Experiment, algorithm: SearchAlgorithm,
           target, hooks: tuple = ()) -> RunResult:
    write_text(run_dir / CONFIG_NAME, yaml.safe_dump(experiment.to_dict(), sort_keys=False))
    with evaluation_backend(experiment, algorithm):
        return _loop(run_dir, experiment, algorithm, target, 0.0, hooks)


def _never_started(run_dir: Path) -> bool:
    """A run directory with a config but nothing else a run writes: the run was stopped
    before its first checkpoint, so it resumes from the beginning (its starting state is a
    function of the config)."""
    log = run_dir / LOG_NAME
    return not ((run_dir / CHECKPOINT_NAME).exists() or (run_dir / "archive").exists()
                or (log.exists() and log.stat().st_size > 0))


def resume_run(run_dir: str | Path, overrides: list[str] = ()) -> RunResult:
    """Continue a stopped run from its last checkpoint; ``overrides`` may change only the
    budget (to extend a finished run), log and runtime settings, so the result stays
    reproducible."""
    run_dir = resolve_run_dir(run_dir)
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise EvofoolError(f"'{run_dir}' is not a run directory (no {CONFIG_NAME})")
    for text in overrides:
        if not text.startswith(RESUME_OVERRIDABLE):
            raise EvofoolError(f"override '{text}' is not allowed when resuming (only "
                               f"{', '.join(p + '*' for p in RESUME_OVERRIDABLE)})")
    with RunDirLock(run_dir):
        return _resume_locked(run_dir, config_path, list(overrides))


def _resume_locked(run_dir: Path, config_path: Path, overrides: list[str]) -> RunResult:
    data = apply_overrides(read_yaml(config_path), list(overrides), str(config_path))
    experiment = validate_experiment(data, str(config_path), run_dir.name, artifact=True)
    if _never_started(run_dir):  # stopped between config.yaml and the first checkpoint
        info, arrays = {}, None
    else:
        info, arrays = load_checkpoint(run_dir / CHECKPOINT_NAME)
    algorithm, target = build_search(experiment)
    try:
        if arrays is not None:
            algorithm.load_state(info, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise EvofoolError(f"checkpoint '{run_dir / CHECKPOINT_NAME}' does not match "
                           f"{config_path} ({type(exc).__name__}: {exc})") from None
    remove_stale_temporaries(run_dir)
    JsonLinesLog.truncate(run_dir / LOG_NAME, algorithm.steps)
    if overrides:
        write_text(config_path, yaml.safe_dump(experiment.to_dict(), sort_keys=False))
    with evaluation_backend(experiment, algorithm):
        return _loop(run_dir, experiment, algorithm, target, float(info.get("wall_time", 0.0)))
