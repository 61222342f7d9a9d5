"""Run an experiment into a run directory, or resume one; the library behind ``evofool run``.

A run directory holds: ``config.yaml`` (the resolved config), ``log.jsonl`` (one line per
generation), ``checkpoint.npz`` (everything needed to resume exactly), ``run.json`` (timings),
and, when the run stops, ``archive/`` (archive.json, elites.npz, a PNG per class) and
``montage.png``.
"""
from __future__ import annotations

import gc
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from evofool import __version__
from evofool.archive_store import MONTAGE_PNG, save_archive
from evofool.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from evofool.config import ALGORITHMS, Experiment, apply_overrides, validate_experiment
from evofool.errors import EvofoolError
from evofool.evaluation import BatchEvaluator
from evofool.files import write_json, write_text
from evofool.fitness.registry import resolve_device
from evofool.genomes.registry import get_genome_type
from evofool.hooks import JsonLinesLog, ProgressBar, TensorBoardLog
from evofool.search import SearchAlgorithm

CONFIG_NAME = "config.yaml"
LOG_NAME = "log.jsonl"
RUN_INFO = "run.json"
RESUME_OVERRIDABLE = ("budget.", "log.")


@dataclass
class RunResult:
    run_dir: Path
    archive_json: dict
    generations: int
    evaluations: int
    wall_time: float


def build_search(experiment: Experiment) -> tuple[SearchAlgorithm, object]:
    """The algorithm (with its DEAP toolbox) and the target for an experiment."""
    torch.manual_seed(experiment.seed)
    device = resolve_device(experiment.device)
    target = experiment.model.build_target(device)
    genome_cls = get_genome_type(experiment.genome_type)
    genome_type = genome_cls(experiment.genome, target.channels, target.image_size)
    classes = getattr(experiment.algorithm, "target_classes", None) or []
    bad = [c for c in classes if c not in target.class_ids]
    if bad:
        scored = (f"0..{target.num_classes - 1}" if experiment.model.classes is None
                  else f"model.classes {target.class_ids}")
        raise EvofoolError(f"algorithm.target_classes: {bad} not among the scored classes of "
                           f"model '{target.name}' ({scored})")
    evaluate = BatchEvaluator(genome_type, target, experiment.batch_size)
    algorithm = ALGORITHMS[experiment.algorithm_type](
        experiment.algorithm, genome_type, evaluate, target.scored_names, experiment.budget,
        experiment.seed, class_ids=target.class_ids)
    return algorithm, target


def _prepare_new_run_dir(run_dir: Path) -> None:
    if (run_dir / CONFIG_NAME).exists() or (run_dir / CHECKPOINT_NAME).exists():
        raise EvofoolError(f"output_dir '{run_dir}' already holds a run; continue it with "
                           f"'evofool run --resume {run_dir}' or set output_dir=ANOTHER_DIR")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise EvofoolError(f"output_dir '{run_dir}' is not writable: {exc.strerror}") from None


def _finish(run_dir: Path, experiment: Experiment, algorithm: SearchAlgorithm, target,
            wall_time: float, finished: bool) -> dict:
    meta = {"genome": experiment.to_dict()["genome"], "model": experiment.to_dict()["model"],
            "generation": algorithm.generation, "evaluations": algorithm.evaluations}
    content = save_archive(run_dir / "archive", algorithm.archive, algorithm.genome_type, meta,
                           target)
    shutil.copyfile(run_dir / "archive" / MONTAGE_PNG, run_dir / MONTAGE_PNG)
    write_json(run_dir / RUN_INFO, {
        "finished": finished, "generations": algorithm.generation,
        "evaluations": algorithm.evaluations, "wall_time_s": round(wall_time, 3),
        "evaluations_per_s": round(algorithm.evaluations / max(wall_time, 1e-9), 1),
        "device": str(target.device), "evofool": __version__, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads()})
    return content


def _loop(run_dir: Path, experiment: Experiment, algorithm: SearchAlgorithm, target,
          wall_before: float, fresh: bool) -> RunResult:
    checkpoint_path = run_dir / CHECKPOINT_NAME
    log = JsonLinesLog(run_dir / LOG_NAME)
    bar = ProgressBar(algorithm.total_generations, algorithm.generation, experiment.log.progress)
    hooks = (log, bar) + ((TensorBoardLog(run_dir / "tensorboard"),)
                          if experiment.log.tensorboard else ())
    started = time.perf_counter()

    def elapsed() -> float:
        return wall_before + time.perf_counter() - started

    def checkpoint() -> None:
        info, arrays = algorithm.state()
        save_checkpoint(checkpoint_path, {**info, "wall_time": elapsed()}, arrays)

    finished = False
    # The objects alive now (torch, the model) never become garbage; frozen, the collector's
    # full passes skip them (a full pass over them took ~70 ms on 2 cores, several per run).
    gc.freeze()
    try:
        if fresh:
            report = algorithm.start()
            for hook in hooks:
                hook.on_generation(algorithm, report, elapsed())
            checkpoint()
        while not algorithm.finished():
            report = algorithm.step()
            for hook in hooks:
                hook.on_generation(algorithm, report, elapsed())
            if algorithm.generation % experiment.log.checkpoint_every == 0:
                checkpoint()
        finished = True
        checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        raise EvofoolError(f"interrupted at generation {algorithm.generation}; the checkpoint "
                           f"is saved: continue with 'evofool run --resume {run_dir}'") from None
    finally:
        gc.unfreeze()
        for hook in hooks:
            hook.close()
        content = _finish(run_dir, experiment, algorithm, target, elapsed(), finished)
    return RunResult(run_dir, content, algorithm.generation, algorithm.evaluations, elapsed())


def run_experiment(experiment: Experiment) -> RunResult:
    """Start a new run in ``experiment.output_dir`` (which must not hold a run yet)."""
    run_dir = Path(experiment.output_dir)
    _prepare_new_run_dir(run_dir)
    algorithm, target = build_search(experiment)
    write_text(run_dir / CONFIG_NAME, yaml.safe_dump(experiment.to_dict(), sort_keys=False))
    return _loop(run_dir, experiment, algorithm, target, 0.0, fresh=True)


def resume_run(run_dir: str | Path, overrides: list[str] = ()) -> RunResult:
    """Continue a stopped run from its last checkpoint; ``overrides`` may change only the
    budget (to extend a finished run) and log settings, so the result stays reproducible."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise EvofoolError(f"'{run_dir}' is not a run directory (no {CONFIG_NAME})")
    for text in overrides:
        if not text.startswith(RESUME_OVERRIDABLE):
            raise EvofoolError(f"override '{text}' is not allowed when resuming (only "
                               f"{', '.join(p + '*' for p in RESUME_OVERRIDABLE)})")
    from evofool.config import read_yaml
    data = apply_overrides(read_yaml(config_path), list(overrides), str(config_path))
    experiment = validate_experiment(data, str(config_path), run_dir.name)
    info, arrays = load_checkpoint(run_dir / CHECKPOINT_NAME)
    algorithm, target = build_search(experiment)
    try:
        algorithm.load_state(info, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise EvofoolError(f"checkpoint '{run_dir / CHECKPOINT_NAME}' does not match "
                           f"{config_path} ({type(exc).__name__}: {exc})") from None
    JsonLinesLog.truncate(run_dir / LOG_NAME, algorithm.generation)
    if overrides:
        write_text(config_path, yaml.safe_dump(experiment.to_dict(), sort_keys=False))
    return _loop(run_dir, experiment, algorithm, target, float(info.get("wall_time", 0.0)),
                 fresh=False)
