"""Train the shipped LeNet: a small, seeded, CPU-friendly recipe that reaches >= 99% on MNIST.

Two data sources (see :mod:`evofool.fitness.mnist_data`):

* ``data_dir`` with IDX files. With the offline ``train-5k`` subset, 5,000 training images
  are too few for 99%, so the first 8,000 official test images join the training set and the
  LAST 2,000 test images are held out for the accuracy. With the full ``train`` files the
  standard split is used (60,000 train, all 10,000 test held out).
* no ``data_dir``: torchvision downloads MNIST (standard 60,000 / 10,000 split).

The recipe: Adam with a one-cycle learning-rate schedule, random +-2 px shifts, batch 64.
Everything random comes from ``seed`` (torch for the weight init, a numpy Generator for
shuffling and shifts), so the same command gives the same weights on the same machine.

Extra training images (``extra_images``/``extra_labels``) join the MNIST ones; label 10 is
the fooling class of paper sec. 5, and the network then has 11 outputs
(:mod:`evofool.retrain` trains its DNN_2, DNN_3, ... this way).
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from evofool.files import write_json

from .lenet import (MNIST_MEAN, MNIST_STD, LeNet, build_lenet_target, lenet_class_names,
                    save_lenet)
from .mnist_data import load_idx_mnist, load_torchvision_mnist

HELDOUT = 2000        # with train-5k: the last 2,000 official test images are held out
BATCH_SIZE = 64
MAX_LR = 2e-3
MAX_SHIFT = 2         # pixels, in each direction
DEFAULT_DOWNLOAD_ROOT = Path.home() / ".cache" / "evofool" / "mnist"


def _split(data: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Choose training and held-out images; return them plus a one-line description."""
    if data["train_source"] == "train":
        return (data["train_images"], data["train_labels"], data["test_images"],
                data["test_labels"],
                f"train on the {len(data['train_images'])} MNIST training images, "
                f"hold out all {len(data['test_images'])} test images")
    test_images, test_labels = data["test_images"], data["test_labels"]
    cut = max(len(test_images) - HELDOUT, 0)
    train_images = np.concatenate([data["train_images"], test_images[:cut]])
    train_labels = np.concatenate([data["train_labels"], test_labels[:cut]])
    return (train_images, train_labels, test_images[cut:], test_labels[cut:],
            f"train on {data['train_source']} ({len(data['train_images'])} images) + the "
            f"first {cut} test images, hold out the last {len(test_images) - cut} test images")


def _shift(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Shift each (N, 1, H, W) image by a random -2..2 px in x and y, filling with black."""
    n, _, h, w = images.shape
    padded = F.pad(images, (MAX_SHIFT,) * 4)
    dy = torch.from_numpy(rng.integers(0, 2 * MAX_SHIFT + 1, size=n))
    dx = torch.from_numpy(rng.integers(0, 2 * MAX_SHIFT + 1, size=n))
    rows = (dy[:, None] + torch.arange(h))[:, :, None]          # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]          # (N, 1, W)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def predict_lenet(weights_path: str | os.PathLike, images: np.ndarray,
                  batch: int = 1000) -> np.ndarray:
    """The class each uint8 (N, 28, 28) image gets from the weights as saved (float16 round
    trip), through the real Target: argmax over all outputs (10, or 11 with the fooling
    class)."""
    target = build_lenet_target(torch.device("cpu"), weights_path)
    predicted = [target.logits(torch.from_numpy(images[start:start + batch]).float()
                               .div(255).unsqueeze(1)).argmax(dim=1).numpy()
                 for start in range(0, len(images), batch)]
    return np.concatenate(predicted) if predicted else np.zeros(0, dtype=np.int64)


def _accuracy(weights_path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the weights as saved (float16 round trip), through the real Target."""
    return float((predict_lenet(weights_path, images) == labels).sum()) / max(len(images), 1)


def load_mnist(data_dir: str | os.PathLike | None,
               download_root: str | os.PathLike | None = None) -> dict:
    """MNIST split for training: ``train_images``, ``train_labels``, ``held_out_images``,
    ``held_out_labels`` (uint8), ``split`` (one line saying which) and ``source``; from the
    IDX files in ``data_dir``, or torchvision's download when it is None.

    Raises:
        ValueError: one line naming the file or folder at fault.
    """
    if data_dir is not None:
        data = load_idx_mnist(data_dir)
        source = f"IDX files in {data_dir}"
    else:
        root = Path(download_root) if download_root is not None else DEFAULT_DOWNLOAD_ROOT
        data = load_torchvision_mnist(root, download=True)
        source = f"torchvision.datasets.MNIST (root {root})"
    train_images, train_labels, held_out_images, held_out_labels, split = _split(data)
    if len(train_images) == 0:
        raise ValueError(f"{data_dir}: no training images")
    return {"train_images": train_images, "train_labels": train_labels,
            "held_out_images": held_out_images, "held_out_labels": held_out_labels,
            "split": split, "source": source}


def fit_lenet(train_images: np.ndarray, train_labels: np.ndarray, num_classes: int = 10,
              seed: int = 0, epochs: int = 12, progress: bool = True) -> LeNet:
    """The recipe (module docstring) on uint8 (N, 28, 28) images and their labels (0 ..
    ``num_classes`` - 1); returns the trained model (float32, train mode off)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = LeNet(num_classes)
    images = torch.from_numpy(train_images).float().div(255).unsqueeze(1)
    labels = torch.from_numpy(train_labels.astype(np.int64))
    mean, std = MNIST_MEAN[0], MNIST_STD[0]

    steps_per_epoch = -(-len(images) // BATCH_SIZE)
    optimizer = torch.optim.Adam(model.parameters(), lr=MAX_LR)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=MAX_LR, epochs=epochs, steps_per_epoch=steps_per_epoch)

    model.train()
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(images)))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=True, unit="batch")
        for step in bar:
            index = order[step * BATCH_SIZE:(step + 1) * BATCH_SIZE]
            batch = (_shift(images[index], rng) - mean) / std
            loss = F.cross_entropy(model(batch), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
    return model.eval()


def train_lenet(data_dir: str | os.PathLike | None,
                out: str | os.PathLike,
                seed: int = 0,
                epochs: int = 12,
                progress: bool = True,
                download_root: str | os.PathLike | None = None,
                command: str | None = None,
                extra_images: np.ndarray | None = None,
                extra_labels: np.ndarray | None = None,
                data: dict | None = None) -> dict:
    """Train LeNet, save float16 safetensors to ``out`` and metrics to ``<out>.json``.

    Args:
        data_dir: folder with MNIST IDX gz files, or None to download via torchvision.
        out: where to write the weights (atomically).
        seed: seeds weight init, shuffling and augmentation.
        epochs: passes over the training images.
        progress: show a tqdm bar per epoch and print the result.
        download_root: torchvision download folder (default ``~/.cache/evofool/mnist``).
        command: the command line that started training, recorded in the sidecar.
        extra_images, extra_labels: more uint8 (N, 28, 28) training images and their
            labels, appended to the MNIST training images; a label 10 (the fooling images
            of paper sec. 5) gives the network an 11th output.
        data: :func:`load_mnist`'s result, to train several networks from one read of the
            files (``data_dir`` then only names the source).

    Returns:
        the metrics also written to the sidecar; ``held_out_accuracy`` is measured by
        reloading the saved file, i.e. after the float16 round trip, on the held-out MNIST
        digits (a digit put in the fooling class counts as an error).
    """
    started = time.perf_counter()
    out = Path(out)
    if data is None:
        data = load_mnist(data_dir, download_root)
    train_images, train_labels = data["train_images"], data["train_labels"]
    extra = 0
    if extra_images is not None and extra_labels is not None and len(extra_images):
        extra = len(extra_images)
        train_images = np.concatenate([train_images, extra_images.astype(np.uint8)])
        train_labels = np.concatenate([train_labels.astype(np.int64),
                                       extra_labels.astype(np.int64)])
    num_classes = max(10, int(train_labels.max()) + 1)
    lenet_class_names(num_classes)  # 10 or 11 outputs, else ValueError

    train_started = time.perf_counter()
    model = fit_lenet(train_images, train_labels, num_classes, seed, epochs, progress)
    train_seconds = time.perf_counter() - train_started

    save_lenet(model, out)
    held_out_images, held_out_labels = data["held_out_images"], data["held_out_labels"]
    accuracy = _accuracy(out, held_out_images, held_out_labels)
    metrics = {
        "held_out_accuracy": accuracy,
        "held_out_images": int(len(held_out_images)),
        "train_images": int(len(train_images)),
        "split": data["split"],
        "data_source": data["source"],
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "optimizer": f"Adam, OneCycleLR max_lr={MAX_LR}",
        "augmentation": f"random shifts of -{MAX_SHIFT}..{MAX_SHIFT} px",
        "seed": seed,
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "weights_dtype": "float16",
        "command": command,
    }
    if num_classes != 10 or extra:
        metrics.update({"outputs": num_classes, "extra_images": extra})
    write_json(out.with_name(out.name + ".json"), metrics)
    if progress:
        print(f"held-out accuracy {accuracy:.2%} on {len(held_out_images)} images "
              f"(float16 weights, {len(train_images)} training images, {epochs} epochs, "
              f"{metrics['seconds']:.0f} s, seed {seed}) -> {out}")
    return metrics
