"""One shape for every registry of pluggable classes (genome types, search algorithms):
built-ins named lazily, classes registered in this process, entry points of installed
packages, and ``package.module:Class`` paths written in an experiment."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from evofool.errors import EvofoolError


class PluginRegistry:
    """Finds a subclass of ``base`` by name, for messages called a ``kind`` (e.g.
    "genome type"); ``group`` is the entry-point group (e.g. ``evofool.genomes``)."""

    def __init__(self, kind: str, base: type, group: str, builtin: dict[str, str]) -> None:
        self.kind, self.base, self.group = kind, base, group
        self.builtin = dict(builtin)   # name -> "module:Class", imported when first asked
        self.registered: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Class decorator: make ``cls`` available under ``cls.name`` in this process."""
        self.registered[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        found = set(self.builtin) | set(self.registered)
        return sorted(found | {ep.name for ep in entry_points(group=self.group)})

    def get(self, name: str) -> type:
        """The class for ``name``; an unknown or broken name is a one-line EvofoolError."""
        if name in self.registered:
            return self.registered[name]
        target = self.builtin.get(name)
        if target is None:
            target = next((ep.value for ep in entry_points(group=self.group) if ep.name == name),
                          None)
        if target is None and ":" in name:
            target = name
        if target is None:
            raise EvofoolError(f"unknown {self.kind} '{name}' (available: "
                               f"{', '.join(self.names())}, or 'package.module:Class')")
        module_name, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise EvofoolError(f"{self.kind} '{name}' could not be loaded from '{target}': "
                               f"{exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise EvofoolError(f"{self.kind} '{name}' ('{target}') is not a "
                               f"{self.base.__name__} subclass")
        return cls
