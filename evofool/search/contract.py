"""A contract test that any search algorithm (built in or plugin) can run against itself.

    from evofool.search.contract import check_algorithm
    check_algorithm(MyAlgorithm)          # raises AssertionError on a broken contract

It drives the algorithm on small direct-pixel genomes and a made-up scorer (no model), the
way a run does: ask -> score through the toolbox -> tell, checkpoints through npz and JSON.
"""
from __future__ import annotations

import io
import json

import numpy as np

from evofool.genomes.direct import DirectGenome, DirectParams
from evofool.search.base import Budget, GenerationReport, SearchAlgorithm

CLASSES = ["a", "b", "c", "d"]


def made_up_scores(candidates: np.ndarray) -> np.ndarray:
    """Softmax over 4 classes of a few pixel statistics: deterministic, cheap, learnable."""
    flat = candidates.reshape(len(candidates), -1).astype(np.float64)
    half = flat.shape[1] // 2
    logits = np.stack([flat.mean(1), 1 - flat.mean(1), flat[:, :half].mean(1),
                       flat[:, half:].mean(1)], axis=1) * 12.0
    logits -= logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _build(cls: type[SearchAlgorithm], params, generations: int, seed: int) -> SearchAlgorithm:
    genome_type = DirectGenome(DirectParams(), 1, (6, 6))
    return cls(params if params is not None else cls.Params(), genome_type, list(CLASSES),
               Budget(generations=generations), seed, evaluate=made_up_scores, chunk_size=7)


def _through_files(state: tuple[dict, dict[str, np.ndarray]]) -> tuple[dict, dict]:
    """A checkpoint as a run writes it: JSON info, npz arrays without pickle."""
    info, arrays = state
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        return json.loads(json.dumps(info)), {k: npz[k] for k in npz.files}


def _same(a: np.ndarray, b: np.ndarray, genome_type) -> bool:
    return len(a) == len(b) and np.array_equal(genome_type.render(a).numpy(),
                                               genome_type.render(b).numpy())


def check_algorithm(cls: type[SearchAlgorithm], params=None, generations: int = 4,
                    seed: int = 0, max_steps: int = 200) -> None:
    """Exercise the ask/tell cycle, checkpoints and budget the engine relies on."""
    assert isinstance(cls, type) and issubclass(cls, SearchAlgorithm), \
        "an algorithm must subclass evofool.search.base.SearchAlgorithm"
    assert cls.name, "an algorithm needs a name"
    algorithm = _build(cls, params, generations, seed)
    genome_type = algorithm.genome_type

    before = json.dumps(_through_files(algorithm.state())[0])
    first = algorithm.ask()
    assert isinstance(first, np.ndarray) and len(first) > 0, \
        "ask() must return a non-empty population array"
    assert json.dumps(_through_files(algorithm.state())[0]) == before, \
        "ask() changed the saved state: counters and random streams may only advance in tell()"
    assert _same(algorithm.ask(), first, genome_type), \
        "ask() again before tell() must return the same candidates (a generation is all or nothing)"

    scores = algorithm.score(first)
    assert scores.shape == (len(first), len(CLASSES)), "score() must give (candidates, classes)"
    report = algorithm.tell(first, scores)
    assert isinstance(report, GenerationReport) and report.step == 0
    assert len(report.added.status) == len(first), "tell() must report a status per candidate"
    assert algorithm.steps == 1 and algorithm.evaluations == len(first)
    assert algorithm.archive.filled.any(), "the first scored batch must fill some cell"

    # NaN and inf scores never enter the archive
    candidates = algorithm.ask()
    confidence = algorithm.archive.confidence.copy()
    report = algorithm.tell(candidates, np.full((len(candidates), len(CLASSES)), np.nan))
    assert report.added.nonfinite == len(candidates) and not report.added.status.any()
    assert np.array_equal(algorithm.archive.confidence, confidence), "a NaN score entered"

    # a checkpoint restores a run that goes on exactly as the original
    restored = _build(cls, params, generations, seed + 1)
    restored.load_state(*_through_files(algorithm.state()))
    steps = 0
    while not algorithm.finished():
        assert steps < max_steps, f"not finished after {max_steps} steps of a " \
                                  f"{generations}-generation budget"
        assert not restored.finished(), "a restored algorithm disagrees about finishing"
        ours, theirs = algorithm.ask(), restored.ask()
        assert _same(ours, theirs, genome_type), \
            "after load_state(state()) the next ask() must give the same candidates"
        algorithm.tell(ours, algorithm.score(ours))
        restored.tell(theirs, restored.score(theirs))
        steps += 1
    assert restored.finished()
    assert algorithm.archive.rows() == restored.archive.rows(), \
        "a restored run must end with the same archive"
