"""YAML from anyone: ``yaml.safe_load`` bounded in size, nesting, alias expansion ("billion
laughs") and integer length, with duplicate keys refused, and one-line errors.

Experiment files, overrides and a run's config.yaml all come through :func:`load_yaml`.
"""
from __future__ import annotations

from typing import Any

import yaml

from evofool.errors import EvofoolError, one_line
from evofool.schema import show

MAX_YAML_BYTES = 4 * 1024 * 1024   # an experiment file or an override's value
MAX_YAML_NODES = 250_000           # values in a document, each alias counted as often as used
MAX_YAML_DEPTH = 64                # nesting of lists and mappings (aliases expanded)
MAX_YAML_INT_CHARS = 100           # digits of an integer literal

_BaseLoader = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _YamlProblem(Exception):
    """A document that is well-formed YAML but beyond a limit (or repeats a key)."""


def _line(mark) -> str:
    return f"line {mark.line + 1}" if mark is not None else "an unknown line"


class _BoundedLoader(_BaseLoader):
    """PyYAML's safe loader that also refuses duplicate keys, integer literals of more than
    MAX_YAML_INT_CHARS characters and (before constructing anything) alias expansion
    beyond MAX_YAML_NODES values or MAX_YAML_DEPTH levels, and recursive aliases."""

    def construct_document(self, node):
        _check_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: PyYAML's own error follows
                if first is not key_node:
                    raise _YamlProblem(
                        f"duplicate key {show(key)} at {_line(key_node.start_mark)} (first at "
                        f"{_line(first.start_mark)}); keep one")
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_YAML_INT_CHARS:
            raise _YamlProblem(f"an integer of {len(node.value):,} characters at "
                               f"{_line(node.start_mark)} (at most {MAX_YAML_INT_CHARS})")
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _check_expansion(root) -> None:
    """Count ``root``'s values with every alias expanded (memoized: linear in the document),
    refusing cycles, more than MAX_YAML_NODES values or deeper than MAX_YAML_DEPTH."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node, depth: int) -> int:
        if depth > MAX_YAML_DEPTH:
            raise _YamlProblem(f"nested deeper than {MAX_YAML_DEPTH} levels (aliases "
                               f"expanded) at {_line(node.start_mark)}")
        if isinstance(node, yaml.ScalarNode):
            return 1
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in active:
            raise _YamlProblem(f"a recursive alias (a value that contains itself) at "
                               f"{_line(node.start_mark)}")
        active.add(id(node))
        total = 1
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [child for pair in node.value for child in pair]
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_YAML_NODES:
                raise _YamlProblem(f"more than {MAX_YAML_NODES:,} values once aliases are "
                                   f"expanded (at {_line(node.start_mark)})")
        active.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root, 1)


def _prescan(text: str) -> None:
    """Walk the parser's events (no recursion, nothing built) to bound the document's
    nesting depth and raw number of values before PyYAML composes it (recursively)."""
    loader = _BaseLoader(text)
    try:
        depth = nodes = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
                nodes += 1
                if nodes > MAX_YAML_NODES:
                    raise _YamlProblem(f"more than {MAX_YAML_NODES:,} values (at "
                                       f"{_line(event.start_mark)})")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise _YamlProblem(f"nested deeper than {MAX_YAML_DEPTH} levels at "
                                       f"{_line(event.start_mark)}")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


class YamlSyntaxError(EvofoolError):
    """Text that is not YAML at all (an override's value may then be a plain string)."""


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` for text from anyone: bounded in size, depth, alias expansion and
    integer length, duplicate keys refused. One-line EvofoolError naming ``source`` (the
    file, or the override) if not; YamlSyntaxError (a subclass) for malformed YAML."""
    if len(text) > MAX_YAML_BYTES:
        raise EvofoolError(f"{source}: {len(text):,} characters of YAML; at most "
                           f"{MAX_YAML_BYTES:,} ({MAX_YAML_BYTES // 2 ** 20} MiB) are read")
    try:
        _prescan(text)
        loader = _BoundedLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _YamlProblem as exc:
        raise EvofoolError(f"{source}: YAML refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or one_line(exc, 200)
        raise YamlSyntaxError(f"{source}: malformed YAML{where}: "
                              f"{one_line(Exception(problem), 200)}") from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        raise EvofoolError(f"{source}: YAML refused: {one_line(exc, 200)}") from None
