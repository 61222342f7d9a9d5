"""One shape for every registry of pluggable classes (genome types, search algorithms):
built-ins named lazily, classes registered in this process, entry points of installed
packages, and ``package.module:Class`` paths written in an experiment.

Artifacts (archives, genome files, a run directory's config.yaml) may come from strangers:
a name read from one resolves only against the built-ins, this process's registrations and
installed entry points. Importing a module path that an artifact names would run that
module, so it needs the user's explicit trust (``evofool ... --trust``, or
:func:`trusting_artifacts` in code).
"""
from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import Iterator

from evofool.errors import EvofoolError

_TRUSTED = ContextVar("evofool_trust_artifacts", default=False)


@contextmanager
def trusting_artifacts(trust: bool = True) -> Iterator[None]:
    """Within the block, module paths (and code-carrying model specs) named by artifacts are
    loaded, as if the user had written them."""
    token = _TRUSTED.set(trust)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def trusted_artifacts() -> bool:
    """Whether the caller trusts the artifacts read now (``--trust``)."""
    return _TRUSTED.get()


def check_artifact_code(what: str, source: str | None) -> None:
    """Refuse to load code that the artifact ``source`` names (``what``), unless trusted;
    ``source`` None means the user wrote the name (an experiment file, a command line)."""
    if source is not None and not _TRUSTED.get():
        raise EvofoolError(f"{source}: names {what}; loading it would run code that came with "
                           "the file: pass --trust (trust=True in Python) if you trust whoever made it")


def import_module(name: str):
    """Import ``name`` from sys.path, else from the current directory, as ``python -m``
    would (the ``evofool`` console script does not put the current folder on sys.path)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name.split(".")[0] or os.getcwd() in sys.path:
            raise
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(os.getcwd())


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

    def get(self, name: str, source: str | None = None) -> type:
        """The class for ``name``; an unknown or broken name is a one-line EvofoolError.
        ``source``: the artifact that names it (then a module path needs trust)."""
        if name in self.registered:
            return self.registered[name]
        target = self.builtin.get(name)
        if target is None:
            target = next((ep.value for ep in entry_points(group=self.group) if ep.name == name),
                          None)
        if target is None and ":" in name:
            check_artifact_code(f"the {self.kind} '{name}', a module path", source)
            target = name
        if target is None:
            raise EvofoolError(f"unknown {self.kind} '{name}' (available: "
                               f"{', '.join(self.names())}, or 'package.module:Class')")
        module_name, _, attr = target.partition(":")
        try:
            cls = getattr(import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise EvofoolError(f"{self.kind} '{name}' could not be loaded from '{target}': "
                               f"{exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise EvofoolError(f"{self.kind} '{name}' ('{target}') is not a "
                               f"{self.base.__name__} subclass")
        return cls
