"""The shipped LeNet weights, the MNIST IDX reader and the training entry point."""
from __future__ import annotations

import gzip
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from evofool.fitness.lenet import DEFAULT_WEIGHTS, LeNet, build_lenet_target, load_lenet, save_lenet
from evofool.fitness.lenet_training import train_lenet
from evofool.fitness.mnist_data import read_idx_images, read_idx_labels


def _mnist_dir() -> Path:
    """Real MNIST IDX files: $EVOFOOL_MNIST_DIR, else the shared folder beside the repo."""
    configured = os.environ.get("EVOFOOL_MNIST_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).parents[1] / ".." / "shared" / "data" / "mnist"


def _write_idx(directory: Path, stem: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write images (N, 28, 28) uint8 and labels (N,) uint8 as gzip IDX files."""
    n, rows, cols = images.shape
    header = np.array([2051, n, rows, cols], dtype=">u4").tobytes()
    with gzip.open(directory / f"{stem}-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(header + images.astype(np.uint8).tobytes())
    with gzip.open(directory / f"{stem}-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(np.array([2049, n], dtype=">u4").tobytes() + labels.astype(np.uint8).tobytes())


def _synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Easy fake digits: class k is a bright bar in row band k (learnable in one epoch)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label:4 + 2 * label, 4:24] = 255
    return images, labels


def test_shipped_weights_give_softmax_rows() -> None:
    target = build_lenet_target(torch.device("cpu"))
    assert target.name == "lenet-mnist"
    assert target.class_names == [str(d) for d in range(10)]
    images = torch.rand(5, 1, 28, 28)
    scores = target.scores(images)
    assert scores.shape == (5, 10)
    assert scores.dtype == np.float64
    assert np.all(scores >= 0)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-9)


def test_shipped_weights_have_a_sidecar_saying_how_they_were_made() -> None:
    # (the accuracy it states is checked against real MNIST below, not read back here)
    sidecar = DEFAULT_WEIGHTS.with_name(DEFAULT_WEIGHTS.name + ".json")
    metrics = json.loads(sidecar.read_text())
    assert metrics["seed"] == 0 and "command" in metrics


def test_idx_reader_rejects_corrupt_files(tmp_path: Path) -> None:
    images, labels = _synthetic_digits(20, seed=0)
    _write_idx(tmp_path, "t10k", images, labels)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    assert read_idx_images(path).shape == (20, 28, 28)

    with gzip.open(path, "wb") as handle:          # truncated pixel data
        handle.write(np.array([2051, 20, 28, 28], dtype=">u4").tobytes() + b"\x00" * 100)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
        read_idx_images(path)

    path.write_bytes(b"this is not gzip")           # not gzip at all
    with pytest.raises(ValueError, match="gzip"):
        read_idx_images(path)

    labels_path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(ValueError, match="magic"):   # a label file is not an image file
        read_idx_images(labels_path)
    with pytest.raises(ValueError, match="not found"):
        read_idx_labels(tmp_path / "missing-labels-idx1-ubyte.gz")


def test_load_lenet_rejects_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_lenet(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk.safetensors"):
        load_lenet(junk)
    from safetensors.torch import save_file
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv1.weight": torch.zeros(3, 3)}, str(wrong))
    with pytest.raises(ValueError, match="missing tensors"):
        load_lenet(wrong)


def test_save_load_round_trip_is_float16(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LeNet().eval()
    path = save_lenet(model, tmp_path / "lenet.safetensors")
    loaded = load_lenet(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-2, rtol=1e-2)
    assert [p.name for p in tmp_path.iterdir()] == ["lenet.safetensors"]  # no temp file left


def test_train_lenet_learns_and_reports_the_accuracy_its_weights_have(tmp_path: Path) -> None:
    """One epoch on a tiny synthetic IDX set in the train-5k layout: the written weights
    classify held-out digits far above chance, and the accuracy the trainer reports is the
    one those weights get when scored here, independently, on the held-out split."""
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    _write_idx(data_dir, "train-5k", *_synthetic_digits(200, seed=1))
    test_images, test_labels = _synthetic_digits(2100, seed=2)
    _write_idx(data_dir, "t10k", test_images, test_labels)
    out = tmp_path / "weights" / "lenet.safetensors"

    metrics = train_lenet(str(data_dir), out, seed=0, epochs=1, progress=False,
                          command="pytest smoke")

    assert metrics["train_images"] == 300             # 200 train-5k + first 100 test images
    assert metrics["held_out_images"] == 2000          # the last 2,000 test images
    target = build_lenet_target(torch.device("cpu"), out)
    images = torch.from_numpy(test_images[-2000:]).float().div(255).unsqueeze(1)
    accuracy = float((target.scores(images).argmax(axis=1) == test_labels[-2000:]).mean())
    assert accuracy > 0.5, f"one epoch on bar digits gave {accuracy:.1%} (chance: 10%)"
    # the sidecar's figure is the float32 model's; the saved float16 weights may differ a bit
    assert abs(metrics["held_out_accuracy"] - accuracy) <= 0.01
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["command"] == "pytest smoke" and sidecar["seed"] == 0


@pytest.mark.mnist_data
def test_shipped_weights_reach_99_percent_on_heldout_mnist() -> None:
    """The shipped weights on the last 2,000 official test images, which they never saw."""
    data_dir = _mnist_dir()
    if not (data_dir / "t10k-images-idx3-ubyte.gz").is_file():
        reason = (f"real MNIST not found in {data_dir.resolve()} "
                  f"(set EVOFOOL_MNIST_DIR to a folder with the t10k IDX files)")
        if os.environ.get("EVOFOOL_REQUIRE_MNIST") == "1":
            pytest.fail(f"EVOFOOL_REQUIRE_MNIST=1 but {reason}")
        warnings.warn(f"skipping the real-MNIST accuracy check: {reason}")  # shows in summary
        pytest.skip(reason)
    test_images = read_idx_images(data_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx_labels(data_dir / "t10k-labels-idx1-ubyte.gz")[-2000:]
    images = torch.from_numpy(test_images[-2000:]).float().div(255).unsqueeze(1)
    target = build_lenet_target(torch.device("cpu"))
    accuracy = float((target.scores(images).argmax(axis=1) == labels).mean())
    assert accuracy >= 0.99, f"shipped LeNet scores {accuracy:.2%} on the held-out 2,000"
    sidecar = json.loads(DEFAULT_WEIGHTS.with_name(DEFAULT_WEIGHTS.name + ".json").read_text())
    assert abs(sidecar["held_out_accuracy"] - accuracy) <= 0.002, "the sidecar's figure is stale"
