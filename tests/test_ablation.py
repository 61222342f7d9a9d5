"""``evofool ablate``: occlusion and repetition curves, checked on a model that counts motifs,
then end to end on a tiny real run (files, table, report section, one-line errors)."""
import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import evofool
from evofool.ablation import (ablate_image, ablate_run, class_scorer, copies, occlude,
                              tile_masks)
from evofool.cli import main
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.fitness.target import Target
from evofool.runner import run_experiment
from conftest import small_experiment

SIDE, GRID = 24, 4          # 6 x 6 pixel tiles
MOTIF_TILES = [0, 2, 5, 6, 9, 11, 12, 15]


class CountMotifs(nn.Module):
    """Class 0's logit grows with the number of bright blobs (8-connected pixels > 0.5):
    counted by spreading each blob's largest pixel index over it with 3 x 3 max pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x > 0.5).float()
        ids = torch.arange(1, x[0].numel() + 1, dtype=torch.float32).view(1, *x.shape[1:])
        ids = ids * bright
        label = ids
        while True:
            spread = F.max_pool2d(label, 3, stride=1, padding=1) * bright
            if torch.equal(spread, label):
                break
            label = spread
        count = ((label == ids) & (bright > 0)).flatten(1).sum(1).float()
        return torch.stack([count / 2 - 2, torch.zeros_like(count)], dim=1)


def motif_target() -> Target:
    return Target(name="motifs", model=CountMotifs(), class_names=["motif", "other"],
                  input_size=(SIDE, SIDE), channels=1, mean=(0.0,), std=(1.0,),
                  device=torch.device("cpu"))


def motif_image() -> torch.Tensor:
    """Black, with a 2 x 2 white square in the middle of 8 of the 16 tiles."""
    image = torch.zeros((1, 1, SIDE, SIDE))
    for tile in MOTIF_TILES:
        row, column = divmod(tile, GRID)
        image[0, 0, row * 6 + 2:row * 6 + 4, column * 6 + 2:column * 6 + 4] = 1.0
    return image


@pytest.fixture(scope="module")
def curves() -> dict:
    return ablate_image(motif_image(), class_scorer(motif_target(), 0), grid=GRID,
                        max_copies=5, orders=4, seed=1)


def sigmoid(count: int) -> float:
    return 1 / (1 + np.exp(-(count / 2 - 2)))


def test_occluding_tiles_fills_exactly_them_with_the_mean_colour():
    image = motif_image()
    masks = tile_masks(SIDE, SIDE, GRID)
    assert masks.sum(0).eq(1).all()  # the tiles cover the image once
    occluded = occlude(image, masks, np.array([[False] * 16, [True] + [False] * 15]))
    assert torch.equal(occluded[0], image[0])
    mean = image.mean()
    assert torch.allclose(occluded[1, 0, :6, :6], mean) and torch.equal(
        occluded[1, 0, 6:], image[0, 0, 6:])
    assert tile_masks(28, 28, 3).sum((1, 2)).tolist() == [81, 90, 81, 90, 100, 90, 81, 90, 81]


def test_confidence_falls_as_motif_tiles_are_occluded_greedy_fastest(curves):
    greedy = curves["greedy"]["confidence"]
    assert curves["confidence"] == pytest.approx(sigmoid(8))
    # greedy removes one motif per step, then only empty tiles
    assert greedy == pytest.approx([sigmoid(8 - s) for s in range(9)] + [sigmoid(0)] * 8)
    assert sorted(curves["greedy"]["order"][:8]) == MOTIF_TILES
    for curve in curves["random"]["confidence"]:
        assert curve[0] == curves["confidence"] and curve[-1] == pytest.approx(sigmoid(0))
        assert all(later <= earlier for earlier, later in zip(curve, curve[1:]))
        assert all(g <= r + 1e-12 for g, r in zip(greedy, curve))
    assert curves["fraction_kept"][0] == 1 and curves["fraction_kept"][-1] == 0
    summary = curves["summary"]
    # half of sigmoid(2) is 0.44: 4 motifs (0.5) keep it, 3 (0.38) do not: 5 removed
    assert summary["kept_for_half_greedy"] == pytest.approx(1 - 4 / 16)
    # confidence falls fastest in the greedy order: the most of the image must be kept
    assert summary["kept_for_half_random"] <= summary["kept_for_half_greedy"]
    assert summary["confidence_all_occluded"] == pytest.approx(sigmoid(0))


def test_more_copies_of_the_best_tile_raise_the_confidence(curves):
    repetition = curves["repetition"]
    assert repetition["tile"] in MOTIF_TILES  # a motif tile alone scores highest
    assert repetition["tile_alone_confidence"][repetition["tile"]] == pytest.approx(sigmoid(1))
    assert repetition["copies"] == [1, 4, 9, 16, 25]
    confidence = repetition["confidence"]
    assert confidence[:4] == pytest.approx([sigmoid(n) for n in (1, 4, 9, 16)])
    assert all(later > earlier for earlier, later in zip(confidence, confidence[1:]))
    assert curves["summary"]["confidence_1_copy"] < curves["summary"]["confidence_max_copies"]


def test_copies_fill_the_image():
    patch = torch.rand((1, 3, 5, 7))
    for n in (1, 2, 3, 7):
        assert copies(patch, n, (28, 20)).shape == (1, 3, 28, 20)
    assert torch.allclose(copies(torch.ones((1, 1, 6, 6)), 5, (24, 24)), torch.tensor(1.0))


def test_random_orders_repeat_with_a_seed(curves):
    again = ablate_image(motif_image(), class_scorer(motif_target(), 0), grid=GRID,
                         max_copies=5, orders=4, seed=1)
    assert again["random"] == curves["random"]
    other = ablate_image(motif_image(), class_scorer(motif_target(), 0), grid=GRID,
                         max_copies=2, orders=4, seed=2)
    assert other["random"]["orders"] != curves["random"]["orders"]


# --- a real run --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ablate")
    path = small_experiment(folder, genome={"type": "cppn"}, budget={"generations": 3})
    run_experiment(load_experiment(path))
    return folder / "run"


def test_ablate_command_writes_curves_table_and_plot(tiny_run, capsys):
    assert main(["ablate", str(tiny_run), "--device", "cpu", "--max-copies", "3",
                 "--orders", "2"]) == 0
    out = capsys.readouterr().out
    folder = tiny_run / "ablation"
    content = json.loads((folder / "ablation.json").read_text())
    assert content["model"] == "lenet-mnist" and content["grid"] == 4
    assert [entry["class"] for entry in content["classes"]] == list(range(10))
    archive = json.loads((tiny_run / "archive" / "archive.json").read_text())["classes"]
    for entry, row in zip(content["classes"], archive):
        assert entry["confidence"] == pytest.approx(row["confidence"], abs=1e-6)
        assert len(entry["greedy"]["confidence"]) == 17 == len(entry["fraction_kept"])
        assert np.array(entry["random"]["confidence"]).shape == (2, 17)
        assert entry["repetition"]["copies"] == [1, 4, 9]
        assert entry["greedy"]["confidence"][-1] == pytest.approx(
            entry["random"]["confidence"][0][-1], abs=1e-6)  # all tiles occluded, any order
    with open(folder / "ablation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows] == [str(c) for c in range(10)]
    assert float(rows[0]["kept_for_half_greedy"]) <= 1
    assert (folder / "ablation.png").read_bytes().startswith(b"\x89PNG")
    lines = out.splitlines()
    assert lines[0].startswith("ablation of 10 elites on lenet-mnist, grid 4 x 4")
    assert "kept50 greedy" in lines[1] and len(lines) == 13
    assert lines[-1].startswith("wrote ")


def test_api_and_another_model(tiny_run, tmp_path):
    run = evofool.load_run(tiny_run)
    rows = run.ablate("lenet-mnist", device="cpu", grid=2, max_copies=2, orders=1,
                      out=tmp_path / "other")
    assert [row["class"] for row in rows] == list(range(10))
    assert all(row["copies_max"] == 4 and 0 <= row["kept_for_half_random"] <= 1
               for row in rows)
    assert json.loads((tmp_path / "other" / "ablation.json").read_text())["grid"] == 2


@pytest.mark.parametrize("arguments, fragment", [
    (["--grid", "x"], "--grid 'x' is invalid: expected an integer"),
    (["--grid", "1"], "--grid 1 is invalid: expected an integer from 2 to 16"),
    (["--max-copies", "29"], "--max-copies 29 is invalid: expected an integer from 1 to 28 "
                             "(the images are 28 x 28 pixels)"),
    (["--orders", "0"], "--orders 0 is invalid"),
    (["--model", "python:plugin_models:tiny_net"], "does not label its outputs like run"),
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--device", "gpu"], "--device 'gpu' is not a device"),
])
def test_bad_options_are_one_line_errors(tiny_run, capsys, arguments, fragment):
    assert main(["ablate", str(tiny_run), "--device", "cpu", *arguments]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err and "Traceback" not in err


def test_missing_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["ablate", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and "\n" not in err
    with pytest.raises(EvofoolError, match="not a run directory"):
        ablate_run(tmp_path)
