"""Read a finished (or stopped) run directory back: config, timings, log and archive.

Shared by ``evofool report`` and the comparison commands, so that every reader gives the
same one-line errors for a missing or corrupted run directory.

Run directories are shared between people, so everything here is read as untrusted: files
must be regular files within size limits (:mod:`evofool.readers`), and every field a reader
uses is checked (type and range) when the run is read; a malformed one is a one-line
EvofoolError naming the file, the field and what was expected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from evofool.archive_store import find_archive_dir, load_archive
from evofool.errors import EvofoolError
from evofool.genomes.base import GenomeType
from evofool.readers import (MAX_LOG_BYTES, MAX_LOG_LINE_BYTES, MAX_SMALL_FILE_BYTES, decode_utf8,
                             is_int, is_number, parse_json, read_json, read_yaml,
                             regular_file, type_name)
from evofool.run_dirs import CONFIG_NAME, resolve_run_dir
from evofool.search.archive import THRESHOLDS, Archive

LOG_NAME = "log.jsonl"
RUN_INFO = "run.json"
#: The per-class lists of a log record (one value per class, null for an empty class).
LOG_CLASS_LISTS = ("best", "batch_median")
#: The counts of a log record that the readers use, and the coverage keys.
LOG_COUNTS = ("generation", "evaluations") + tuple(f"above_{t:g}" for t in THRESHOLDS)
#: run.json fields the readers use: name -> (check, what is expected).
RUN_INFO_FIELDS = {
    "wall_time_s": (lambda v: is_number(v) and math.isfinite(v) and v >= 0, "a number >= 0"),
    "evaluations_per_s": (lambda v: is_number(v) and math.isfinite(v) and v >= 0,
                          "a number >= 0"),
    "device": (lambda v: isinstance(v, str) and len(v) <= 200, "a device name"),
    "generations": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
    "evaluations": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
    "finished": (lambda v: isinstance(v, bool), "true or false"),
}


@dataclass
class RunData:
    run_dir: Path
    config: dict          # the resolved experiment (config.yaml)
    info: dict            # run.json: timings, device, versions (fields used are checked)
    log: list[dict]       # log.jsonl, one record per generation (see read_run)
    archive_dir: Path
    archive_json: dict    # archive/archive.json, checked (see archive_store.load_archive)
    archive: Archive
    genome_type: GenomeType


def log_lines(path: Path) -> Iterator[tuple[int, str, dict | None]]:
    """``(line number, text, record)`` for each line of log.jsonl, read line by line within
    :data:`~evofool.readers.MAX_LOG_BYTES` (a line within MAX_LOG_LINE_BYTES). ``record`` is
    None for an unfinished last line (no newline, not JSON: a killed run leaves one); any
    other line that is not UTF-8 JSON or not an object is a one-line EvofoolError naming the
    file and line."""
    what = "one JSON object per line (evofool log.jsonl)"
    regular_file(path, what, MAX_LOG_BYTES)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise EvofoolError(f"'{path}': cannot read ({exc.strerror or exc})") from None
    with handle:
        number, total = 0, 0
        while True:
            try:
                raw = handle.readline(MAX_LOG_LINE_BYTES + 1)
            except OSError as exc:
                raise EvofoolError(f"'{path}': cannot read ({exc.strerror or exc})") from None
            if not raw:
                return
            number += 1
            total += len(raw)
            where = f"'{path}' line {number}"
            if len(raw) > MAX_LOG_LINE_BYTES or total > MAX_LOG_BYTES:
                raise EvofoolError(f"{where} is too long: expected lines of at most "
                                   f"{MAX_LOG_LINE_BYTES:,} bytes ({MAX_LOG_BYTES:,} in all)")
            complete = raw.endswith(b"\n")
            try:
                text = decode_utf8(raw, where, what).rstrip("\r\n")
                record = parse_json(text, where, what)
            except EvofoolError as exc:
                if not complete:  # the partial last line of a killed run
                    yield number, raw.decode("utf-8", "replace"), None
                    return
                if "malformed JSON" in str(exc):
                    raise EvofoolError(f"{where} is not JSON (corrupted log; expected "
                                       f"{what})") from None
                raise
            if not isinstance(record, dict):
                raise EvofoolError(f"{where} is not a generation record: it holds "
                                   f"{type_name(record)}, expected a JSON object")
            yield number, text, record


def log_prefix(path: Path, steps: int) -> list[str]:
    """The lines of log.jsonl to keep when a run resumes at ``steps`` (for
    ``JsonLinesLog.truncate``): the records with ``step`` < ``steps``, up to the first line
    that is not one (not UTF-8, not a JSON object, a killed run's partial line, a later
    step). Read within the limits of :func:`log_lines`; a missing log keeps nothing; a log
    that is no regular file, too large, or a line too long is a one-line EvofoolError."""
    if not path.exists() and not path.is_symlink():
        return []
    what = "one JSON object per line (evofool log.jsonl)"
    regular_file(path, what, MAX_LOG_BYTES)
    kept: list[str] = []
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(iter(lambda: handle.readline(MAX_LOG_LINE_BYTES + 1),
                                              b""), start=1):
                if len(raw) > MAX_LOG_LINE_BYTES:
                    raise EvofoolError(f"'{path}' line {number} is too long: expected lines "
                                       f"of at most {MAX_LOG_LINE_BYTES:,} bytes")
                if not raw.endswith(b"\n"):
                    break  # a killed run's partial line
                try:
                    text = decode_utf8(raw, "", what).rstrip("\r\n")
                    record = parse_json(text, "", what)
                except EvofoolError:
                    break
                step = record.get("step", steps) if isinstance(record, dict) else steps
                if not is_int(step) or step >= steps:
                    break
                kept.append(text)
    except OSError as exc:
        raise EvofoolError(f"'{path}': cannot read ({exc.strerror or exc})") from None
    return kept


def _check_record(record: dict, where: str, classes: int | None) -> dict:
    """A log record with the fields the readers use checked; its per-class lists become
    float64 arrays (NaN for null), which keeps a long log of many classes small."""
    for key in LOG_COUNTS:
        value = record.get(key)
        if not (is_int(value) and value >= 0):
            raise EvofoolError(f"{where}: {key} is {type_name(value)}, expected an integer "
                               ">= 0")
    if "step" in record and not (is_int(record["step"]) and record["step"] >= 0):
        raise EvofoolError(f"{where}: step is {type_name(record['step'])}, expected an "
                           "integer >= 0")
    checked = dict(record)
    for key in LOG_CLASS_LISTS:
        values = record.get(key)
        if not isinstance(values, list) or (classes is not None and len(values) != classes):
            count = f"{classes:,} " if classes is not None else ""
            raise EvofoolError(f"{where}: {key} is {type_name(values)}, expected a list of "
                               f"{count}confidences (one per class, null if empty)")
        if not all(v is None or is_number(v) for v in values):
            bad = next(v for v in values if not (v is None or is_number(v)))
            raise EvofoolError(f"{where}: {key} holds {type_name(bad)}, expected numbers or "
                               "null")
        try:
            checked[key] = np.array([np.nan if v is None else v for v in values],
                                    dtype=np.float64)
        except OverflowError:  # an integer beyond float range
            raise EvofoolError(f"{where}: {key} holds a number out of range, expected "
                               "confidences") from None
    return checked


def read_log(path: Path, classes: int | None = None) -> list[dict]:
    """Every complete record of log.jsonl (a killed run may leave a partial last line), each
    checked: ``generation``, ``evaluations`` and the coverage counts integers >= 0, ``step``
    (if present) too, and ``best``/``batch_median`` lists of ``classes`` numbers or nulls,
    returned as float64 arrays with NaN for null."""
    records: list[dict] = []
    problem: EvofoolError | None = None  # a bad record; a later line that is no JSON comes first
    for number, _, record in log_lines(path):
        if record is None:
            break
        if problem is not None:
            continue
        try:
            if "generation" not in record:
                raise EvofoolError(f"'{path}' line {number} is not a generation record (no "
                                   "'generation' key)")
            records.append(_check_record(record, f"'{path}' line {number}", classes))
        except EvofoolError as exc:
            problem, records = exc, []
    if problem is not None:
        raise problem
    return records


def read_info(path: Path) -> dict:
    """run.json, its fields that the readers use checked (others are left as they are)."""
    info = read_json(path, MAX_SMALL_FILE_BYTES, "a run summary (run.json)")
    if not isinstance(info, dict):
        raise EvofoolError(f"'{path}' holds {type_name(info)}, expected a JSON object")
    for key, (check, expected) in RUN_INFO_FIELDS.items():
        if key in info and info[key] is not None and not check(info[key]):
            raise EvofoolError(f"'{path}': {key} is {type_name(info[key])}, expected {expected}")
    return info


def read_config(path: Path) -> dict:
    """config.yaml as a mapping (size and nesting bounded); its sections that readers look
    into (``genome``, ``model``, ``algorithm``) are mappings (``model`` may be a spec)."""
    config = read_yaml(path, MAX_SMALL_FILE_BYTES, "a resolved experiment (config.yaml)")
    if not isinstance(config, dict):
        raise EvofoolError(f"'{path}' is corrupted: it holds {type_name(config)}, expected "
                           "a mapping of experiment keys")
    for key in ("genome", "algorithm", "model"):
        value = config.get(key)
        if value is not None and not isinstance(value, dict) and not (
                key == "model" and isinstance(value, str)):
            raise EvofoolError(f"'{path}': {key} is {type_name(value)}, expected a mapping")
    return config


def read_run(run_dir: str | Path) -> RunData:
    """Load what a run directory holds; one-line EvofoolError when it is missing or broken."""
    run_dir = resolve_run_dir(run_dir)
    if not run_dir.is_dir():
        raise EvofoolError(f"run directory '{run_dir}' does not exist")
    config_path = run_dir / CONFIG_NAME
    if not config_path.exists():
        raise EvofoolError(f"'{run_dir}' is not a run directory (no {CONFIG_NAME})")
    config = read_config(config_path)
    info_path = run_dir / RUN_INFO
    info = read_info(info_path) if info_path.exists() or info_path.is_symlink() else {}
    log_path = run_dir / LOG_NAME
    if not (log_path.exists() or log_path.is_symlink()):
        raise EvofoolError(f"'{run_dir}' has no {LOG_NAME}")
    archive_dir = find_archive_dir(run_dir)
    archive, genome_type, archive_json = load_archive(archive_dir)
    log = read_log(log_path, len(archive))
    if not log:
        raise EvofoolError(f"'{log_path}' holds no generation records")
    return RunData(run_dir, config, info, log, archive_dir, archive_json, archive, genome_type)


def check_archive_inside(run: RunData) -> None:
    """EvofoolError unless the run's archive folder lies inside its run directory (not a
    symbolic link leading elsewhere): readers that copy its files rely on it."""
    if not run.archive_dir.resolve().is_relative_to(run.run_dir.resolve()):
        raise EvofoolError(f"'{run.archive_dir}' leads outside the run directory "
                           f"'{run.run_dir}' (a symbolic link), expected its archive folder")
