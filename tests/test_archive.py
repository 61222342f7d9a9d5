"""The paper's archive rule: every child is offered to every class cell."""
import numpy as np

from evofool.search.archive import IMPROVED, NEW, NOT_ADDED, Archive
from evofool.genomes.direct import DirectGenome, DirectParams


def scores(*rows):
    return np.array(rows, dtype=np.float64)


def test_one_child_can_take_several_cells_at_once():
    archive = Archive(["a", "b", "c"])
    population = np.arange(2)[:, None].astype(np.float32)
    result = archive.add(population, scores([0.5, 0.4, 0.1], [0.2, 0.1, 0.7]), 0, 0)
    assert archive.genomes[:, 0].tolist() == [0, 0, 1]  # child 0 holds cells a and b
    assert result.status.tolist() == [NEW, NEW] and result.cells == 3
    assert archive.evaluations.tolist() == [1, 1, 2]
    assert archive.probabilities[1].tolist() == [0.5, 0.4, 0.1]


def test_champion_is_replaced_only_by_a_strictly_higher_confidence():
    archive = Archive(["a", "b"])
    archive.add(np.array([[0.0]]), scores([0.6, 0.4]), 0, 0)
    result = archive.add(np.array([[1.0], [2.0]]), scores([0.6, 0.4], [0.3, 0.7]), 1, 1)
    assert result.cells == 1 and result.status.tolist() == [NOT_ADDED, IMPROVED]
    assert archive.genomes[:, 0].tolist() == [0.0, 2.0]
    assert archive.generation.tolist() == [0, 1] and archive.evaluations.tolist() == [1, 3]


def test_among_tied_children_the_first_one_wins():
    archive = Archive(["a", "b"])
    archive.add(np.array([[5.0], [6.0]]), scores([0.9, 0.1], [0.9, 0.1]), 0, 0)
    assert archive.genomes[0, 0] == 5.0


def test_restricting_classes_leaves_other_cells_alone():
    archive = Archive(["a", "b"])
    archive.add(np.array([[1.0]]), scores([0.2, 0.8]), 0, 0, classes=[0])
    assert archive.filled.tolist() == [True, False]


def test_parents_come_from_filled_cells_in_proportion_to_cells_held():
    archive = Archive(["a", "b", "c", "d"])
    archive.add(np.array([[1.0], [2.0]]), scores([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.9, 0.0]),
                   0, 0, classes=[0, 1, 2])
    parents = archive.sample_parents(3000, np.random.default_rng(0))[:, 0]
    assert set(parents.tolist()) == {1.0, 2.0}
    assert 0.63 < np.mean(parents == 1.0) < 0.70  # holds 2 of the 3 filled cells


def test_arrays_round_trip_keeps_every_field():
    genome = DirectGenome(DirectParams(), 1, (4, 4))
    archive = Archive(["a", "b", "c"])
    population = genome.random(2, np.random.default_rng(0))
    archive.add(population, scores([0.7, 0.2, 0.1], [0.1, 0.8, 0.1]), 3, 10, classes=[0, 1])
    restored = Archive.from_arrays(["a", "b", "c"], archive.to_arrays(genome.pack), genome.unpack)
    assert restored.rows() == archive.rows()
    assert np.array_equal(restored.genomes[:2], archive.genomes[:2])
    assert restored.summary() == archive.summary()


def test_nan_and_inf_rows_never_enter_the_archive_and_are_counted():
    archive = Archive(["a", "b"])
    nan, inf = float("nan"), float("inf")
    # an empty cell must not take a NaN elite (argmax would pick it), nor an inf one
    result = archive.add(np.array([[1.0], [2.0], [3.0]]),
                         scores([nan, 0.1], [inf, 0.0], [0.2, nan]), 0, 0)
    assert result.nonfinite == 3 and result.cells == 0
    assert archive.filled.tolist() == [False, False]
    result = archive.add(np.array([[4.0], [5.0]]), scores([nan, nan], [0.3, 0.7]), 1, 3)
    assert result.nonfinite == 1 and result.status.tolist() == [NOT_ADDED, NEW]
    assert archive.genomes[:, 0].tolist() == [5.0, 5.0]
    assert np.isfinite(archive.confidence).all() and np.isfinite(archive.probabilities).all()
    # a filled cell is not taken by a later NaN either
    archive.add(np.array([[6.0]]), scores([nan, 0.99]), 2, 5)
    assert archive.genomes[:, 0].tolist() == [5.0, 5.0]


def test_each_cell_records_the_evaluation_at_which_it_first_reached_each_milestone():
    archive = Archive(["a", "b"])
    archive.add(np.zeros((3, 1)), scores([0.2, 0.1], [0.6, 0.3], [0.95, 0.1]), 0, 0)
    archive.add(np.zeros((2, 1)), scores([0.991, 0.0], [0.3, 0.99995]), 1, 3, cost=3)
    # a: 50% by its 2nd candidate, 90% by its 3rd, 99% at the 1st of the next batch (3 + 1*3)
    assert archive.evaluations_to(0) == {"0.5": 2, "0.9": 3, "0.99": 6, "0.9999": None}
    # b: every milestone at once, by the 2nd candidate of the second batch (3 + 2*3)
    assert archive.evaluations_to(1) == {"0.5": 9, "0.9": 9, "0.99": 9, "0.9999": 9}
    archive.add(np.zeros((1, 1)), scores([0.99999, 0.0]), 2, 9)  # later arrivals keep theirs
    assert archive.evaluations_to(0)["0.99"] == 6 and archive.evaluations_to(0)["0.9999"] == 10


def test_milestones_survive_the_arrays_and_older_archives_load_without_them():
    genome = DirectGenome(DirectParams(), 1, (4, 4))
    archive = Archive(["a", "b"])
    archive.add(genome.random(2, np.random.default_rng(0)), scores([0.7, 0.2], [0.1, 0.95]), 0, 0)
    arrays = archive.to_arrays(genome.pack)
    assert np.array_equal(Archive.from_arrays(["a", "b"], arrays, genome.unpack).reached,
                          archive.reached)
    older = {k: v for k, v in arrays.items() if k != "reached"}
    assert (Archive.from_arrays(["a", "b"], older, genome.unpack).reached == -1).all()
