"""Experiment files: load a YAML, apply ``key.sub=value`` overrides, validate, resolve.

The schema (every key, its type and default) is the dataclasses below plus the ``Params``
dataclass of the chosen genome type and algorithm; docs/EXPERIMENTS.md lists them all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from evofool.errors import EvofoolError
from evofool.fitness.registry import build_target, check_spec_from_artifact
from evofool.fitness.target import Target
from evofool.genomes.registry import get_genome_type
from evofool.schema import from_dict, positive, to_dict
from evofool.search.base import Budget
from evofool.search.registry import get_algorithm

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
# Older spellings of runtime keys, still read: (section or None for top level, key) -> key
LEGACY_RUNTIME_KEYS = {(None, "device"): "device", (None, "batch_size"): "batch_size",
                       ("genome", "render_device"): "render_device",
                       ("genome", "batching"): "render_batching"}


def _class_list(value: list[int]) -> bool:
    return bool(value) and len(set(value)) == len(value) and min(value) >= 0


@dataclass
class ModelConfig:
    """The ``model:`` keys: which classifier, and how it scores (docs/EXPERIMENTS.md)."""

    spec: str = "lenet-mnist"
    weights_path: str | None = None  # a local weights file instead of the default weights
    classes: list[int] | None = field(default=None, metadata={"check": (
        _class_list, "a non-empty list of distinct class ids >= 0 (model outputs), or null")})
    crops: Literal[1, 10] = 1          # 10: the paper's mean over 10 crops (ImageNet)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast for the forward pass
    channels_last: bool = False

    def build_target(self, device: torch.device) -> Target:
        """The classifier these keys describe, on ``device`` (one-line EvofoolError if bad)."""
        return build_target(self.spec, device, self.weights_path, classes=self.classes,
                            crops=self.crops, precision=self.precision,
                            channels_last=self.channels_last)


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
        "check": (DEVICE_PATTERN.match, DEVICE_CHOICES)})   # the classifier's device
    batch_size: int = field(default=1000, metadata=positive(
        "a positive number of images per forward pass"))
    threads: int | None = field(default=None, metadata=positive(
        "a positive number of CPU threads for torch, or null (torch's default)"))
    render_device: str = field(default="cpu", metadata={
        "check": (DEVICE_PATTERN.match, DEVICE_CHOICES + " (auto: the GPU if there is one)")})
    render_batching: Literal["auto", "per_genome", "by_depth"] = "auto"


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
    output_dir: str = ""
    log: LogConfig = field(default_factory=LogConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict:
        """The resolved config: every key with its value, as saved into the run directory."""
        return {
            "name": self.name, "seed": self.seed, "output_dir": self.output_dir,
            "model": to_dict(self.model),
            "genome": {"type": self.genome_type, **to_dict(self.genome)},
            "algorithm": {"type": self.algorithm_type, **to_dict(self.algorithm)},
            "budget": to_dict(self.budget), "log": to_dict(self.log),
            "runtime": to_dict(self.runtime),
        }


@dataclass
class _TopLevel:
    """The top-level keys (genome and algorithm are checked by their own type's schema)."""

    model: ModelConfig
    genome: dict
    algorithm: dict
    budget: Budget
    name: str | None = None
    seed: int = field(default=0, metadata={"check": (lambda v: v >= 0, "an integer >= 0")})
    output_dir: str | None = None
    log: LogConfig = field(default_factory=LogConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``budget.generations=50`` -> (["budget", "generations"], 50); values are YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key or not all(key.split(".")):
        raise EvofoolError(f"override '{text}' is not of the form key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _expand_model_shorthand(data: dict) -> None:
    """``model: NAME`` is short for ``model: {spec: NAME}``."""
    if isinstance(data.get("model"), str):
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
                raise EvofoolError(f"{source}: override '{text}': '{where}' is not a mapping")
            node = child
        node[path[-1]] = value
    _move_legacy_runtime_keys(data, source, overwrite=True)
    return data


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise EvofoolError(f"experiment file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise EvofoolError(f"{path}: malformed YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvofoolError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise EvofoolError(f"{path}: an experiment must be a YAML mapping of keys to values")
    return data


def _typed_section(data: dict, key: str, source: str, lookup,
                   artifact: bool) -> tuple[str, type, Any]:
    section = dict(data)
    type_name = section.pop("type", None)
    if not isinstance(type_name, str):
        raise EvofoolError(f"{source}: {key}.type = {type_name!r} is invalid: expected a name")
    cls = lookup(type_name, source if artifact else None)
    return type_name, cls, from_dict(cls.Params, section, key, source)


def validate_experiment(data: dict, source: str, default_name: str,
                        artifact: bool = False) -> Experiment:
    """``artifact``: ``data`` comes from a file evofool wrote (a run's config.yaml), maybe
    someone else's: names in it that would run code need trust (:mod:`evofool.plugins`)."""
    top = from_dict(_TopLevel, data, "", source)
    model = top.model
    if artifact:
        check_spec_from_artifact(model.spec, source)
    try:
        genome_type, _, genome = _typed_section(top.genome, "genome", source, get_genome_type,
                                                artifact)
        algorithm_type, _, algorithm = _typed_section(top.algorithm, "algorithm", source,
                                                      get_algorithm, artifact)
    except EvofoolError as exc:
        message = str(exc)
        raise EvofoolError(message if message.startswith(source) else f"{source}: {message}")
    if top.budget.generations is None and top.budget.evaluations is None:
        raise EvofoolError(f"{source}: budget needs generations and/or evaluations "
                           "(positive integers)")
    name = top.name or default_name
    return Experiment(name=name, model=model, genome_type=genome_type, genome=genome,
                      algorithm_type=algorithm_type, algorithm=algorithm, budget=top.budget,
                      seed=top.seed, output_dir=top.output_dir or f"runs/{name}",
                      log=top.log, runtime=top.runtime)


def load_experiment(path: str | Path, overrides: list[str] = ()) -> Experiment:
    """Read ``path``, apply ``overrides`` (``key.sub=value``), validate; EvofoolError if bad."""
    path = Path(path)
    data = apply_overrides(read_yaml(path), list(overrides), str(path))
    return validate_experiment(data, str(path), path.stem)
