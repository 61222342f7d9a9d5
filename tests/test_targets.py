"""Target specs and scoring options, on small models (no model zoo packages needed).

``python:plugin_models:...`` factories live in tests/plugin_models.py; TorchScript files are
traced into tmp_path.
"""
import json
import warnings

import numpy as np
import pytest
import torch

from conftest import small_experiment
from evofool.cli import main
from evofool.errors import EvofoolError
from evofool.fitness.registry import available_targets, build_target
from evofool.fitness.target import Target, ten_crops
from evofool.runner import run_experiment
from evofool.config import load_experiment
from plugin_models import INFO, FlatNet, TinyNet
from test_cli_errors import assert_one_line_error, run_cli

CPU = torch.device("cpu")
TINY = "python:plugin_models:tiny_net"


def images(n: int = 6, size: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 3, size, size), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def torchscript_files(tmp_path):
    """flat.pt: a 32x32-only model whose FILE.json claims 224; tiny.pt: 10 outputs and no
    FILE.json (so the ImageNet defaults expect 1,000); good.pt: tiny with a correct JSON."""
    def trace(module):  # torch.jit is deprecated in favour of torch.export, but still loads
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.trace(module, torch.rand(1, 3, 32, 32))

    torch.manual_seed(0)
    flat = trace(FlatNet())
    flat.save(str(tmp_path / "flat.pt"))
    (tmp_path / "flat.pt.json").write_text(json.dumps({**INFO, "input_size": 224}))
    torch.manual_seed(0)  # the same weights as plugin_models.tiny_net
    tiny = trace(TinyNet().eval())
    tiny.save(str(tmp_path / "tiny.pt"))
    tiny.save(str(tmp_path / "good.pt"))
    (tmp_path / "good.pt.json").write_text(json.dumps(INFO))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    return tmp_path


# --- bad specs: one line each, before the run starts ---------------------------------------

@pytest.mark.parametrize("overrides, fragments", [
    (["model=no-such-net"], ["unknown model 'no-such-net'", "torchvision:NAME[:WEIGHTS]"]),
    (["model=torchvision:no_such_net"], ["torchvision has no model 'no_such_net'"]),
    (["model=torchvision:alexnet:NOPE"], ["has no weights 'NOPE'", "IMAGENET1K_V1"]),
    (["model=torchvision:alexnet:IMAGENET1K_V1", "model.weights_path=/nonexistent/alexnet.pth"],
     ["weights file '/nonexistent/alexnet.pth' not found"]),
    (["model=efficientnet-lite0", "model.weights_path=/nonexistent/lite0.pth"],
     ["/nonexistent/lite0.pth"]),
    (["model=torchscript:{tmp}/absent.pt"], ["TorchScript file", "absent.pt' not found"]),
    (["model=torchscript:{tmp}/junk.pt"], ["junk.pt' is not a TorchScript file"]),
    (["model=torchscript:{tmp}/flat.pt"],
     ["fails on a probe image of shape (1, 3, 224, 224)", "input size 224x224",
      "mat1 and mat2 shapes cannot be multiplied"]),
    (["model=torchscript:{tmp}/tiny.pt"], ["output of shape (1, 10)", "expected (1, 1000)"]),
    (["model=python:plugin_models:flat_net_told_224"],
     ["fails on a probe image of shape (1, 3, 224, 224)"]),
    (["model=python:plugin_models:nan_net"], ["NaN or infinite"]),
    (["model=python:plugin_models:twelve_outputs_ten_names"],
     ["output of shape (1, 12)", "expected (1, 10)"]),
    (["model=python:no_such_module:f"], ["cannot import module 'no_such_module'"]),
    (["model=python:plugin_models:absent"], ["has no function 'absent'"]),
    (["model=python:plugin_models:not_a_model"], ["returned a str"]),
    (["model=python:plugin_models:bad_metadata"], ["channels = 4 is invalid"]),
    (["model.classes=[3, 12]"], ["classes [12] out of range", "0..9"]),
    (["model.classes=[3, 3]"], ["model.classes = [3, 3] is invalid", "distinct"]),
    (["model.classes=[]"], ["model.classes = [] is invalid"]),
    (["model.crops=5"], ["model.crops = 5 is invalid", "one of 1, 10"]),
    (["model.precision=fp64"], ["model.precision = 'fp64' is invalid", "'bf16'"]),
])
def test_bad_model_specs_are_one_line_errors(capsys, experiment_file, torchscript_files,
                                             overrides, fragments):
    overrides = [o.replace("{tmp}", str(torchscript_files)) for o in overrides]
    code, err = run_cli(capsys, "run", experiment_file, "budget.generations=1", *overrides)
    assert_one_line_error(code, err, *fragments)
    assert not (experiment_file.parent / "run" / "config.yaml").exists()  # nothing started


def test_timm_unknown_name_is_one_line(capsys, experiment_file):
    pytest.importorskip("timm", reason="timm not installed (pip install -e '.[zoo]')")
    code, err = run_cli(capsys, "run", experiment_file, "model=timm:no_such_net_9")
    assert_one_line_error(code, err, "timm has no model 'no_such_net_9'")


def test_models_command_lists_the_spec_forms(capsys):
    from evofool.cli import main
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for form in ("lenet-mnist", "efficientnet-lite0", "torchvision:NAME[:WEIGHTS]", "timm:NAME",
                 "torchscript:FILE", "python:MODULE:FACTORY"):
        assert form in out
    assert "python:MODULE:FACTORY" in available_targets()


# --- custom models --------------------------------------------------------------------------

def test_python_factory_and_torchscript_targets_score_like_the_module(torchscript_files):
    from_factory = build_target(TINY, CPU)
    assert (from_factory.input_size, from_factory.class_names[3]) == ((32, 32), "thing 3")
    from_target = build_target("python:plugin_models:tiny_target", CPU)
    scripted = build_target(f"torchscript:{torchscript_files}/good.pt", CPU)
    batch = images()
    expected = from_factory.scores(batch)
    assert expected.shape == (6, 10) and np.allclose(expected.sum(axis=1), 1.0)
    np.testing.assert_allclose(from_target.scores(batch), expected, atol=1e-12)
    np.testing.assert_allclose(scripted.scores(batch), expected, atol=1e-6)


def test_weights_path_is_passed_to_a_python_factory(tmp_path):
    torch.manual_seed(5)
    other = TinyNet()
    torch.save(other.state_dict(), tmp_path / "w.pth")
    target = build_target(TINY, CPU, str(tmp_path / "w.pth"))
    assert torch.equal(target.model.head.weight, other.head.weight)


# --- scoring options ------------------------------------------------------------------------

def test_fast_paths_give_the_plain_scores():
    """channels_last and bf16/fp16 autocast change the arithmetic, not the answer."""
    batch = images(8)
    plain = build_target(TINY, CPU).scores(batch)
    np.testing.assert_allclose(build_target(TINY, CPU, channels_last=True).scores(batch), plain,
                               atol=1e-5)
    for precision in ("bf16", "fp16"):
        fast = build_target(TINY, CPU, precision=precision, channels_last=True).scores(batch)
        assert fast.dtype == np.float64 and np.isfinite(fast).all()
        np.testing.assert_allclose(fast, plain, atol=0.03)  # bf16 keeps ~3 significant digits
        assert (fast.argmax(axis=1) == plain.argmax(axis=1)).mean() >= 0.75


class OutOfMemoryAbove(torch.nn.Module):
    """Raises the allocator's error for batches larger than ``limit`` (as a GPU would)."""

    def __init__(self, inner: torch.nn.Module, limit: int, error) -> None:
        super().__init__()
        self.inner, self.limit, self.error, self.sizes = inner, limit, error, []

    def forward(self, x):
        self.sizes.append(len(x))
        if len(x) > self.limit:
            raise self.error
        return self.inner(x)


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 1 bytes. Error code 12 (out of memory)"),
])
def test_a_batch_that_does_not_fit_is_split_in_halves(error):
    plain = build_target(TINY, CPU)
    batch = images(10)
    expected = plain.scores(batch)
    wrapped = OutOfMemoryAbove(plain.model, limit=3, error=error)
    target = Target(name="oom", model=wrapped, class_names=plain.class_names, input_size=(32, 32),
                    channels=3, mean=plain.mean, std=plain.std, device=CPU)
    np.testing.assert_allclose(target.scores(batch), expected, atol=1e-12)
    assert target.max_batch == 3 and wrapped.sizes[:3] == [10, 5, 3]
    wrapped.sizes.clear()
    target.scores(batch)  # later batches start at the size that fitted
    assert wrapped.sizes == [3, 3, 3, 1]


def test_other_errors_are_not_taken_for_out_of_memory():
    plain = build_target(TINY, CPU)
    wrapped = OutOfMemoryAbove(plain.model, limit=3, error=RuntimeError("shape mismatch"))
    target = Target(name="bad", model=wrapped, class_names=plain.class_names, input_size=(32, 32),
                    channels=3, mean=plain.mean, std=plain.std, device=CPU)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        target.scores(images(10))


def test_ten_crops_are_corners_centre_and_mirrors():
    image = torch.arange(2 * 3 * 6 * 8, dtype=torch.float32).view(2, 3, 6, 8)
    crops = ten_crops(image, (4, 4)).view(2, 10, 3, 4, 4)
    assert torch.equal(crops[1, 0], image[1, :, :4, :4])        # top left
    assert torch.equal(crops[1, 3], image[1, :, 2:, 4:])        # bottom right
    assert torch.equal(crops[1, 4], image[1, :, 1:5, 2:6])      # centre
    assert torch.equal(crops[1, 9], image[1, :, 1:5, 2:6].flip(-1))


def test_ten_crop_scores_are_the_mean_of_the_crops_softmax():
    target = build_target(TINY, CPU, crops=10)
    assert target.resize_size == (37, 37) and target.image_size == (37, 37)
    batch = images(3, size=37)
    normalized = (batch - 0.5) / 0.25
    with torch.inference_mode():
        logits = target.model(ten_crops(normalized, (32, 32))).double()
    expected = torch.softmax(logits, 1).view(3, 10, 10).mean(1).numpy()
    np.testing.assert_allclose(target.scores(batch), expected, atol=1e-6)


def test_a_class_subset_is_a_softmax_over_all_classes_then_columns():
    batch = images()
    full = build_target(TINY, CPU).scores(batch)
    subset = build_target(TINY, CPU, classes=[7, 2])
    assert subset.class_ids == [7, 2] and subset.scored_names == ["thing 7", "thing 2"]
    np.testing.assert_allclose(subset.scores(batch), full[:, [7, 2]], atol=1e-12)


# --- class subsets in runs: archive, montage, resume -----------------------------------------

def test_a_run_on_a_class_subset_keeps_the_model_class_ids(tmp_path, capsys):
    from evofool.archive_store import load_archive, montage_labels
    path = small_experiment(tmp_path, model={"spec": "lenet-mnist", "classes": [3, 7]},
                            budget={"generations": 4})
    result = run_experiment(load_experiment(path))
    content = result.archive_json
    assert content["class_ids"] == [3, 7] and content["class_names"] == ["3", "7"]
    rows = content["classes"]
    assert [(r["class"], r["class_id"], r["name"]) for r in rows] == [(0, 3, "3"), (1, 7, "7")]
    assert rows[1]["png"] == "class_0007_7.png"
    assert (result.run_dir / "archive" / rows[1]["png"]).is_file()
    assert all(r["top1"] in (3, 7) for r in rows)
    archive, _, _ = load_archive(result.run_dir)
    assert archive.class_ids == [3, 7]
    assert montage_labels(archive)[1].startswith("7\n")
    assert main(["archive", "show", str(result.run_dir)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in shown[1:3]] == ["3", "7"]  # class ids, not cells
    assert run_cli(capsys, "run", "--resume", result.run_dir, "budget.generations=6")[0] == 0
    resumed = json.loads((result.run_dir / "archive" / "archive.json").read_text())
    assert resumed["class_ids"] == [3, 7] and resumed["generation"] == 6
    out = tmp_path / "seven.png"
    assert run_cli(capsys, "render", result.run_dir, "--class", "7", "--size", "28",
                   "--out", out)[0] == 0 and out.is_file()
    assert_one_line_error(*run_cli(capsys, "render", result.run_dir, "--class", "1", "--size",
                                   "28", "--out", out), "class 1 is out of range", "3, 7")


def test_ga_target_classes_are_class_ids_of_the_subset(tmp_path, capsys):
    path = small_experiment(
        tmp_path, model={"spec": "lenet-mnist", "classes": [3, 7]},
        algorithm={"type": "ga", "population": 20, "elite": 2, "target_classes": [7]},
        budget={"generations": 2})
    result = run_experiment(load_experiment(path))
    rows = result.archive_json["classes"]
    assert rows[0]["confidence"] is None and rows[1]["confidence"] is not None
    code, err = run_cli(capsys, "run", path, f"output_dir={tmp_path}/other",
                        "algorithm.target_classes=[5]")
    assert_one_line_error(code, err, "target_classes: [5] not among the scored classes",
                          "model.classes [3, 7]")


def test_the_default_image_size_follows_the_crops(tmp_path):
    from evofool.runner import build_search
    path = small_experiment(tmp_path, model={"spec": "lenet-mnist", "crops": 10})
    algorithm, target = build_search(load_experiment(path))
    assert target.image_size == (32, 32) and algorithm.genome_type.size == (32, 32)


def test_target_rejects_inconsistent_metadata():
    net, info = TinyNet(), INFO
    with pytest.raises(ValueError, match="mean and std need 3 values"):
        Target(name="x", model=net, class_names=info["class_names"], input_size=(32, 32),
               channels=3, mean=(0.5,), std=(0.25,), device=CPU)
    with pytest.raises(EvofoolError, match="crops must be 1 or 10"):
        build_target(TINY, CPU, crops=3)


# --- model zoos, offline: weights from a local file ----------------------------------------

def test_torchvision_target_from_a_local_weights_file(tmp_path, capsys, experiment_file):
    from torchvision.models import squeezenet1_1
    torch.manual_seed(0)
    net = squeezenet1_1(num_classes=1000).eval()
    torch.save(net.state_dict(), tmp_path / "squeeze.pth")
    target = build_target("torchvision:squeezenet1_1:IMAGENET1K_V1", CPU,
                          str(tmp_path / "squeeze.pth"))
    assert (target.input_size, target.resize_size, target.class_names[967]) == \
        ((224, 224), (256, 256), "espresso")
    assert target.mean == (0.485, 0.456, 0.406)
    batch = images(2, size=224)
    with torch.inference_mode():
        expected = torch.softmax(net((batch - target._mean) / target._std).double(), 1)
    np.testing.assert_allclose(target.scores(batch), expected.numpy(), atol=1e-6)
    torch.save(TinyNet().state_dict(), tmp_path / "tiny.pth")  # another network's weights
    code, err = run_cli(capsys, "run", experiment_file, "model=torchvision:squeezenet1_1",
                        f"model.weights_path={tmp_path}/tiny.pth")
    assert_one_line_error(code, err, "tiny.pth' does not fit the model", "missing")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    code, err = run_cli(capsys, "run", experiment_file, "model=torchvision:squeezenet1_1",
                        f"model.weights_path={tmp_path}/junk.pth")
    assert_one_line_error(code, err, "junk.pth' is not a readable state dict")


def test_timm_target_from_a_local_weights_file(tmp_path):
    timm = pytest.importorskip("timm", reason="timm not installed (pip install -e '.[zoo]')")
    net = timm.create_model("mobilenetv3_small_050", pretrained=False).eval()
    torch.save({"state_dict": net.state_dict()}, tmp_path / "m.pth")  # a wrapped checkpoint
    target = build_target("timm:mobilenetv3_small_050", CPU, str(tmp_path / "m.pth"))
    assert target.num_classes == 1000 and target.class_names[967] == "espresso"
    assert target.input_size == tuple(net.pretrained_cfg["input_size"][1:])
    assert target.scores(images(2, size=224)).shape == (2, 1000)


def test_a_python_factory_in_the_current_directory(tmp_path, monkeypatch):
    """The evofool console script does not put the current directory on sys.path."""
    (tmp_path / "my_local_models.py").write_text(
        "from plugin_models import tiny_net\n\ndef build():\n    return tiny_net()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".")])
    target = build_target("python:my_local_models:build", CPU)
    assert target.class_names[0] == "thing 0"


def test_a_bf16_run_records_its_pngs_scored_in_fp32(tmp_path):
    """model.precision: bf16 scores the search; the saved PNGs are re-scored in fp32, so
    archive.json holds both figures and png_confidence is the exact one."""
    import json

    from evofool.config import load_experiment
    from evofool.fitness.lenet import build_lenet_target
    from evofool.run_data import read_run
    from evofool.runner import run_experiment
    from conftest import small_experiment

    path = small_experiment(tmp_path, model={"spec": "lenet-mnist", "precision": "bf16"})
    result = run_experiment(load_experiment(path))
    rows = json.loads((result.run_dir / "archive" / "archive.json").read_text())["classes"]
    run = read_run(result.run_dir)
    exact = build_lenet_target("cpu").scores(run.genome_type.render(run.archive.genomes))
    for row in rows:
        assert row["png_confidence"] == pytest.approx(exact[row["class"], row["class"]], rel=1e-5)
    # bf16 keeps ~3 significant digits: the searched figure differs from the exact one
    assert any(r["png_confidence"] != pytest.approx(r["confidence"], rel=1e-3) for r in rows)
