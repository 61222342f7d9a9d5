"""The Python API, for notebooks and scripts: everything the ``evofool`` command does.

::

    import evofool
    run = evofool.run("mnist_direct_mapelites", seed=3, budget={"generations": 50})
    run.archive          # per-class table (a pandas DataFrame)
    run.log[-1]          # the last generation's log record
    run.montage()        # PIL image of every elite
    elite = run.elite(7) # image (uint8 H x W x C) and genome of class 7's elite

Overrides are keyword arguments: ``seed=3`` is the command line's ``seed=3``, a dict is a
section (``budget={"generations": 50}`` is ``budget.generations=50``: only the keys given
change) and dotted keys go through ``**``: ``**{"model.classes": [1, 2]}``.

This module only calls the library functions behind the commands (:mod:`evofool.runner`,
:mod:`evofool.run_data`, :mod:`evofool.archive_store`, :mod:`evofool.render`,
:mod:`evofool.report`, :mod:`evofool.transfer`, :mod:`evofool.compare`), so a run made or
read here is the same as one made or read by the command line. docs/API.md walks through it.
"""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from evofool.archive_store import export_archive, montage_labels, render_elites
from evofool.config import Experiment, apply_overrides, load_experiment, validate_experiment
from evofool.errors import EvofoolError
from evofool.genomes.base import GenomeType
from evofool.montage import make_montage, to_uint8
from evofool.plugins import trusting_artifacts
from evofool.readers import shown, type_name
from evofool.render import check_render_size, elite_cell
from evofool.run_data import RunData, read_run
from evofool.runner import resume_run, run_experiment

__all__ = ["run", "load_run", "resume", "sweep", "resume_sweep", "transfer", "export_dataset",
           "ood", "train_lenet", "retrain", "models", "Run", "Elite"]

# archive.json's integer columns that are null for an empty class: pandas' nullable Int64
# keeps them integers (a plain column would turn into floats).
_NULLABLE_INT_COLUMNS = ("generation", "evaluations", "top1")


# --- overrides: keyword arguments -> the command line's key.sub=value strings ------------

def _yaml_value(value: Any, key: str) -> str:
    """``value`` as the YAML text that :func:`evofool.config.parse_override` reads back as
    ``value`` (strings that look like numbers stay strings, and so on)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    elif isinstance(value, np.generic):  # np.int64(3) from a numpy computation
        value = value.item()
    elif isinstance(value, tuple):
        value = list(value)
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"),
                              allow_unicode=True)
    except yaml.YAMLError:
        raise EvofoolError(f"override {key}: {type_name(value)} is not a config value "
                           "(expected numbers, strings, booleans, None, lists or dicts)") from None
    return text.removesuffix("\n...\n").removesuffix("\n")


def override_strings(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"seed": 3, "budget": {"generations": 50}}`` -> ``["seed=3",
    "budget.generations=50"]``: nested dicts set only the keys they name."""
    strings = []
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if "=" in dotted:
            raise EvofoolError(f"override key {shown(dotted)} holds '=', expected a key such "
                               "as budget.generations")
        if isinstance(value, Mapping) and value:
            strings += override_strings(value, dotted + ".")
        else:
            strings.append(f"{dotted}={_yaml_value(value, dotted)}")
    return strings


def _experiment(experiment, overrides: Mapping[str, Any]) -> Experiment:
    """An experiment given as a YAML path, a packaged name, a dict or an Experiment, with
    ``overrides`` applied and validated (one-line EvofoolError if anything is wrong)."""
    strings = override_strings(overrides)
    if isinstance(experiment, (str, os.PathLike)):
        return load_experiment(experiment, strings)
    if isinstance(experiment, Experiment):
        if not strings:
            return experiment
        data, name = experiment.to_dict(), experiment.name
        source = f"experiment '{name}'"
    elif isinstance(experiment, Mapping):
        data, name, source = copy.deepcopy(dict(experiment)), "experiment", "experiment dict"
    else:
        raise EvofoolError(f"experiment is {type_name(experiment)}, expected a YAML path, a "
                           "packaged experiment name, a dict or an evofool.config.Experiment")
    return validate_experiment(apply_overrides(data, strings, source), source, name)


# --- running -------------------------------------------------------------------------------

def run(experiment, /, **overrides) -> "Run":
    """Run an experiment and return the finished run (:class:`Run`).

    ``experiment``: a YAML path, a packaged experiment name (``"mnist_direct_mapelites"``),
    a dict of experiment keys, or an :class:`evofool.config.Experiment`. ``overrides`` as
    on the command line (module docstring). Ctrl-C stops the run with
    :class:`evofool.stops.RunStopped` (an EvofoolError naming the run directory); continue
    it with :func:`resume`.
    """
    result = run_experiment(_experiment(experiment, overrides))
    # The run's config names only what the caller wrote: reading it back needs no --trust.
    return load_run(result.run_dir, trust=True)


def resume(run_dir: str | Path, /, *, trust: bool = False, **overrides) -> "Run":
    """Continue a stopped run (or extend a finished one: ``budget={"generations": 2000}``);
    as ``evofool run --resume``, overrides may change only budget, log and runtime keys.
    ``trust``: as :func:`load_run`."""
    with trusting_artifacts(trust):
        result = resume_run(run_dir, override_strings(overrides))
    return load_run(result.run_dir, trust=trust)


def load_run(run_dir: str | Path, trust: bool = False) -> "Run":
    """Open a run directory (or ``runs/NAME`` for its latest run): a finished run, or a
    stopped one (it has an archive from the moment it stopped).

    Run directories may come from strangers, and are read as untrusted input (see the
    README, "Sharing runs safely"). ``trust=True`` is the command line's ``--trust``: it
    allows loading code the run names (a ``module:Class`` genome type, a ``python:`` model).
    """
    with trusting_artifacts(trust):
        return Run(read_run(run_dir), trust)


def sweep_axes(values: Mapping[str, Any]) -> list[str]:
    """``{"seed": [0, 1], "name": "a,b"}`` -> ``['seed=0,1', 'name="a,b"']``: the command
    line's ``key=v1,v2`` (a string holding a comma is quoted, so it stays one value)."""
    def one_value(value, key: str) -> str:
        text = _yaml_value(value, key)
        return json.dumps(value) if isinstance(value, str) and "," in text else text

    return [f"{key}=" + ",".join(one_value(v, key) for v in
                                 (value if isinstance(value, (list, tuple)) else [value]))
            for key, value in values.items()]


def sweep(experiment: str | Path, /, backend: str = "local", parallel: int | None = None,
          address: str | None = None, progress: bool = True,
          **values) -> tuple[Path, list[dict]]:
    """``evofool sweep``: one run for every combination of ``values`` (a list is the values
    one key takes: ``sweep("mnist_cppn_mapelites", seed=[0, 1, 2])``; dotted keys through
    ``**{"model.spec": [...]}``); at most ``parallel`` at once, as local processes or Ray
    tasks (``backend="ray"``). Returns the sweep folder and its summary rows."""
    from evofool.sweep import run_sweep, start_sweep
    if backend not in ("local", "ray"):
        raise EvofoolError(f"backend {shown(backend)} is invalid: expected 'local' or 'ray'")
    folder = start_sweep(str(experiment), sweep_axes(values))
    return folder, run_sweep(folder, backend, parallel, address, progress)


def resume_sweep(folder: str | Path, backend: str = "local", parallel: int | None = None,
                 address: str | None = None, progress: bool = True,
                 trust: bool = False) -> list[dict]:
    """``evofool sweep --resume``: finish the runs of a sweep that did not finish. The
    folder may be someone else's: code its plan names needs ``trust`` (see load_run)."""
    from evofool.sweep import run_sweep
    with trusting_artifacts(trust):
        return run_sweep(Path(folder), backend, parallel, address, progress, resuming=True)


def _spec(model):
    from evofool.transfer import ModelSpec
    if isinstance(model, ModelSpec):
        return model
    if not isinstance(model, str):
        raise EvofoolError(f"model is {type_name(model)}, expected 'SPEC' or "
                           "'SPEC@WEIGHTS_FILE' (e.g. 'lenet-mnist')")
    return ModelSpec.parse(model)


def transfer(runs: list, models: list, threshold: float = 0.99, device: str = "auto",
             out: str | Path | None = None, trust: bool = False) -> dict:
    """``evofool transfer``: for every (run, model), the mean confidence of the run's elites
    in their own class on that model, and the fraction at or above ``threshold``. ``runs``:
    :class:`Run` objects or run directories; ``models``: ``"SPEC"`` or
    ``"SPEC@WEIGHTS_FILE"`` strings. With ``out``, also writes transfer.csv/.json/.png there.
    Returns the matrix: ``{"runs", "models", "threshold", "mean_confidence",
    "fraction_fooled", "fraction_half", "top1_agreement"}`` (rows: runs, columns: models;
    ``fraction_half``: at or above 50%; ``top1_agreement``: the model's top-1 is the elite's
    own class)."""
    from evofool.transfer import transfer_matrix, write_transfer
    if not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
            and 0 < threshold <= 1):
        raise EvofoolError(f"threshold {shown(threshold)} is invalid: expected a confidence "
                           "in (0, 1], e.g. 0.99")
    # Runs the caller opened with trust=True were trusted already.
    trust = trust or (bool(runs) and all(isinstance(r, Run) and r.trust for r in runs))
    paths = [r.path if isinstance(r, Run) else r for r in runs]
    with trusting_artifacts(trust):
        matrix = transfer_matrix(paths, [_spec(m) for m in models], threshold, device)
    if out is not None:
        write_transfer(matrix, out)
    return matrix


def _paths_and_trust(runs, trust: bool) -> tuple[list, bool]:
    """Run directories from :class:`Run` objects or paths (one alone is a list of one), and
    whether to trust them: ``trust``, or every Run was opened with trust=True."""
    if isinstance(runs, (str, os.PathLike, Run)):
        runs = [runs]
    runs = list(runs)
    trust = trust or (bool(runs) and all(isinstance(r, Run) and r.trust for r in runs))
    return [r.path if isinstance(r, Run) else r for r in runs], trust


def export_dataset(runs, out: str | Path, threshold: float | None = None, force: bool = False,
                   trust: bool = False) -> list[dict]:
    """``evofool export-dataset``: the elites of ``runs`` (:class:`Run` objects or run
    directories) as an ImageFolder dataset in ``out`` (``OUT/CLASSID_NAME/RUN.png``, the
    archive PNGs' bytes) with manifest.csv and manifest.json; ``threshold``: only elites at or
    above it (default: every filled class); ``force``: replace an earlier export in ``out``.
    Returns the manifest rows (file, class_id, class_name, confidence, model, genome,
    algorithm, seed, experiment, run, generation, evaluations)."""
    from evofool.dataset_export import export_dataset as export
    paths, trust = _paths_and_trust(runs, trust)
    with trusting_artifacts(trust):
        return export(paths, out, threshold, force)


def ood(sources, model=None, in_dist: str = "mnist-test", data_dir: str | Path | None = None,
        device: str = "auto", out: str | Path | None = None, fit_images: int = 10_000,
        seed: int = 0, trust: bool = False) -> list[dict]:
    """``evofool ood``: OOD detectors of pytorch-ood (``pip install 'evofool[ood]'``)
    scored on the fooling images of ``sources`` (:class:`Run` objects, run directories or
    export-dataset folders) against ``in_dist``: ``"mnist-test"`` (the IDX files in
    ``data_dir``, else ``$EVOFOOL_MNIST_DIR``) or an ImageFolder path. ``model``: ``"SPEC"``
    or ``"SPEC@WEIGHTS_FILE"`` (default: the sources' own model). With ``out``, writes
    ood.json and ood.csv there. Returns one row per detector (MaxSoftmax, Energy, ODIN,
    Mahalanobis): auroc, fpr_at_95_tpr, aupr_in, aupr_out, ood_images, in_dist_images,
    model, in_dist, settings (evofool/ood.py says how each is scored)."""
    from evofool.ood import score_ood, write_ood
    paths, trust = _paths_and_trust(sources, trust)
    with trusting_artifacts(trust):
        result = score_ood(paths, None if model is None else _spec(model), in_dist, data_dir,
                           device, fit_images, seed=seed)
    if out is not None:
        write_ood(result, out)
    return result["rows"]


def train_lenet(data_dir: str | Path | None, out: str | Path, seed: int = 0,
                epochs: int = 12, *, download: bool = False,
                download_root: str | Path | None = None, progress: bool = True,
                command: str | None = None) -> dict:
    """``evofool train lenet``: train the paper's LeNet on MNIST, from the IDX .gz files in
    ``data_dir`` or, with ``download=True`` (and ``data_dir=None``), from torchvision's
    download; save it to ``out`` (.safetensors, metrics in ``out.json``) and return the
    metrics (``command``: how it was made, recorded in ``out.json``). Score with it as
    ``"lenet-mnist@OUT"``."""
    from evofool.fitness.lenet_training import train_lenet as train
    if (data_dir is None) == (not download):
        raise EvofoolError("train lenet: give one of --data-dir / data_dir (a folder of MNIST "
                           "IDX .gz files) or --download / download=True (torchvision fetches "
                           "MNIST; needs internet)")
    try:
        return train(data_dir, out, seed=seed, epochs=epochs, progress=progress,
                     download_root=download_root, command=command)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise EvofoolError(f"train lenet: {exc}") from None


def retrain(experiment, /, data_dir: str | Path, out: str | Path | None = None,
            echo: bool = True, **overrides) -> dict:
    """``evofool retrain``: retraining with a fooling class (paper sec. 5). Iteration k trains
    LeNet DNN_k on the MNIST IDX files in ``data_dir`` plus the fooling images of the earlier
    iterations as an 11th class, measures it, then evolves against it (the experiment, scored
    on the 10 digits) and keeps new fooling images; the experiment's ``retrain:`` section
    (``retrain={"iterations": 2}`` as an override) sets how. Into ``out`` (default: a new
    ``runs/NAME/STAMP``); an ``out`` that holds an interrupted retrain is continued.
    ``echo``: print the table as iterations finish. Returns retrain.json's content (``rows``:
    one dict per iteration) plus ``out``."""
    from evofool.retrain import run_retrain
    return run_retrain(_experiment(experiment, overrides), data_dir, out,
                       print if echo else None)


def models() -> dict[str, list[str]]:
    """``evofool models``: the model specs, genome types and algorithms available."""
    from evofool.fitness.registry import available_targets
    from evofool.genomes.registry import available_genome_types
    from evofool.search.registry import available_algorithms
    return {"models": available_targets(), "genomes": available_genome_types(),
            "algorithms": available_algorithms()}


# --- a run, read back ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)  # eq: arrays do not compare to one bool
class Elite:
    """One class's elite: what archive.json says of it, its image and its genome."""

    class_id: int                # the model output it fools (= its cell unless model.classes)
    name: str
    confidence: float            # what evolution scored (the float image)
    png_confidence: float | None # what the saved 8-bit PNG scores (None in older archives)
    generation: int              # when it was found
    evaluations: int
    image: np.ndarray = field(repr=False)        # (H, W, C) uint8: the pixels of its PNG
    population: np.ndarray = field(repr=False)   # the genome as a population of one
    genome_type: GenomeType = field(repr=False)

    @property
    def genome(self):
        """The genome itself: a (C, H, W) float32 array of pixels for ``direct``, a networkx
        DiGraph for ``cppn``."""
        return self.population[0]

    def render(self, size: int | None = None) -> Image.Image:
        """The elite drawn at ``size`` x ``size`` pixels (default: the size evolution scored),
        as a PIL image (mode L or RGB, as its PNG). A CPPN is a picture at any size; a pixel
        genome is scaled up (nearest neighbour)."""
        if size is not None:
            check_render_size(size)
        drawn = self.genome_type.render(self.population,
                                        size=None if size is None else (size, size))
        image = to_uint8(drawn)[0]
        return Image.fromarray(image if image.shape[-1] == 3 else image[..., 0])


class Run:
    """A run directory, read and checked once (:func:`load_run`).

    Attributes: ``path`` (the run directory), ``name``, ``config`` (the resolved experiment,
    a dict), ``info`` (run.json: timings, device, versions; {} if absent), ``log`` (one dict
    per generation of log.jsonl, generation 0 being the random start; ``best`` and
    ``batch_median`` are float arrays, one value per class, NaN for an empty class),
    ``classes`` (archive.json's per-class rows, dicts), ``summary`` (filled, median, ...)
    and ``genome_type``. The object is a snapshot: after :meth:`resume`, use the Run it
    returns.
    """

    def __init__(self, data: RunData, trust: bool = False) -> None:
        self._data = data
        self.trust = trust
        self.path: Path = data.run_dir
        self.config: dict = data.config
        self.info: dict = data.info
        self.log: list[dict] = data.log
        self.classes: list[dict] = data.archive_json["classes"]
        self.summary: dict = data.archive_json["summary"]
        self.genome_type: GenomeType = data.genome_type
        self.name: str = str(data.config.get("name") or data.run_dir.name)

    @property
    def finished(self) -> bool | None:
        """True if the run used its whole budget, False if it was stopped, None if unknown."""
        return self.info.get("finished")

    @property
    def generations(self) -> int:
        """The generation the run reached (the GA counts generations per target class)."""
        return self.log[-1]["generation"]

    @property
    def evaluations(self) -> int:
        return self.log[-1]["evaluations"]

    def __repr__(self) -> str:
        state = {True: "finished", False: "stopped (resume() continues it)",
                 None: "state unknown"}[self.finished]
        return (f"<evofool Run '{self.name}' at {self.path}: {self.summary['filled']}/"
                f"{self.summary['classes']} classes filled, median confidence "
                f"{self.summary['median']:.6f}, {self.summary['above_0.9999']} at >= 99.99%; "
                f"generation {self.generations}, {self.evaluations:,} evaluations, {state}>")

    # -- the archive ------------------------------------------------------------------------

    @property
    def archive(self):
        """The per-class table as a pandas DataFrame indexed by ``class_id`` (the model
        output), with archive.json's columns: ``class`` (the cell), ``name``,
        ``confidence``, ``png_confidence``, ``generation``, ``evaluations``, ``top1``,
        ``png`` (file name in the archive folder), ``evaluations_to_0.5`` ... ``_0.9999``
        (evaluations until the elite first reached that confidence), for perturbation runs
        ``measures_l2``, ``measures_linf``, ``measures_changed_pixels`` (the elite's
        distortion from the start image); empty classes and
        milestones not reached hold NaN/<NA>. Without
        pandas, :attr:`classes` holds the same rows as dicts."""
        try:
            import pandas
        except ImportError:
            raise EvofoolError("Run.archive needs pandas: pip install pandas (Run.classes "
                               "holds the same rows as dicts)") from None
        # per-class dicts (evaluations_to, gradient ascent's first_step) become one column
        # each: evaluations_to_0.99, first_step_argmax, ...
        rows, counts = [], set()
        for row in self.classes:
            flat = {}
            for key, value in row.items():
                if isinstance(value, dict):
                    flat.update({f"{key}_{sub}": n for sub, n in value.items()})
                    if key != "measures":  # distortions are floats; the others counts
                        counts.update(f"{key}_{sub}" for sub in value)
                else:
                    flat[key] = value
            rows.append(flat)
        frame = pandas.DataFrame(rows)
        for column in (*_NULLABLE_INT_COLUMNS, *sorted(counts)):
            if column in frame:
                frame[column] = frame[column].astype("Int64")
        for column in ("confidence", "png_confidence"):
            if column in frame:
                frame[column] = frame[column].astype("float64")
        return frame.set_index("class_id")

    def elite(self, cls: int) -> Elite:
        """Class id ``cls``'s elite: its archive row, its image (uint8, exactly its saved
        PNG) and its genome."""
        cell = elite_cell(self._data.archive, cls)
        row = self.classes[cell]
        population = self._data.archive.genomes[cell:cell + 1]
        image = to_uint8(self.genome_type.render(population))[0]
        return Elite(class_id=row["class_id"], name=row["name"], confidence=row["confidence"],
                     png_confidence=row.get("png_confidence"), generation=row["generation"],
                     evaluations=row["evaluations"], image=image, population=population,
                     genome_type=self.genome_type)

    def render(self, cls: int, size: int | None = None) -> Image.Image:
        """``evofool render RUN --class CLS --size SIZE`` as a PIL image (see Elite.render)."""
        return self.elite(cls).render(size)

    def montage(self, tile: int = 112, columns: int | None = None) -> Image.Image:
        """Every elite, labelled with its class and confidence, as a PIL image: with the
        defaults, the run's montage.png (re-drawn from the genomes)."""
        archive = self._data.archive
        images = render_elites(archive, self.genome_type)
        return make_montage(images, montage_labels(archive), tile=tile, columns=columns)

    # -- the commands that read a run -----------------------------------------------------

    def report(self, out: str | Path | None = None) -> Path:
        """``evofool report``: the HTML report folder (default RUN_DIR/report); returns the
        path of its index.html."""
        from evofool.report import write_report
        with trusting_artifacts(self.trust):
            return write_report(self.path, out)

    def export(self, out: str | Path, genomes: bool = False) -> list[Path]:
        """``evofool archive export``: one PNG per class and the montage into ``out``; with
        ``genomes``, each elite's genome JSON beside its PNG. Returns the files, montage last."""
        with trusting_artifacts(self.trust):
            return export_archive(self.path, out, genomes=genomes)

    def rescore(self, model, device: str = "auto", out: str | Path | None = None) -> list[dict]:
        """``evofool rescore``: per filled class, its confidence on the run's model and on
        ``model`` (``"SPEC"`` or ``"SPEC@WEIGHTS_FILE"``), and ``model``'s top-1 class. With
        ``out`` (a path without suffix), also writes OUT.csv and OUT.json."""
        from evofool.transfer import rescore_run, write_rescore
        with trusting_artifacts(self.trust):
            if out is None:
                return rescore_run(self.path, _spec(model), device)
            return write_rescore(self.path, _spec(model), out, device)[2]

    def ablate(self, model=None, device: str = "auto", grid: int = 4, max_copies: int = 6,
               orders: int = 3, seed: int = 0, out: str | Path | None = None) -> list[dict]:
        """``evofool ablate``: occlude each elite's tiles (greedy and random orders) and
        repeat its most confident tile (evofool/ablation.py says how); scored by the run's
        model or ``model`` (``"SPEC"`` or ``"SPEC@WEIGHTS_FILE"``). Writes ablation.json,
        .csv and .png into ``out`` (default RUN_DIR/ablation, which the report shows) and
        returns the summary rows, one per filled class."""
        from evofool.ablation import ablate_run, summary_rows, write_ablation
        model = None if model is None else _spec(model)
        with trusting_artifacts(self.trust):
            result = ablate_run(self.path, model, device, grid, max_copies, orders, seed)
        write_ablation(result, out)
        return summary_rows(result)

    def compare(self, other: "Run | str | Path") -> list[dict]:
        """``evofool compare``: per class, this run's (``_a``) and ``other``'s (``_b``) elite
        confidence, generation and evaluations; the runs must score the same classes."""
        from evofool.compare import compare_runs
        other_path = other.path if isinstance(other, Run) else other
        trust = self.trust and (other.trust if isinstance(other, Run) else True)
        with trusting_artifacts(trust):
            return compare_runs(self.path, other_path)

    def resume(self, **overrides) -> "Run":
        """Continue this run if it was stopped, or extend it (``budget={"generations":
        N}``); returns the run read afresh. See :func:`resume`."""
        return resume(self.path, trust=self.trust, **overrides)
