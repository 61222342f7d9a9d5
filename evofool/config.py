"""Experiment files: load a YAML, apply ``key.sub=value`` overrides, validate, resolve.

The schema (every key, its type and default) is the dataclasses below plus the ``Params``
dataclass of the chosen genome type and algorithm; experiments/README.md lists them all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from evofool.bounded_yaml import MAX_YAML_BYTES, MAX_YAML_DEPTH, YamlSyntaxError, load_yaml
from evofool.catalog import find_experiment
from evofool.errors import EvofoolError
from evofool.fitness.ensemble import MAX_MEMBERS as MAX_ENSEMBLE
from evofool.fitness.ensemble import Ensemble
from evofool.fitness.registry import (ModelSpec, build_ensemble, build_target,
                                      check_spec_from_artifact)
from evofool.fitness.target import Target
from evofool.genomes.registry import get_genome_type
from evofool.schema import (CLASS_ID_LIST_WORDS, MAX_BATCH_SIZE, MAX_DESCRIPTION_CHARS,
                            MAX_PATH_CHARS, MAX_SEED, MAX_THREADS, class_id_list, from_dict,
                            positive, show, to_dict)
from evofool.search.base import Budget
from evofool.search.emitters.base import get_emitter
from evofool.search.registry import get_algorithm

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d{1,4})?|mps)$")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
MAX_NAME_CHARS = 200   # a run name (a folder name) or a genome/algorithm type name
# Older spellings of runtime keys, still read: (section or None for top level, key) -> key
LEGACY_RUNTIME_KEYS = {(None, "device"): "device", (None, "batch_size"): "batch_size",
                       ("genome", "render_device"): "render_device",
                       ("genome", "batching"): "render_batching"}


def _is_device(value: str) -> bool:
    return DEVICE_PATTERN.fullmatch(value) is not None


def _is_run_name(value: str) -> bool:
    """A name that is one safe path component: ``runs/<name>`` stays inside ``runs/``."""
    return (0 < len(value) <= MAX_NAME_CHARS and value.isprintable()
            and value not in (".", "..") and "/" not in value and "\\" not in value)


def _is_path(value: str) -> bool:
    """Any path (or spec holding one) that fits one message line: printable, not too long."""
    return len(value) <= MAX_PATH_CHARS and value.isprintable()


def _is_spec(value: str | list[str]) -> bool:
    """One target spec, or an ensemble's 2 to MAX_ENSEMBLE specs."""
    if isinstance(value, str):
        return _is_path(value)
    return 2 <= len(value) <= MAX_ENSEMBLE and all(_is_path(v) and v for v in value)


def _is_typed_section(value: dict) -> bool:
    """``genome:`` / ``algorithm:``: the ``type`` (checked by its registry) must be a name."""
    name = value.get("type")
    return name is None or (isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS
                            and name.isprintable())


@dataclass
class ModelConfig:
    """The ``model:`` keys: which classifier, and how it scores (experiments/README.md)."""

    spec: str | list[str] = field(default="lenet-mnist", metadata={"check": (
        _is_spec, f"a target spec (evofool models lists them), or a list of 2 to "
                  f"{MAX_ENSEMBLE} specs (an ensemble; each SPEC or SPEC@WEIGHTS_FILE): "
                  f"printable, at most {MAX_PATH_CHARS:,} characters each")})
    weights_path: str | None = field(default=None, metadata={"check": (  # instead of the default
        _is_path, f"a weights file path (printable, at most {MAX_PATH_CHARS:,} characters), "
                  "or null")})
    ensemble: Literal["min", "mean"] = "min"  # with a list of specs: combine their confidences
    classes: list[int] | None = field(default=None, metadata={"check": (
        class_id_list, CLASS_ID_LIST_WORDS + ", or null")})
    crops: Literal[1, 10] = 1          # 10: the paper's mean over 10 crops (ImageNet)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast for the forward pass
    channels_last: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.spec, list) and self.weights_path is not None:
            raise ValueError("weights_path applies to one model; give each ensemble member "
                             "its weights as SPEC@WEIGHTS_FILE in the spec list")

    @property
    def specs(self) -> list[str]:
        """The model spec(s): one, or an ensemble's members."""
        return self.spec if isinstance(self.spec, list) else [self.spec]

    def build_target(self, device: torch.device) -> Target | Ensemble:
        """The classifier these keys describe, on ``device`` (one-line EvofoolError if bad)."""
        options = dict(classes=self.classes, crops=self.crops, precision=self.precision,
                       channels_last=self.channels_last)
        if isinstance(self.spec, list):
            return build_ensemble(self.spec, device, self.ensemble, **options)
        return build_target(self.spec, device, self.weights_path, **options)


@dataclass
class LogConfig:
    progress: bool = True             # a progress bar on stderr
    tensorboard: bool = False         # also log per-generation figures to RUN_DIR/tensorboard
    checkpoint_every: int = field(default=10, metadata=positive(
        "a positive number of generations"))


@dataclass
class RuntimeConfig:
    """The ``runtime:`` keys: where and how a run computes, never what it finds. Nothing here
    is saved with an archive (any archive opens on a CPU-only machine), and a resumed run
    may change them (results can differ in the last bits between devices and batch sizes)."""

    device: str = field(default="auto", metadata={
        "check": (_is_device, DEVICE_CHOICES)})   # the classifier's device
    batch_size: int = field(default=1000, metadata=positive(
        "a positive number of images per forward pass", at_most=MAX_BATCH_SIZE))
    threads: int | None = field(default=None, metadata={"check": (
        lambda v: 0 < v <= MAX_THREADS, f"a positive number of CPU threads for torch, at "
                                        f"most {MAX_THREADS:,}, or null (torch's default)")})
    render_device: str = field(default="cpu", metadata={
        "check": (_is_device, DEVICE_CHOICES + " (auto: the GPU if there is one)")})
    render_batching: Literal["auto", "per_genome", "by_depth"] = "auto"


def _is_ray_address(value: str | None) -> bool:
    if value is None or value == "auto":
        return True
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536
                and host.isprintable() and len(value) <= MAX_PATH_CHARS)


@dataclass
class EvaluationConfig:
    """The ``evaluation:`` keys: where each generation's chunks are scored (DEAP's
    ``toolbox.map``). Like ``runtime``, how a run computes, never what it finds: a resumed run
    may change them, and a fixed seed gives the same archive on every backend."""

    backend: Literal["local", "ray"] = "local"
    workers: int | None = field(default=None, metadata=positive(
        "a positive number of Ray workers (null: the cores this process may use)",
        at_most=MAX_THREADS))
    gpus_per_worker: float = field(default=0.0, metadata={"check": (
        lambda v: 0 <= v <= 64, "a number of GPUs per worker in [0, 64] (0.5: two share one)")})
    address: str | None = field(default=None, metadata={"check": (
        _is_ray_address, "null (start Ray here), 'auto' (the cluster 'ray start' made on this "
                         "machine) or HOST:PORT of a cluster's head")})
    timeout_s: float = field(default=600.0, metadata={"check": (
        lambda v: 0 < v <= 86400, "seconds in (0, 86400] to wait for a chunk's scores")})


MAX_RETRAIN_ITERATIONS = 100      # the paper ran 15 (sec. 5)
MAX_RETRAIN_RUNS = 100


@dataclass
class RetrainConfig:
    """The ``retrain:`` keys: ``evofool retrain`` (paper sec. 5, :mod:`evofool.retrain`).
    Iteration k trains DNN_k (k > 1: with the fooling images of iterations 1..k-1 as an extra
    class), evolves against it and keeps up to ``images_per_iteration`` of the images that
    fooled it; ``evofool run`` refuses an experiment that has this section."""

    iterations: int = field(default=5, metadata=positive(
        "a positive number of iterations (networks trained and fooled)",
        at_most=MAX_RETRAIN_ITERATIONS))
    images_per_iteration: int = field(default=1300, metadata=positive(
        "a positive number of fooling images kept per iteration", at_most=100_000))
    threshold: float = field(default=0.99, metadata={"check": (
        lambda v: 0 < v <= 1, "a confidence in (0, 1]: a candidate whose best digit is at "
                              "least this is a fooling image")})
    runs: int = field(default=1, metadata=positive(
        "a positive number of evolution runs (seeds) per iteration",
        at_most=MAX_RETRAIN_RUNS))
    epochs: int = field(default=12, metadata=positive(
        "a positive number of training epochs per network", at_most=1000))
    holdout: float = field(default=0.1, metadata={"check": (
        lambda v: 0 <= v <= 0.5, "a fraction in [0, 0.5] of each iteration's fooling images "
                                 "kept out of training (for the held-out recall)")})


@dataclass
class Experiment:
    """A validated experiment. ``genome`` and ``algorithm`` hold the chosen type's name and
    its validated ``Params`` instance."""

    name: str
    model: ModelConfig
    genome_type: str
    genome: Any
    algorithm_type: str
    algorithm: Any
    budget: Budget
    seed: int = 0
    output_dir: str = ""  # "": a new runs/NAME/STAMP per run (evofool.run_dirs)
    description: str = ""
    log: LogConfig = field(default_factory=LogConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    retrain: RetrainConfig | None = None  # only evofool retrain runs an experiment with it

    def to_dict(self) -> dict:
        """The resolved config: every key with its value, as saved into the run directory."""
        return {
            "name": self.name, "description": self.description, "seed": self.seed,
            "output_dir": self.output_dir or None,
            "model": to_dict(self.model),
            "genome": {"type": self.genome_type, **to_dict(self.genome)},
            "algorithm": {"type": self.algorithm_type, **to_dict(self.algorithm)},
            "budget": to_dict(self.budget), "log": to_dict(self.log),
            "runtime": to_dict(self.runtime), "evaluation": to_dict(self.evaluation),
        } | ({"retrain": to_dict(self.retrain)} if self.retrain is not None else {})


@dataclass
class _TopLevel:
    """The top-level keys (genome and algorithm are checked by their own type's schema)."""

    model: ModelConfig
    genome: dict = field(metadata={"check": (
        _is_typed_section, f"a mapping whose 'type' is a genome type name (at most "
                           f"{MAX_NAME_CHARS} printable characters)")})
    algorithm: dict = field(metadata={"check": (
        _is_typed_section, f"a mapping whose 'type' is an algorithm name (at most "
                           f"{MAX_NAME_CHARS} printable characters)")})
    budget: Budget
    name: str | None = field(default=None, metadata={"check": (
        _is_run_name, f"a run name usable as a folder name: 1 to {MAX_NAME_CHARS} printable "
                      "characters, no / or \\, not . or .. (output_dir may be any path)")})
    description: str = field(default="", metadata={"check": (
        lambda v: len(v) <= MAX_DESCRIPTION_CHARS,
        f"text of at most {MAX_DESCRIPTION_CHARS} characters")})
    seed: int = field(default=0, metadata={"check": (
        lambda v: 0 <= v <= MAX_SEED, "an integer in [0, 2**63 - 1]")})
    output_dir: str | None = field(default=None, metadata={"check": (
        _is_path, f"a folder path (printable, at most {MAX_PATH_CHARS:,} characters), or null")})
    log: LogConfig = field(default_factory=LogConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    # A mapping when given (not "| None": a union would hide the section's own messages).
    retrain: RetrainConfig = None  # type: ignore[assignment]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``budget.generations=50`` -> (["budget", "generations"], 50); values are YAML, read
    with the limits of an experiment file (malformed YAML is taken as a plain string)."""
    key, sep, raw = text.partition("=")
    path = key.split(".")
    if not sep or not key or not all(path):
        raise EvofoolError(f"override {show(text)} is not of the form key.sub=value")
    if len(path) > MAX_YAML_DEPTH or not key.isprintable():
        raise EvofoolError(f"override key {show(key)} is not a key (printable, at most "
                           f"{MAX_YAML_DEPTH} dotted parts)")
    try:
        shown = key if len(key) <= 80 else key[:77] + "..."
        value = load_yaml(raw, f"override '{shown}=...'") if raw else None
    except YamlSyntaxError:
        value = raw
    return path, value


def _expand_model_shorthand(data: dict) -> None:
    """``model: NAME`` is short for ``model: {spec: NAME}``, ``model: [A, B]`` for
    ``model: {spec: [A, B]}`` (an ensemble)."""
    if isinstance(data.get("model"), (str, list)):
        data["model"] = {"spec": data["model"]}


def _move_legacy_runtime_keys(data: dict, source: str, overwrite: bool = False) -> None:
    """``device`` and ``batch_size`` (top level) and ``genome.render_device`` /
    ``genome.batching`` are the older spellings of ``runtime.*`` keys: move them there
    (``overwrite``: an override given in the old spelling wins over the file's value)."""
    for (section, key), new_key in LEGACY_RUNTIME_KEYS.items():
        holder = data if section is None else data.get(section)
        if not isinstance(holder, dict) or key not in holder:
            continue
        runtime = data.setdefault("runtime", {})
        if not isinstance(runtime, dict):
            return  # reported by validation as a bad 'runtime' value
        old = key if section is None else f"{section}.{key}"
        if new_key in runtime and not overwrite:
            raise EvofoolError(f"{source}: both '{old}' and 'runtime.{new_key}' are set "
                               f"(keep runtime.{new_key})")
        runtime[new_key] = holder.pop(key)


def apply_overrides(data: dict, overrides: list[str], source: str) -> dict:
    _expand_model_shorthand(data)
    _move_legacy_runtime_keys(data, source)
    for text in overrides:
        if text.startswith("model="):  # a new model name keeps the model's other keys
            text = "model.spec=" + text[len("model="):]
        path, value = parse_override(text)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(path[:depth + 1])
                raise EvofoolError(f"{source}: override {show(text)}: {show(where)} is not "
                                   "a mapping")
            node = child
        node[path[-1]] = value
    _move_legacy_runtime_keys(data, source, overwrite=True)
    return data


def read_yaml(path: Path) -> dict:
    """An experiment file (or a run's config.yaml) as a mapping, read with the limits of
    :func:`evofool.bounded_yaml.load_yaml` (size, depth, aliases, duplicate keys)."""
    if not path.is_file():
        raise EvofoolError(f"experiment file '{path}' does not exist")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise EvofoolError(f"{path}: larger than {MAX_YAML_BYTES:,} bytes "
                               f"({MAX_YAML_BYTES // 2 ** 20} MiB); an experiment file is "
                               "a few kB")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise EvofoolError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise EvofoolError(f"{path}: cannot read: not UTF-8 text (byte {exc.start})") from None
    data = load_yaml(text, str(path))
    if not isinstance(data, dict):
        kind = {type(None): "empty", list: "a list", str: "a string"}.get(
            type(data), f"a {type(data).__name__}")
        raise EvofoolError(f"{path}: an experiment must be a YAML mapping of keys to values "
                           f"(this one is {kind})")
    return data


def _typed_section(data: dict, key: str, source: str, lookup,
                   artifact: bool) -> tuple[str, type, Any]:
    section = dict(data)
    type_name = section.pop("type", None)
    if not isinstance(type_name, str):
        raise EvofoolError(f"{source}: {key}.type = {type_name!r} is invalid: expected a name")
    cls = lookup(type_name, source if artifact else None)
    return type_name, cls, from_dict(cls.Params, section, key, source)


def _emitter_lookup(key: str):
    """:func:`get_emitter`, its errors naming ``key``."""
    def lookup(name: str, source: str | None):
        try:
            return get_emitter(name, source)
        except EvofoolError as exc:
            raise EvofoolError(f"{key}: {exc}") from None
    return lookup


def validate_experiment(data: dict, source: str, default_name: str,
                        artifact: bool = False) -> Experiment:
    """``artifact``: ``data`` comes from a file evofool wrote (a run's config.yaml), maybe
    someone else's: names in it that would run code need trust (:mod:`evofool.plugins`)."""
    top = from_dict(_TopLevel, data, "", source)
    model = top.model
    if artifact:
        for spec in model.specs:
            check_spec_from_artifact(ModelSpec.parse(spec).spec, source)
    try:
        genome_type, _, genome = _typed_section(top.genome, "genome", source, get_genome_type,
                                                artifact)
        algorithm_type, _, algorithm = _typed_section(top.algorithm, "algorithm", source,
                                                      get_algorithm, artifact)
        for i, entry in enumerate(getattr(algorithm, "emitters", None) or ()):
            _typed_section(entry, f"algorithm.emitters[{i}]", source,
                           _emitter_lookup(f"algorithm.emitters[{i}].type"), artifact)
    except EvofoolError as exc:
        message = str(exc)
        raise EvofoolError(message if message.startswith(source) else f"{source}: {message}")
    if top.budget.generations is None and top.budget.evaluations is None:
        raise EvofoolError(f"{source}: budget needs generations and/or evaluations "
                           "(positive integers)")
    name = top.name or default_name
    return Experiment(name=name, model=model, genome_type=genome_type, genome=genome,
                      algorithm_type=algorithm_type, algorithm=algorithm, budget=top.budget,
                      seed=top.seed, output_dir=top.output_dir or "",
                      description=top.description,
                      log=top.log, runtime=top.runtime, evaluation=top.evaluation,
                      retrain=top.retrain)


def load_experiment(path: str | Path, overrides: list[str] = ()) -> Experiment:
    """Read ``path`` (a file, or a packaged experiment's name: :mod:`evofool.catalog`), apply
    ``overrides`` (``key.sub=value``), validate; EvofoolError if bad."""
    path = find_experiment(path)
    data = apply_overrides(read_yaml(path), list(overrides), str(path))
    return validate_experiment(data, str(path), path.stem)
