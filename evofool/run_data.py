"""Read a finished (or stopped) run directory back: config, timings, log and archive.

Shared by ``evofool report`` and the comparison commands, so that every reader gives the
same one-line errors for a missing or corrupted run directory.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from evofool.search.archive import Archive
from evofool.archive_store import find_archive_dir, load_archive
from evofool.errors import EvofoolError
from evofool.genomes.base import GenomeType


@dataclass
class RunData:
    run_dir: Path
    config: dict          # the resolved experiment (config.yaml)
    info: dict            # run.json: timings, device, versions
    log: list[dict]       # log.jsonl, one record per generation
    archive_dir: Path
    archive_json: dict    # archive/archive.json
    archive: Archive
    genome_type: GenomeType


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvofoolError(f"'{path}' is corrupted or unreadable ({type(exc).__name__})") from None


def read_log(path: Path) -> list[dict]:
    """Every complete line of log.jsonl (a killed run may leave a partial last line)."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvofoolError(f"'{path}' is unreadable ({type(exc).__name__})") from None
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise EvofoolError(f"'{path}' line {number} is not JSON (corrupted log)") from None
        if not isinstance(record, dict) or "generation" not in record:
            raise EvofoolError(f"'{path}' line {number} is not a generation record")
        records.append(record)
    return records


def read_run(run_dir: str | Path) -> RunData:
    """Load what a run directory holds; one-line EvofoolError when it is missing or broken."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EvofoolError(f"run directory '{run_dir}' does not exist")
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise EvofoolError(f"'{run_dir}' is not a run directory (no config.yaml)")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EvofoolError(f"'{config_path}' is corrupted ({type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise EvofoolError(f"'{config_path}' is corrupted (not a mapping)")
    info_path = run_dir / "run.json"
    info = _read_json(info_path) if info_path.exists() else {}
    log_path = run_dir / "log.jsonl"
    if not log_path.is_file():
        raise EvofoolError(f"'{run_dir}' has no log.jsonl")
    log = read_log(log_path)
    if not log:
        raise EvofoolError(f"'{log_path}' holds no generation records")
    archive_dir = find_archive_dir(run_dir)
    archive, genome_type, archive_json = load_archive(archive_dir)
    return RunData(run_dir, config, info, log, archive_dir, archive_json, archive, genome_type)
