"""``evofool compare RUN_A RUN_B``: two runs' archives side by side, class by class
(e.g. direct vs CPPN encoding on the same target)."""
from __future__ import annotations

from pathlib import Path

from evofool.errors import EvofoolError
from evofool.run_data import read_run


def compare_runs(run_a: str | Path, run_b: str | Path) -> list[dict]:
    """Per class: each run's elite confidence and the generation it was found."""
    a, b = read_run(run_a), read_run(run_b)  # each checked: see evofool.run_data
    if (a.archive.class_names != b.archive.class_names
            or a.archive.class_ids != b.archive.class_ids):
        raise EvofoolError(f"'{run_a}' and '{run_b}' have different classes; compare runs on "
                           "the same model")
    rows = []
    for row_a, row_b in zip(a.archive.rows(), b.archive.rows()):
        rows.append({"class": row_a.cls, "name": row_a.name,
                     "confidence_a": row_a.confidence, "generation_a": row_a.generation,
                     "evaluations_a": row_a.evaluations,
                     "confidence_b": row_b.confidence, "generation_b": row_b.generation,
                     "evaluations_b": row_b.evaluations})
    return rows
