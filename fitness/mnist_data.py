"""MNIST loaders: the original gzip IDX files (offline), or torchvision's download (online).

Both return plain uint8 numpy arrays, so training and tests do not care where the digits
came from. The IDX reader is strict: a missing, truncated or mislabeled file raises a
``ValueError`` whose one-line message names the file and what was expected, because a
silently wrong training set would only show up much later as a poor classifier.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension (count)

# Stem of each split's file names, in order of preference: the full official training set
# if present, else the 5,000-image subset shipped for offline machines.
TRAIN_STEMS = ("train", "train-5k")
TEST_STEM = "t10k"


def _read_gz(path: Path) -> bytes:
    if not path.is_file():
        raise ValueError(f"{path}: MNIST file not found (expected a gzip IDX file)")
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable gzip file ({error})") from None


def _read_idx(path: str | os.PathLike, magic: int, ndim: int, what: str) -> np.ndarray:
    """The uint8 payload of a gzip IDX file with ``ndim`` dimensions, shaped by its header;
    ``what``: "image" or "label", for the messages."""
    path = Path(path)
    data = _read_gz(path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: too short for an IDX {what} header (need {header} bytes, "
                         f"got {len(data)})")
    found, *shape = (int(v) for v in np.frombuffer(data, dtype=">u4", count=1 + ndim))
    if found != magic:
        raise ValueError(f"{path}: bad magic number {found} (expected {magic} "
                         f"for IDX uint8 {what}s)")
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        sizes = f" of {'x'.join(map(str, shape[1:]))}" if ndim > 1 else ""
        raise ValueError(f"{path}: expected {expected} bytes for {shape[0]} {what}s{sizes}, "
                         f"got {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read a gzip IDX3 image file into a uint8 array of shape (count, rows, cols)."""
    return _read_idx(path, IMAGES_MAGIC, 3, "image")


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a gzip IDX1 label file into a uint8 array of shape (count,)."""
    labels = _read_idx(path, LABELS_MAGIC, 1, "label")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{path}: label {labels.max()} out of range (expected digits 0-9)")
    return labels


def _read_split(data_dir: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx_images(data_dir / f"{stem}-images-idx3-ubyte.gz")
    labels = read_idx_labels(data_dir / f"{stem}-labels-idx1-ubyte.gz")
    if len(images) != len(labels):
        raise ValueError(f"{data_dir / stem}-*: {len(images)} images but {len(labels)} labels "
                         f"(expected equal counts)")
    return images, labels


def load_idx_mnist(data_dir: str | os.PathLike) -> dict:
    """Load MNIST from gzip IDX files in ``data_dir``.

    The training split is ``train-*`` (the full 60,000) if present, else ``train-5k-*``;
    the test split is always ``t10k-*``.

    Returns:
        dict with ``train_images`` (N, 28, 28) uint8, ``train_labels`` (N,) uint8,
        ``test_images``, ``test_labels`` likewise, and ``train_source``: the stem that
        was read (``"train"`` or ``"train-5k"``), so callers can report which it was.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"{data_dir}: MNIST directory not found")
    for stem in TRAIN_STEMS:
        if (data_dir / f"{stem}-images-idx3-ubyte.gz").exists():
            train_stem = stem
            break
    else:
        raise ValueError(f"{data_dir}: no MNIST training images found (expected "
                         f"train-images-idx3-ubyte.gz or train-5k-images-idx3-ubyte.gz)")
    train_images, train_labels = _read_split(data_dir, train_stem)
    test_images, test_labels = _read_split(data_dir, TEST_STEM)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
        "train_source": train_stem,
    }


def load_torchvision_mnist(root: str | os.PathLike, download: bool = True) -> dict:
    """Load the full MNIST (60,000 train, 10,000 test) via torchvision, downloading if asked.

    Returns the same dict layout as :func:`load_idx_mnist`, with ``train_source="train"``.
    """
    from torchvision.datasets import MNIST  # imported here: only this path needs it

    try:
        train = MNIST(str(root), train=True, download=download)
        test = MNIST(str(root), train=False, download=download)
    except (RuntimeError, OSError) as error:
        # torchvision reports "not found" and failed downloads as multi-line RuntimeErrors.
        message = str(error).strip() or type(error).__name__
        first_line = message.splitlines()[0]
        raise ValueError(f"{root}: could not load torchvision MNIST ({first_line}); "
                         f"use --data-dir with IDX files when offline") from None
    return {
        "train_images": train.data.numpy().astype(np.uint8),
        "train_labels": train.targets.numpy().astype(np.uint8),
        "test_images": test.data.numpy().astype(np.uint8),
        "test_labels": test.targets.numpy().astype(np.uint8),
        "train_source": "train",
    }
