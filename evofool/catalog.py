"""The experiments that ship with evofool (the repository's ``experiments/`` folder, installed
as the package ``evofool.experiments``): listed by ``evofool experiments``, run by name,
copied by ``evofool init`` to be edited."""
from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from evofool.bounded_yaml import load_yaml
from evofool.errors import EvofoolError
from evofool.files import write_text


@dataclass(frozen=True)
class PackagedExperiment:
    name: str
    path: Path
    description: str


def packaged_folder() -> Path:
    return Path(str(files("evofool.experiments")))


def packaged_experiments() -> list[PackagedExperiment]:
    found = []
    for path in sorted(packaged_folder().glob("*.yaml")):
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
        found.append(PackagedExperiment(path.stem, path, str(data.get("description", ""))))
    return found


def find_experiment(reference: str | Path) -> Path:
    """An experiment file: ``reference`` as a path, else ``NAME.yaml`` in the current folder,
    else the packaged experiment of that name."""
    path = Path(reference)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml")
    local = Path(f"{name}.yaml")
    if path.parent == Path(".") and local.is_file():
        return local
    packaged = packaged_folder() / f"{name}.yaml"
    if path.parent == Path(".") and packaged.is_file():
        return packaged
    names = ", ".join(e.name for e in packaged_experiments())
    raise EvofoolError(f"experiment file '{reference}' does not exist, nor is it a packaged "
                       f"experiment's name ({names}; 'evofool experiments' describes them)")


def copy_experiment(name: str, folder: str | Path = ".") -> Path:
    """Copy the packaged experiment ``name`` into ``folder`` (never over an existing file)."""
    source = packaged_folder() / f"{name.removesuffix('.yaml')}.yaml"
    if not source.is_file():
        names = ", ".join(e.name for e in packaged_experiments())
        raise EvofoolError(f"no packaged experiment '{name}' (packaged: {names})")
    target = Path(folder) / source.name
    if target.exists():
        raise EvofoolError(f"'{target}' already exists; edit it, or give another folder: "
                           f"evofool init {source.stem} DIR")
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        write_text(target, source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvofoolError(f"cannot write '{target}': {exc.strerror or exc}") from None
    return target
