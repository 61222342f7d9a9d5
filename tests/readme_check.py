"""Run the README's code, top to bottom, the way a newcomer would: ``python tests/readme_check.py``.

In a copy of the repository's tracked files (so nothing is written into the checkout):

- a code block whose first line is ``# NAME.ext`` (``# my_genomes.py``, ``# stripes.yaml``)
  is written to that file;
- every line of a ``bash`` block is run as a command (``\\`` continues a line, ``#`` starts a
  comment), and every other ``python`` block is run as a script. ``evofool run`` commands that
  start a run get ``budget.generations=3 log.progress=false`` appended (``evofool sweep``:
  ``budget.generations=3``), so the whole README takes a few minutes;
- ``pip`` and ``python -m venv`` lines are skipped: this environment is the installed one;
- ``<!-- readme-check: skip (why) -->`` right before a block skips it;
  ``<!-- readme-check: needs MNIST_DIR -->`` runs it with ``MNIST_DIR`` (a word, or after
  ``=``) replaced by
  ``$EVOFOOL_MNIST_DIR``, and skips it when that is unset.

Exit status 0 when every command that ran succeeded; skipped blocks are listed with why.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMALL_BUDGET = ["budget.generations=3", "log.progress=false"]
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*readme-check:\s*(.*?)\s*-->\s*$")
_FILE_NAME = re.compile(r"^# ([\w.-]+\.(?:py|yaml|yml|toml|json))\b")


@dataclass
class Block:
    language: str
    lines: list[str]
    marker: str      # the readme-check marker right before the block, or ""
    line_number: int

    @property
    def file_name(self) -> str | None:
        match = _FILE_NAME.match(self.lines[0]) if self.lines else None
        return match.group(1) if match else None


def code_blocks(markdown: str) -> list[Block]:
    blocks, current, marker = [], None, ""
    for number, line in enumerate(markdown.splitlines(), 1):
        fence = _FENCE.match(line)
        if current is not None:
            if line.startswith("```"):
                blocks.append(current)
                current, marker = None, ""
            else:
                current.lines.append(line)
        elif fence:
            current = Block(fence.group(1), [], marker, number)
        elif (found := _MARKER.match(line)) is not None:
            marker = found.group(1)
        elif line.strip():
            marker = ""  # a marker applies to the block right after it only
    return blocks


def commands(block: Block) -> list[list[str]]:
    """The block's commands as argument lists (continuations joined, comments dropped)."""
    joined, pending = [], ""
    for line in block.lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    found = []
    for text in joined:
        words = shlex.split(text, comments=True)
        if not words or words[0] == "pip" or words[1:3] == ["-m", "venv"]:
            continue
        if words[:2] == ["evofool", "run"] and "--resume" not in words:
            words += SMALL_BUDGET
        if words[:2] == ["evofool", "sweep"] and "--resume" not in words:
            words += SMALL_BUDGET[:1]
        found.append(words)
    return found


def run_readme(readme: Path, workdir: Path) -> tuple[list[str], list[str]]:
    """Run ``readme``'s code in ``workdir``; return (failures, skipped)."""
    failures, skipped = [], []
    mnist = os.environ.get("EVOFOOL_MNIST_DIR")
    for block in code_blocks(readme.read_text(encoding="utf-8")):
        where = f"{readme.name}:{block.line_number}"
        if block.marker.startswith("skip"):
            skipped.append(f"{where}: {block.marker}")
            continue
        if block.marker == "needs MNIST_DIR" and not mnist:
            skipped.append(f"{where}: needs the MNIST files (EVOFOOL_MNIST_DIR is unset)")
            continue
        if block.file_name:
            (workdir / block.file_name).write_text("\n".join(block.lines) + "\n")
            continue
        if block.language == "python":
            jobs = [[sys.executable, "-c", "\n".join(block.lines)]]
        elif block.language == "bash":
            jobs = [[re.sub(r"(?<!\w)MNIST_DIR\b", mnist, word) for word in words]
                    for words in commands(block)]
        else:
            continue
        for job in jobs:
            shown = shlex.join(job) if job[0] != sys.executable else f"python block at {where}"
            started = time.perf_counter()
            result = subprocess.run(job, cwd=workdir, capture_output=True, text=True)
            print(f"{'ok' if result.returncode == 0 else 'FAILED':>6}  "
                  f"{time.perf_counter() - started:5.1f} s  {shown}", flush=True)
            if result.returncode != 0:
                failures.append(f"{where}: {shown} exited {result.returncode}: "
                                f"{(result.stderr or result.stdout).strip()[-2000:]}")
    return failures, skipped


def copy_tracked_files(target: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="evofool-readme-") as folder:
        workdir = Path(folder)
        copy_tracked_files(workdir)
        failures, skipped = run_readme(REPO / "README.md", workdir)
    for line in skipped:
        print(f"  skipped  {line}")
    for line in failures:
        print(f"FAILED: {line}", file=sys.stderr)
    print(f"README check: {'failed' if failures else 'passed'} "
          f"({len(failures)} failures, {len(skipped)} blocks skipped)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
