"""Issue 15, "Safe to open a stranger's run": every reader of run directories, archives and
genome files (archive show/export, render, report, compare, rescore, transfer, run --resume)
treats them as untrusted.

Each case copies a small real run, tampers with one file, and runs the readers through
``evofool.cli.main``: a non-zero exit with exactly one line ``evofool: error: ...`` on stderr
that names the file and the field (or exit 0 with a correct result where the input is in
fact fine), no traceback, nothing written outside the run directory or the given --out, each
command in under 5 s; the big-input cases also run in a subprocess whose address space is
capped at 2 GiB above what the imports take.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from evofool.archive_store import load_archive, png_name, save_archive
from evofool.checkpoint import remove_stale_temporaries
from evofool.cli import main
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.render import save_genome_json
from evofool.runner import run_experiment
from evofool.run_data import log_prefix
from conftest import REPO, direct_and_cppn_runs, edit_arrays, small_experiment

SECRET = "evofool-secret-7f3a9c"  # the content of files outside the run that must not leak
SECONDS = 5.0
GIB = 1 << 30


# --- the runs, and how a case is laid out ---------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished direct and CPPN MAP-Elites run (never modified: cases work on copies)."""
    return direct_and_cppn_runs(tmp_path_factory.mktemp("pristine"), 3)


@dataclass
class Layout:
    """One case's folder: the tampered copy ``run``, the commands' ``out`` folder, files
    ``outside`` both that must stay untouched, and ``genome`` (a genome JSON file)."""

    root: Path
    pristine: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    @property
    def genome(self) -> Path:
        return self.root / "run" / "genome.json"

    @property
    def archive_json(self) -> Path:
        return self.run / "archive" / "archive.json"

    @property
    def elites(self) -> Path:
        return self.run / "archive" / "elites.npz"


def make_layout(root: Path, pristine: Path, genome_file: bool = True) -> Layout:
    layout = Layout(root, pristine)
    shutil.copytree(pristine, layout.run, symlinks=True)
    layout.outside.mkdir()
    (layout.outside / "key.txt").write_text(SECRET)
    (layout.outside / "victim.txt").write_text(SECRET)
    (root / "key.txt").write_text(SECRET)
    if genome_file:  # the run's class-0 elite, as 'archive export --genomes' writes it
        archive, genome_type, content = load_archive(layout.run)
        save_genome_json(layout.genome, genome_type, content["genome"]["type"],
                         content["genome"], archive.genomes[0])
    return layout


def snapshot(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple]:
    """Every entry below ``root`` outside ``skip``: kind, and content digest for files."""
    found = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        if path.is_symlink():
            found[str(path)] = ("link", os.readlink(path))
        elif path.is_file():
            found[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            found[str(path)] = ("dir",)
    return found


# --- crafting helpers -----------------------------------------------------------------------

def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def set_row(cls: int, key: str, value) -> Callable[[Layout], None]:
    return lambda c: edit_json(c.archive_json, lambda d: d["classes"][cls].__setitem__(key, value))


def set_key(key: str, value) -> Callable[[Layout], None]:
    return lambda c: edit_json(c.archive_json, lambda d: d.__setitem__(key, value))


def npy(shape, dtype, data: bytes = b"") -> bytes:
    """A .npy member whose header declares ``shape`` (the data may be missing)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": tuple(shape)})
    return buffer.getvalue() + data


def npy_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def rewrite_npz(path: Path, members: dict[str, bytes | None]) -> None:
    """Replace (or with None drop) members of a zip, keeping the others."""
    with zipfile.ZipFile(path) as old:
        kept = {name: old.read(name) for name in old.namelist()}
    for name, data in members.items():
        if data is None:
            kept.pop(name, None)
        else:
            kept[name] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
        for name, data in kept.items():
            new.writestr(name, data)


def edit_state(change: Callable[[dict], object]) -> Callable[[Layout], None]:
    def tamper(c: Layout) -> None:
        def inner(arrays: dict) -> None:
            state = json.loads(str(arrays["state"]))
            change(state)
            arrays["state"] = np.array(json.dumps(state))
        edit_arrays(c.run / "checkpoint.npz", inner)
    return tamper


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def write(relative: str, content: str | bytes) -> Callable[[Layout], None]:
    def tamper(c: Layout) -> None:
        path = c.run / relative
        path.unlink()
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return tamper


def sparse(relative: str, size: int) -> Callable[[Layout], None]:
    """Replace a file by a sparse one of ``size`` bytes (instant, no disk used)."""
    def tamper(c: Layout) -> None:
        path = c.run / relative
        path.unlink()
        with open(path, "wb") as handle:
            handle.truncate(size)
    return tamper


def append_log(line: bytes) -> Callable[[Layout], None]:
    def tamper(c: Layout) -> None:
        log = c.run / "log.jsonl"
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(lines[:1]) + line + b"".join(lines[1:]))
    return tamper


def edit_log(change: Callable[[dict], object]) -> Callable[[Layout], None]:
    def tamper(c: Layout) -> None:
        log = c.run / "log.jsonl"
        records = [json.loads(line) for line in log.read_text().splitlines()]
        change(records[1])
        log.write_text("".join(json.dumps(r) + "\n" for r in records))
    return tamper


def edit_config(text: str) -> Callable[[Layout], None]:
    return write("config.yaml", text)


def set_config(change: Callable[[str], str]) -> Callable[[Layout], None]:
    def tamper(c: Layout) -> None:
        path = c.run / "config.yaml"
        path.write_text(change(path.read_text()))
    return tamper


def set_graph(text: str) -> Callable[[Layout], None]:
    """Replace the first packed CPPN genome of elites.npz by ``text``."""
    def tamper(c: Layout) -> None:
        def inner(arrays: dict) -> None:
            graphs = [str(t) for t in arrays["genome.graphs"]]
            graphs[0] = text
            arrays["genome.graphs"] = np.array(graphs)
        edit_arrays(c.elites, inner)
    return tamper


def set_genome_data(change: Callable[[dict], object]) -> Callable[[Layout], None]:
    return lambda c: edit_json(c.genome, change)


def huge_graph(nodes: int) -> dict:
    return {"directed": True, "multigraph": False, "graph": {},
            "nodes": [{"id": "x", "kind": "input"}, {"id": "y", "kind": "input"},
                      {"id": "d", "kind": "input"}, {"id": "bias", "kind": "input"},
                      {"id": "out0", "kind": "output", "activation": "sine"}]
            + [{"id": f"h{i}", "kind": "hidden", "activation": "sine"} for i in range(nodes)],
            "edges": [{"source": "x", "target": "out0", "weight": 1.0}]}


def rename_class(cls: int, name: str) -> Callable[[Layout], None]:
    """A consistent archive whose class ``cls`` is called ``name`` (PNG renamed too)."""
    def tamper(c: Layout) -> None:
        content = json.loads(c.archive_json.read_text())
        old = c.run / "archive" / content["classes"][cls]["png"]
        content["class_names"][cls] = name
        content["classes"][cls]["name"] = name
        content["classes"][cls]["png"] = png_name(content["class_ids"][cls], name)
        old.rename(c.run / "archive" / content["classes"][cls]["png"])
        c.archive_json.write_text(json.dumps(content))
    return tamper


def link(relative: str, target: Callable[[Layout], Path]) -> Callable[[Layout], None]:
    def tamper(c: Layout) -> None:
        path = c.run / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.symlink_to(target(c))
    return tamper


def both(*tampers: Callable[[Layout], None]) -> Callable[[Layout], None]:
    def tamper(c: Layout) -> None:
        for t in tampers:
            t(c)
    return tamper


# --- what each case checks ------------------------------------------------------------------

def report_escapes(c: Layout) -> None:
    page = (c.run / "report" / "index.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page or "&lt;img" in page
    assert page.count("<script>") == 1  # the page's own script only


def no_secret_anywhere(c: Layout) -> None:
    for folder in (c.out, c.run / "report"):
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path


def summary_rebuilt(c: Layout) -> None:
    _, _, content = load_archive(c.run)
    assert content["summary"]["median"] == load_archive(c.pristine)[2]["summary"]["median"]


def victim_untouched(c: Layout) -> None:
    assert (c.outside / "victim.txt").read_text() == SECRET
    assert (c.run / "report" / "img").is_dir()
    assert not (c.run / "report" / "img" / "class_0000_0.png").is_symlink()


def png_confidence_empty(c: Layout) -> None:
    _, _, content = load_archive(c.run)
    assert content["classes"][0]["png_confidence"] is None
    assert "NaN" not in json.dumps(content)


def temporaries_removed(c: Layout) -> None:
    removed = remove_stale_temporaries(c.run)
    assert sorted(p.name for p in removed) == [".archive.json.ab12cd34.tmp",
                                               ".checkpoint.npz.zz99yy88.tmp"]
    assert (c.run / ".keep.tmp").exists() and (c.outside / ".x.abcdefgh.tmp").exists()


def temporaries(c: Layout) -> None:
    (c.run / "archive" / ".archive.json.ab12cd34.tmp").write_text(deep_json())
    (c.run / ".checkpoint.npz.zz99yy88.tmp").write_bytes(b"PK\x03\x04 half")
    (c.run / ".keep.tmp").write_text("not ours")
    (c.outside / ".x.abcdefgh.tmp").write_text(SECRET)


COMMANDS: dict[str, Callable[[Layout], list]] = {
    "show": lambda c: ["archive", "show", c.run],
    "export": lambda c: ["archive", "export", c.run, "--out", c.out / "export", "--genomes"],
    "render": lambda c: ["render", c.run, "--size", "32", "--out", c.out / "render"],
    "render1": lambda c: ["render", c.run, "--class", "0", "--size", "32", "--out",
                          c.out / "one.png"],
    "report": lambda c: ["report", c.run],
    "compare": lambda c: ["compare", c.run, c.pristine],
    "rescore": lambda c: ["rescore", c.run, "--model", "lenet-mnist", "--device", "cpu",
                          "--out", c.out / "rescore"],
    "transfer": lambda c: ["transfer", c.run, "--model", "lenet-mnist", "--device", "cpu",
                           "--out", c.out / "transfer"],
    "resume": lambda c: ["run", "--resume", c.run],
    "file": lambda c: ["render", c.genome, "--size", "32", "--out", c.out / "genome.png"],
    "big": lambda c: ["render", c.run, "--class", "0", "--size", "100000", "--out",
                      c.out / "big.png"],
    "big_file": lambda c: ["render", c.genome, "--size", "9000", "--out", c.out / "big.png"],
}
ARCHIVE = ("show", "export", "render", "report", "compare")  # every archive reader
RUN = ("report", "compare", "transfer")                      # readers of the whole run


@dataclass
class Case:
    tamper: Callable[[Layout], None]
    commands: tuple[str, ...]
    fragments: tuple[str, ...] = ()     # in every error line (file, field, what is expected)
    ok: bool = False                    # fine input: exit 0 and ``check`` passes
    check: Callable[[Layout], None] | None = None
    genome: str = "direct"
    memory: bool = False                # also in a subprocess with RLIMIT_AS


CASES: dict[str, Case] = {
    # report: names and paths from the artifact
    "png path ../../../key.txt": Case(set_row(3, "png", "../../../key.txt"), ARCHIVE,
                                      ("archive.json", "classes[3].png", "class_0003_3.png"),
                                      check=no_secret_anywhere),
    "png path into a folder outside": Case(set_row(3, "png", "../../outside/key.txt"), ARCHIVE,
                                           ("archive.json", "classes[3].png"),
                                           check=no_secret_anywhere),
    "png path /etc/passwd": Case(set_row(1, "png", "/etc/passwd"), ARCHIVE,
                                 ("archive.json", "classes[1].png")),
    "png path ../": Case(set_row(1, "png", "../"), ARCHIVE, ("archive.json", "classes[1].png")),
    "png a number": Case(set_row(2, "png", 5), ARCHIVE,
                         ("archive.json", "classes[2].png", "number 5")),
    "png a symbolic link to a secret": Case(
        link("archive/class_0004_4.png", lambda c: c.outside / "key.txt"), ("report",),
        ("class_0004_4.png", "symbolic link"), check=no_secret_anywhere),
    "png not a PNG": Case(write("archive/class_0004_4.png", "<script>alert(1)</script>"),
                          ("report",), ("class_0004_4.png", "not a PNG")),
    "png a directory": Case(lambda c: ((c.run / "archive/class_0004_4.png").unlink(),
                                       (c.run / "archive/class_0004_4.png").mkdir()),
                            ("report",), ("class_0004_4.png", "not a regular file")),
    "class name with a script": Case(rename_class(2, "<script>alert(1)</script>"),
                                     ("show", "export", "render", "report"), ok=True,
                                     check=report_escapes),
    "class id a script": Case(lambda c: edit_json(c.archive_json, lambda d: d["class_ids"]
                                                  .__setitem__(1, "<script>")),
                              ARCHIVE, ("archive.json", "class_ids[1]", "class id")),
    "config name with a script": Case(set_config(
        lambda t: t.replace("name: tiny", "name: '</pre><script>alert(1)</script>'")),
        ("report",), ok=True, check=report_escapes),
    "run.json device with markup": Case(lambda c: edit_json(
        c.run / "run.json", lambda d: d.__setitem__("device", "<img src=x onerror=alert(1)>")),
        ("report",), ok=True, check=report_escapes),
    "report folder a link outside": Case(link("report", lambda c: c.outside), ("report",),
                                         ("report", "symbolic link")),
    "report image a link to a victim file": Case(
        lambda c: ((c.run / "report" / "img").mkdir(parents=True),
                   (c.run / "report" / "img" / "class_0000_0.png").symlink_to(
                       c.outside / "victim.txt")),
        ("report",), ok=True, check=victim_untouched),
    "archive folder a link outside the run": Case(
        lambda c: (shutil.move(c.run / "archive", c.outside / "archive"),
                   (c.run / "archive").symlink_to(c.outside / "archive")),
        ("report",), ("archive", "outside the run directory")),
    # unbounded inputs
    "a million class names": Case(lambda c: edit_json(c.archive_json, lambda d: d.update(
        class_names=[str(i) for i in range(10 ** 6)], class_ids=list(range(10 ** 6)))),
        ARCHIVE, ("archive.json", "class_names", "1,000,000", "100,000"), memory=True),
    "probabilities declared 10^6 x 10^6": Case(lambda c: rewrite_npz(
        c.elites, {"probabilities.npy": npy((10 ** 6, 10 ** 6), "f8", b"\0" * 64)}),
        ARCHIVE, ("elites.npz", "probabilities")),
    "genome array declared 8 GB": Case(lambda c: rewrite_npz(
        c.elites, {"genome.pixels.npy": npy((10 ** 6, 1, 32, 32), "f8", b"\0" * 64)}),
        ARCHIVE, ("elites.npz", "more than 4 GiB"), memory=True),
    "a million CPPN nodes in a genome file": Case(
        set_genome_data(lambda d: d.__setitem__("genome_data", huge_graph(10 ** 6))),
        ("file",), ("genome.json", "1,000,005 nodes", "at most 100,000 nodes"), genome="cppn",
        memory=True),
    "200,000 CPPN nodes in an archive": Case(set_graph(json.dumps(huge_graph(200_000))),
                                             ("show", "render", "report"),
                                             ("elites.npz", "cppn genome 0", "100,000 nodes"),
                                             genome="cppn"),
    "render --size 100000": Case(lambda c: None, ("big",), ("size 100000", "at most 8192"),
                                 memory=True),
    "render a genome file at 9000 px": Case(lambda c: None, ("big_file",), ("size 9000",)),
    "genome image 100000 x 100000": Case(lambda c: edit_json(c.archive_json, lambda d: d[
        "image"].__setitem__("size", [100_000, 100_000])), ARCHIVE,
        ("archive.json", "image.size", "1,024")),
    "archive.json nested 10^5 deep": Case(write("archive/archive.json", deep_json()),
                                          ARCHIVE + ("rescore", "transfer"),
                                          ("archive.json", "nested too deeply")),
    "genome file nested 10^5 deep": Case(write("genome.json", deep_json()), ("file",),
                                         ("genome.json", "nested too deeply")),
    "genome_data nested 10^5 deep": Case(write("genome.json", '{"format_version": 2, '
                                               '"genome": {"type": "direct"}, "image": '
                                               '{"channels": 1, "size": [28, 28]}, '
                                               '"genome_data": ' + deep_json() + "}"),
                                         ("file",), ("genome.json", "nested too deeply")),
    "log line nested 10^5 deep": Case(append_log(deep_json().encode() + b"\n"), RUN,
                                      ("log.jsonl", "line 2", "nested too deeply")),
    "run.json nested 10^5 deep": Case(write("run.json", deep_json()), RUN,
                                      ("run.json", "nested too deeply")),
    "config.yaml nested 10^5 deep": Case(edit_config("a: " + deep_json()), RUN,
                                         ("config.yaml",)),
    "CPPN genome text nested 10^5 deep": Case(set_graph(deep_json()),
                                              ("show", "render", "report"),
                                              ("elites.npz", "cppn genome 0", "nested"),
                                              genome="cppn"),
    "archive.json of 300 MB": Case(sparse("archive/archive.json", 300 << 20), ARCHIVE,
                                   ("archive.json", "314,572,800 bytes", "256 MiB")),
    "genome file a FIFO": Case(lambda c: (c.genome.unlink(), os.mkfifo(c.genome)), ("file",),
                               ("genome.json", "not a regular file")),
    "genome file of 100 MB": Case(sparse("genome.json", 100 << 20), ("file",),
                                  ("genome.json", "64 MiB")),
    "log line of 65 MB": Case(sparse("log.jsonl", 65 << 20), RUN, ("log.jsonl", "too long")),
    "run.json of 10 MB": Case(sparse("run.json", 10 << 20), ("report",),
                              ("run.json", "4 MiB")),
    # malformed records
    "log line a number": Case(append_log(b"42\n"), RUN,
                              ("log.jsonl", "line 2", "number 42", "JSON object")),
    "log line a list": Case(append_log(b"[1, 2]\n"), RUN,
                            ("log.jsonl", "line 2", "a list", "JSON object")),
    "log line not UTF-8": Case(append_log(b'{"generation": "\xff\xfe"}\n'), RUN,
                               ("log.jsonl", "line 2", "UTF-8")),
    "log.jsonl a directory": Case(lambda c: ((c.run / "log.jsonl").unlink(),
                                             (c.run / "log.jsonl").mkdir()),
                                  RUN, ("log.jsonl", "directory")),
    "log.jsonl a FIFO": Case(lambda c: ((c.run / "log.jsonl").unlink(),
                                        os.mkfifo(c.run / "log.jsonl")),
                             RUN, ("log.jsonl", "not a regular file")),
    "log best of the wrong length": Case(edit_log(lambda r: r.__setitem__("best", [0.5])),
                                         RUN, ("log.jsonl", "line 2", "best", "10")),
    "log evaluations negative": Case(edit_log(lambda r: r.__setitem__("evaluations", -3)),
                                     RUN, ("log.jsonl", "line 2", "evaluations", ">= 0")),
    "log best holding strings": Case(edit_log(lambda r: r["best"].__setitem__(0, "x")),
                                     RUN, ("log.jsonl", "line 2", "best", "string")),
    "class row a string": Case(lambda c: edit_json(c.archive_json, lambda d: d["classes"]
                                                   .__setitem__(4, "oops")),
                               ARCHIVE, ("archive.json", "classes[4]", "an object")),
    "png_confidence a string": Case(set_row(5, "png_confidence", "high"), ARCHIVE,
                                    ("archive.json", "classes[5].png_confidence", "number")),
    "class row of another class": Case(set_row(5, "class", 6), ARCHIVE,
                                       ("archive.json", "classes[5].class", "expected 5")),
    "confidence a string": Case(set_row(5, "confidence", "0.99"), ARCHIVE,
                                ("archive.json", "classes[5].confidence", "number")),
    "generation negative": Case(set_row(5, "generation", -1), ARCHIVE,
                                ("archive.json", "classes[5].generation", ">= 0")),
    "class_names not strings": Case(lambda c: edit_json(c.archive_json, lambda d: d[
        "class_names"].__setitem__(6, 6)), ARCHIVE, ("archive.json", "class_names[6]",
                                                      "a string")),
    "class_names with terminal escapes": Case(rename_class(6, "six\x1b[2J\x1b]0;owned\x07"),
                                              ARCHIVE, ("archive.json", "class_names[6]",
                                                        "printable")),
    "class_ids of the wrong length": Case(set_key("class_ids", [0, 1, 2]), ARCHIVE,
                                          ("archive.json", "class_ids", "10 class ids")),
    "class_ids negative": Case(lambda c: edit_json(c.archive_json, lambda d: d["class_ids"]
                                                   .__setitem__(0, -1)),
                               ARCHIVE, ("archive.json", "class_ids[0]", ">= 0")),
    "class_ids repeated": Case(lambda c: edit_json(c.archive_json, lambda d: d["class_ids"]
                                                   .__setitem__(1, 0)),
                               ARCHIVE, ("archive.json", "class_ids", "distinct")),
    "archive.json a list": Case(write("archive/archive.json", "[1, 2, 3]"), ARCHIVE,
                                ("archive.json", "a list", "object")),
    "format_version 99": Case(set_key("format_version", 99), ARCHIVE,
                              ("archive.json", "format_version", "number 99")),
    "genome type a number": Case(lambda c: edit_json(c.archive_json, lambda d: d[
        "genome"].__setitem__("type", 7)), ARCHIVE, ("archive.json", "genome.type")),
    "genome key with a newline": Case(lambda c: edit_json(c.archive_json, lambda d: d[
        "genome"].__setitem__("a\nb", 1)), ARCHIVE, ("archive.json", "genome", "'a\\nb'")),
    "genome size a million": Case(lambda c: edit_json(c.archive_json, lambda d: d[
        "genome"].__setitem__("size", 10 ** 6)), ARCHIVE, ("archive.json", "genome.size")),
    "image channels 2": Case(lambda c: edit_json(c.archive_json, lambda d: d[
        "image"].__setitem__("channels", 2)), ARCHIVE, ("archive.json", "image.channels",
                                                         "1 or 3")),
    "summary of the wrong types": Case(set_key("summary", {"median": "x", "filled": []}),
                                       ("show", "report"), ok=True, check=summary_rebuilt),
    "run.json a list": Case(write("run.json", "[]"), ("report",), ("run.json", "a list")),
    "run.json wall time a string": Case(lambda c: edit_json(
        c.run / "run.json", lambda d: d.__setitem__("wall_time_s", "long")),
        ("report",), ("run.json", "wall_time_s", "string", ">= 0")),
    "config.yaml a list": Case(edit_config("- 1\n- 2\n"), RUN, ("config.yaml", "a list",
                                                                 "mapping")),
    "config.yaml malformed": Case(edit_config("genome: {type: direct\n"), RUN,
                                  ("config.yaml", "malformed YAML")),
    "config.yaml genome a list": Case(set_config(
        lambda t: "genome: [1, 2]\n" + "\n".join(
            line for line in t.splitlines() if not line.startswith(("genome:", "  ")))),
        RUN, ("config.yaml", "genome", "mapping")),
    "elites.npz holding a pickle": Case(lambda c: rewrite_npz(c.elites, {
        "genome.pixels.npy": npy_of(np.array([{"a": 1}], dtype=object))}),
        ARCHIVE, ("elites.npz", "pickle")),
    "elites.npz with a member that is no array": Case(lambda c: rewrite_npz(c.elites, {
        "notes.txt": b"hello" * 1000}), ARCHIVE, ("elites.npz", "notes.txt", ".npy")),
    "elites.npz probabilities of the wrong shape": Case(lambda c: edit_arrays(c.elites, lambda a:
        a.__setitem__("probabilities", np.zeros((10, 11)))), ARCHIVE,
        ("elites.npz", "'probabilities' has shape (10, 11), expected (10, 10)")),
    "elites.npz cut short": Case(lambda c: c.elites.write_bytes(c.elites.read_bytes()[:300]),
                                 ARCHIVE, ("elites.npz", "corrupted")),
    "elites.npz missing": Case(lambda c: c.elites.unlink(), ARCHIVE,
                               ("elites.npz", "does not exist")),
    "elites.npz confidence NaN": Case(lambda c: edit_arrays(c.elites, lambda a: a[
        "confidence"].__setitem__(0, np.nan)), ARCHIVE, ("elites.npz", "confidence", "NaN")),
    "elites.npz generation negative": Case(lambda c: edit_arrays(c.elites, lambda a: a[
        "generation"].__setitem__(0, -7)), ARCHIVE, ("elites.npz", "generation")),
    "elites.npz probabilities as strings": Case(lambda c: edit_arrays(c.elites, lambda a: a.
        __setitem__("probabilities", a["probabilities"].astype(str))), ARCHIVE,
        ("elites.npz", "probabilities", "dtype")),
    "CPPN weight an integer of 400 digits": Case(
        set_genome_data(lambda d: d["genome_data"]["edges"][0].__setitem__("weight", 10 ** 400)),
        ("file",), ("genome.json",), genome="cppn"),
    "CPPN activation a list": Case(
        set_genome_data(lambda d: d["genome_data"]["nodes"][4].__setitem__("activation", [1])),
        ("file",), ("genome.json", "activation"), genome="cppn"),
    "CPPN node id of a megabyte": Case(
        set_genome_data(lambda d: d["genome_data"]["nodes"].append(
            {"id": "h" * 10 ** 6, "kind": "hidden", "activation": "sine"})),
        ("file",), ("genome.json", "1,000,000 characters"), genome="cppn"),
    "genome file image a string": Case(set_genome_data(lambda d: d.__setitem__("image", "big")),
                                       ("file",), ("genome.json", "image", "object")),
    "direct genome data with a subarray dtype": Case(set_genome_data(lambda d: d[
        "genome_data"]["pixels"].__setitem__("dtype", "(1000000000,)f8")), ("file",),
        ("genome.json", "dtype")),
    # checkpoints (run --resume)
    "checkpoint steps -5": Case(edit_state(lambda s: s.__setitem__("steps", -5)), ("resume",),
                                ("checkpoint.npz", "steps", ">= 0")),
    "checkpoint evaluations 'x'": Case(edit_state(lambda s: s.__setitem__("evaluations", "x")),
                                       ("resume",), ("checkpoint.npz", "evaluations", "'x'")),
    "checkpoint rng state out of range": Case(edit_state(
        lambda s: s["numpy_rng"]["state"].__setitem__("state", 2 ** 300)),
        ("resume",), ("checkpoint.npz", "numpy_rng", "PCG64")),
    "checkpoint python random state too short": Case(edit_state(
        lambda s: s.__setitem__("python_random", [3, [1, 2, 3], None])),
        ("resume",), ("checkpoint.npz", "python_random")),
    "checkpoint state empty": Case(edit_state(lambda s: s.clear()), ("resume",),
                                    ("checkpoint.npz", "format version")),
    "checkpoint state nested 10^5 deep": Case(lambda c: edit_arrays(
        c.run / "checkpoint.npz", lambda a: a.__setitem__("state", np.array(deep_json()))),
        ("resume",), ("checkpoint.npz", "nested too deeply")),
    "checkpoint probabilities of the wrong shape": Case(lambda c: rewrite_npz(
        c.run / "checkpoint.npz", {"archive.probabilities.npy": npy((10, 3), "f8")}),
        ("resume",), ("checkpoint.npz", "'archive.probabilities' has shape (10, 3)")),
    "checkpoint state a number array": Case(lambda c: edit_arrays(
        c.run / "checkpoint.npz", lambda a: a.__setitem__("state", np.arange(3))),
        ("resume",), ("checkpoint.npz", "'state'", "JSON text")),
    "checkpoint probabilities declared 10^6 x 10^6": Case(lambda c: rewrite_npz(
        c.run / "checkpoint.npz", {"archive.probabilities.npy": npy((10 ** 6, 10 ** 6), "f8")}),
        ("resume",), ("checkpoint.npz", "probabilities")),
    # fine inputs that look odd
    "log with a partial last line (a killed run)": Case(
        lambda c: open(c.run / "log.jsonl", "ab").write(b'{"step": 9, "generat'),
        ("report", "compare"), ok=True),
    "stale temporaries beside the files": Case(temporaries, ARCHIVE, ok=True,
                                               check=temporaries_removed),
    "NaN png_confidence literal (older archive)": Case(set_row(0, "png_confidence", math.nan),
                                                       ("show", "report"), ok=True,
                                                       check=png_confidence_empty),
}


def run_command(capsys, args: list) -> tuple[int, str, str, float]:
    started = time.perf_counter()
    code = main([str(a) for a in args])
    seconds = time.perf_counter() - started
    captured = capsys.readouterr()
    return code, captured.out, captured.err, seconds


def assert_one_line_error(code: int, err: str, fragments: tuple[str, ...], what: str) -> None:
    assert code != 0, f"{what}: exit 0"
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("evofool: error: "), f"{what}: {err!r}"
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{what}: {fragment!r} not in {err!r}"


@pytest.mark.parametrize("name", list(CASES))
def test_a_crafted_artifact_is_refused_in_one_line_or_read_correctly(name, runs, tmp_path,
                                                                     capsys):
    case = CASES[name]
    layout = make_layout(tmp_path, runs[case.genome],
                         genome_file=any(c.startswith(("file", "big_file")) for c in case.commands))
    capsys.readouterr()
    case.tamper(layout)
    before = snapshot(tmp_path, (layout.run, layout.out))
    cwd_before = sorted(os.listdir(Path.cwd()))
    for command in case.commands:
        args = COMMANDS[command](layout)
        code, _, err, seconds = run_command(capsys, args)
        what = f"{name} / {command}"
        if case.ok:
            assert code == 0 and err == "", f"{what}: {code} {err!r}"
        else:
            assert_one_line_error(code, err, case.fragments, what)
        assert seconds < SECONDS, f"{what} took {seconds:.1f} s"
    assert snapshot(tmp_path, (layout.run, layout.out)) == before, "written outside"
    assert sorted(os.listdir(Path.cwd())) == cwd_before
    if case.check is not None:
        case.check(layout)


def test_resume_keeps_the_log_lines_before_its_step_and_stops_at_a_bad_one(runs, tmp_path):
    """What ``JsonLinesLog.truncate`` keeps (evofool.run_data.log_prefix): bounded, no
    traceback on bytes that are not UTF-8 or lines that are not objects."""
    log = tmp_path / "log.jsonl"
    lines = (runs["direct"] / "log.jsonl").read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:2]) + b'{"a": "\xff"}\n' + b"".join(lines[2:]))
    assert [json.loads(line)["step"] for line in log_prefix(log, 10)] == [0, 1]
    log.write_bytes(b"".join(lines[:2]) + b"[1]\n")
    assert len(log_prefix(log, 10)) == 2
    log.write_bytes(b"".join(lines))
    assert len(log_prefix(log, 2)) == 2 and len(log_prefix(log, 100)) == len(lines)
    assert log_prefix(tmp_path / "absent.jsonl", 5) == []
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(EvofoolError, match="is a directory"):
        log_prefix(tmp_path / "dir.jsonl", 5)


# --- memory: the big inputs in a process whose address space is capped ----------------------

LIMITED = r"""
import json, resource, sys, time
sys.path[:0] = json.loads(sys.argv[2])
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import evofool.cli, evofool.report, evofool.render, evofool.compare, evofool.transfer
def address_space():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
limit = address_space() + int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
results = []
for args in json.loads(sys.argv[1]):
    started = time.perf_counter()
    code = evofool.cli.main(args)
    results.append({"code": code, "seconds": time.perf_counter() - started})
    sys.stderr.write("\n@@end@@\n")
    sys.stderr.flush()
print(json.dumps(results))
"""


@pytest.mark.long
def test_big_inputs_are_refused_within_2_gib_of_memory(runs, tmp_path):
    """Every memory case, in one process (a process per case would mostly import torch)."""
    jobs = []  # (case name, command name, argv)
    for name, case in CASES.items():
        if not case.memory:
            continue
        layout = make_layout(tmp_path / name.replace("/", "_"), runs[case.genome],
                             genome_file=any(c.startswith(("file", "big_file"))
                                             for c in case.commands))
        case.tamper(layout)
        jobs += [(name, command, [str(a) for a in COMMANDS[command](layout)])
                 for command in case.commands]
    paths = [str(REPO / "tests"), str(REPO)]
    result = subprocess.run([sys.executable, "-c", LIMITED, json.dumps([j[2] for j in jobs]),
                             json.dumps(paths), str(2 * GIB)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    errors = result.stderr.split("\n@@end@@\n")[:len(jobs)]
    assert len(outcomes) == len(jobs) >= 4
    for (name, command, _), outcome, err in zip(jobs, outcomes, errors):
        assert_one_line_error(outcome["code"], err.strip("\n") + "\n", CASES[name].fragments,
                              f"{name} / {command} (memory-capped)")
        assert outcome["seconds"] < SECONDS, f"{name} / {command}: {outcome['seconds']:.1f} s"


# --- code named by an artifact is never imported without --trust ---------------------------

SENTINEL_MODULE = '''
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the artifact's code ran")
'''


@pytest.mark.parametrize("where", ["archive.json", "genome file"])
def test_no_module_that_an_artifact_names_is_imported_without_trust(where, runs, tmp_path,
                                                                     capsys, monkeypatch):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "evofool_sentinel_payload.py").write_text(SENTINEL_MODULE)
    monkeypatch.syspath_prepend(str(modules))
    layout = make_layout(tmp_path, runs["direct"])
    capsys.readouterr()
    name = "evofool_sentinel_payload:X"
    if where == "archive.json":
        edit_json(layout.archive_json, lambda d: d["genome"].__setitem__("type", name))
        commands = ["show", "export", "render", "render1", "report", "compare", "transfer"]
    else:
        edit_json(layout.genome, lambda d: d["genome"].__setitem__("type", name))
        commands = ["file"]
    for command in commands:
        code, _, err, _ = run_command(capsys, COMMANDS[command](layout))
        assert_one_line_error(code, err, ("--trust", name), f"{where} / {command}")
    assert not (modules / "IMPORTED").exists()
    assert "evofool_sentinel_payload" not in sys.modules


# --- NaN scores: the archive still saves as valid JSON and loads ----------------------------

class NanTarget:
    """Scores every image NaN (a broken model, fp16 overflow)."""

    def scores(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full((len(images), 10), float("nan"), dtype=torch.float64)


def test_an_archive_saved_when_the_png_scores_were_nan_is_valid_json_and_loads(
        runs, tmp_path, capsys):
    layout = make_layout(tmp_path, runs["direct"])
    archive, genome_type, content = load_archive(layout.run)
    meta = {key: content[key] for key in ("genome", "model", "generation", "evaluations")}
    saved = save_archive(layout.run / "archive", archive, genome_type, meta, NanTarget())
    text = layout.archive_json.read_text()
    json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in archive.json"))
    assert all(row["png_confidence"] is None for row in saved["classes"])
    capsys.readouterr()
    for command in ("show", "export", "render", "report", "compare"):
        code, out, err, _ = run_command(capsys, COMMANDS[command](layout))
        assert code == 0 and err == "", (command, err)
    assert load_archive(layout.run)[2]["classes"][0]["png_confidence"] is None


def test_a_crafted_milestone_array_is_refused_in_one_line(tmp_path, capsys):
    """archive/elites.npz with a 'reached' array of the wrong shape or below -1."""
    from evofool.cli import main as cli

    run_dir = run_experiment(load_experiment(small_experiment(
        tmp_path, budget={"generations": 1}))).run_dir
    npz = run_dir / "archive" / "elites.npz"
    arrays = dict(np.load(npz))
    for bad in (np.zeros((10, 3), dtype=np.int64), np.full((10, 4), -5, dtype=np.int64)):
        np.savez(npz, **{**arrays, "reached": bad})
        assert cli(["archive", "show", str(run_dir)]) != 0
        err = capsys.readouterr().err.strip()
        assert "'reached'" in err and len(err.splitlines()) == 1
