"""The perturbation genome: bounded changes of one real image, searched like any genome."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from evofool.archive_store import load_archive
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.genomes.contract import check_genome_type
from evofool.genomes.perturbation import PerturbationGenome, PerturbationParams
from evofool.runner import resume_run, run_experiment
from evofool.search.archive import Archive, Objective
from conftest import real_mnist_dir, small_experiment


@pytest.fixture
def start_png(tmp_path):
    """A 28 x 28 gray start image with mid-gray, black and white pixels (the bound must
    hold where clipping to [0, 1] cuts in, too)."""
    pixels = np.full((28, 28), 128, dtype=np.uint8)
    pixels[:, :8], pixels[:, -8:] = 0, 255
    path = tmp_path / "start.png"
    Image.fromarray(pixels).save(path)
    return path


def genome(start, **params) -> PerturbationGenome:
    return PerturbationGenome(PerturbationParams(start=str(start), **params), 1, (28, 28))


@pytest.mark.parametrize("params", [
    {"norm": "linf", "epsilon": 8 / 255},
    {"norm": "linf", "epsilon": 0.3, "basis": "lowres", "basis_size": 7},
    {"norm": "l2", "epsilon": 1.5},
    {"norm": "l2", "epsilon": 2.0, "basis": "lowres", "basis_size": 5, "mutation": "gaussian"},
])
def test_the_saved_8_bit_image_stays_within_the_bound_through_mutation(start_png, params):
    check_genome_type(PerturbationGenome, PerturbationParams(start=str(start_png), **params),
                      channels=1, size=(28, 28))
    perturbation = genome(start_png, **params)
    rng = np.random.default_rng(0)
    population = perturbation.random(30, rng)
    for generation in range(20):
        population = perturbation.mutate(population, rng, generation)
    images = np.round(perturbation.render(population).numpy() * 255)  # what a PNG holds
    start = np.asarray(Image.open(start_png), dtype=np.float64)[None, None]
    change = (images - start) / 255
    eps = params["epsilon"]
    if params["norm"] == "linf":
        assert np.abs(change).max() <= eps + 1e-12
        if eps == 8 / 255:  # whole levels: the bound is reached exactly, not one level short
            assert np.isclose(np.abs(change).max(), eps)
    else:
        assert np.sqrt((change ** 2).reshape(30, -1).sum(1)).max() <= eps + 1e-9
    measured = perturbation.measures(population)
    assert np.allclose(measured["linf"], np.abs(change).reshape(30, -1).max(1))
    assert np.allclose(measured["l2"], np.sqrt((change ** 2).reshape(30, -1).sum(1)))
    assert np.array_equal(measured["changed_pixels"], (change != 0).reshape(30, -1).sum(1))


def test_square_windows_shrink_on_the_square_attacks_schedule(start_png):
    perturbation = genome(start_png, square_fraction=0.5, square_schedule=100)
    sides = [perturbation.window_side(g) for g in (0, 1, 10, 100)]
    assert sides[0] == round(np.sqrt(0.5 * 28 * 28)) == 20
    assert sides == sorted(sides, reverse=True) and sides[-1] < sides[1] < sides[0]


def test_genomes_outside_the_ball_or_without_their_start_image_are_refused(start_png):
    perturbation = genome(start_png, epsilon=0.1)
    arrays = perturbation.pack(perturbation.random(2, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="within linf epsilon = 0.1"):
        perturbation.unpack({**arrays, "delta": arrays["delta"] * 2})
    with pytest.raises(ValueError, match="start image"):
        perturbation.unpack({"delta": arrays["delta"]})


def test_saved_genomes_carry_their_start_image(start_png, tmp_path):
    """An archive renders where its start image cannot be read (another machine, no MNIST)."""
    perturbation = genome(start_png, epsilon=0.2)
    population = perturbation.random(3, np.random.default_rng(1))
    arrays = perturbation.pack(population)
    start_png.unlink()
    elsewhere = genome(start_png, epsilon=0.2)
    with pytest.raises(ValueError, match="is not a file"):
        elsewhere.ready()
    restored = elsewhere.unpack(arrays)
    assert torch.equal(elsewhere.render(restored), perturbation.render(population))


def test_a_min_distortion_cell_keeps_the_least_distorted_image_above_the_threshold():
    measured = {"l2": np.array([3.0, 1.0, 0.5, 2.0, 9.0])}
    archive = Archive(["a", "b"], measure=lambda c: {"l2": measured["l2"][c]},
                      measure_names=("l2",), objective=Objective("l2", 0.9))
    scores = np.array([[0.95, 0.1], [0.91, 0.2], [0.5, 0.8], [0.99, 0.85], [0.999, 0.3]])
    archive.add(np.arange(5), scores, generation=0, evaluations_before=0)
    # a: 0.91 at L2 1.0 beats 0.999 at L2 9.0; b: nothing reaches 0.9, so the most confident
    assert list(archive.genomes) == [1, 3]
    assert archive.measures["l2"].tolist() == [1.0, 2.0]
    later = np.array([[0.2, 0.92]])  # b's first image above the threshold, however distorted
    archive.add(np.array([4]), later, generation=1, evaluations_before=5)
    assert list(archive.genomes) == [1, 4] and archive.measures["l2"][1] == 9.0
    assert archive.fitness(np.array([0.95, 0.5]), {"l2": np.array([2.0, 0.0])})[0] > 2


def perturbation_experiment(tmp_path, start_png, **genome_keys):
    return small_experiment(
        tmp_path, genome={"type": "perturbation", "start": str(start_png), "norm": "linf",
                          "epsilon": 0.3, "square_fraction": 0.1, "square_schedule": 50,
                          **genome_keys},
        budget={"generations": 8})


def test_a_map_elites_run_records_each_elites_distortion(tmp_path, start_png):
    result = run_experiment(load_experiment(perturbation_experiment(tmp_path, start_png)))
    start = np.asarray(Image.open(start_png), dtype=np.float64)
    for row in result.archive_json["classes"]:
        png = np.asarray(Image.open(tmp_path / "run" / "archive" / row["png"]), np.float64)
        change = (png - start) / 255
        assert np.abs(change).max() <= 0.3
        assert row["measures"]["linf"] == pytest.approx(np.abs(change).max())
        assert row["measures"]["l2"] == pytest.approx(np.sqrt((change ** 2).sum()))
        assert row["measures"]["changed_pixels"] == np.count_nonzero(change)
    start_png.unlink()  # the archive still loads and draws: its genomes carry the start
    archive, genome_type, content = load_archive(tmp_path / "run")
    assert content["classes"][3]["measures"] == result.archive_json["classes"][3]["measures"]
    image = np.round(genome_type.render(archive.genomes[3:4]).numpy()[0, 0] * 255)
    png = np.asarray(Image.open(tmp_path / "run" / "archive" / content["classes"][3]["png"]))
    assert np.array_equal(image, png)


def test_a_stopped_min_distortion_run_resumes_like_an_uninterrupted_one(tmp_path, start_png):
    archives = []
    for name, generations in (("whole", 8), ("part", 4)):
        (tmp_path / name).mkdir()
        path = perturbation_experiment(tmp_path / name, start_png, objective="min_distortion",
                                       threshold=0.5)
        config = path.read_text().replace("generations: 8", f"generations: {generations}")
        path.write_text(config)
        run_experiment(load_experiment(path))
        archives.append(tmp_path / name / "run" / "archive" / "archive.json")
    resume_run(tmp_path / "part" / "run", ["budget.generations=8"])
    assert archives[0].read_text() == archives[1].read_text()


def test_an_unreadable_start_is_one_line_before_anything_is_written(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "perturbation", "start": "nope.png"})
    with pytest.raises(EvofoolError, match="genome: start 'nope.png' is not a file"):
        run_experiment(load_experiment(path))
    assert not (tmp_path / "run" / "config.yaml").exists()
    path = small_experiment(tmp_path, genome={"type": "perturbation", "start": "skimage:x"})
    with pytest.raises(EvofoolError, match="expected one of scikit-image's photos"):
        run_experiment(load_experiment(path))


@pytest.mark.mnist_data
@pytest.mark.long
def test_one_mnist_test_digit_is_pushed_into_other_digits_cells(tmp_path):
    """The shipped experiment's search, shortened: a 7 from the test set, L-inf 0.3."""
    folder = real_mnist_dir("the MNIST perturbation run")
    experiment = load_experiment("experiments/mnist_perturbation.yaml", [
        f"genome.mnist_dir={folder}", "budget.generations=300", f"output_dir={tmp_path / 'r'}",
        "log.progress=false", "runtime.device=cpu"])
    result = run_experiment(experiment)
    rows = result.archive_json["classes"]
    assert rows[7]["png_confidence"] > 0.99  # the start digit itself is a 7
    assert sum(row["png_confidence"] >= 0.99 for row in rows) >= 5
    assert all(row["measures"]["linf"] <= 0.3 for row in rows)
    config = json.loads(json.dumps(result.archive_json["genome"]))
    assert config["start"] == "mnist-test:0"


def test_sign_ascent_moves_a_perturbation_within_its_ball(tmp_path, start_png):
    """Gradient ascent with PGD's sign steps, from the genome's random start."""
    path = small_experiment(
        tmp_path, genome={"type": "perturbation", "start": str(start_png), "epsilon": 0.3},
        algorithm={"type": "gradient_ascent", "start": "randu", "update": "sign",
                   "sign_step": 0.05, "decay": 0},
        budget={"generations": 15})
    result = run_experiment(load_experiment(path))
    start = np.asarray(Image.open(start_png), dtype=np.float64)
    confidences = [row["png_confidence"] for row in result.archive_json["classes"]]
    first = [json.loads(line)["best"] for line in
             (tmp_path / "run" / "log.jsonl").read_text().splitlines()][0]
    assert sum(c > f for c, f in zip(confidences, first)) >= 8  # the ascent climbs
    for row in result.archive_json["classes"]:
        png = np.asarray(Image.open(tmp_path / "run" / "archive" / row["png"]), np.float64)
        assert np.abs(png - start).max() / 255 <= 0.3
