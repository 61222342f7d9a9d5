"""Find a genome type by name: built-ins, ``evofool.genomes`` entry points, or a dotted path."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from evofool.errors import EvofoolError
from evofool.genomes.base import GenomeType

ENTRY_POINT_GROUP = "evofool.genomes"

# Built-ins are named lazily so that importing the registry stays cheap.
_BUILTIN = {
    "direct": "evofool.genomes.direct:DirectGenome",
    "cppn": "evofool.genomes.cppn:CppnGenome",
}
_REGISTERED: dict[str, type[GenomeType]] = {}


def register_genome_type(cls: type[GenomeType]) -> type[GenomeType]:
    """Class decorator: make ``cls`` available under ``cls.name`` in this process."""
    _REGISTERED[cls.name] = cls
    return cls


def _load_dotted(path: str) -> object:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def available_genome_types() -> list[str]:
    names = set(_BUILTIN) | set(_REGISTERED)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def get_genome_type(name: str) -> type[GenomeType]:
    """The genome class for ``name``: a registered name or ``package.module:ClassName``."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = _BUILTIN.get(name)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                target = ep.value
                break
    if target is None and ":" in name:
        target = name
    if target is None:
        raise EvofoolError(f"unknown genome type '{name}' (available: "
                           f"{', '.join(available_genome_types())}, or 'package.module:Class')")
    try:
        cls = _load_dotted(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EvofoolError(f"genome type '{name}' could not be loaded from '{target}': {exc}")
    if not (isinstance(cls, type) and issubclass(cls, GenomeType)):
        raise EvofoolError(f"genome type '{name}' ('{target}') is not a GenomeType subclass")
    return cls
