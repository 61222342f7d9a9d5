"""The real image a perturbation search starts from: a file, an MNIST test digit or a
scikit-image sample photo, as 8-bit pixels at the target's size.

``start`` strings (the ``genome.start`` key of a perturbation experiment):

* ``mnist-test:INDEX``: digit INDEX of the MNIST test set (``t10k-*`` IDX files in
  ``mnist_dir`` or ``$EVOFOOL_MNIST_DIR``);
* ``skimage:NAME``: a sample photo that ships with scikit-image (``coffee``, ``chelsea``,
  ``astronaut``, ...);
* anything else: the path of an image file (PNG, JPEG, ...).

A photo of another shape is centre-cropped to the target's aspect and resized (Lanczos), a
colour image is turned gray for a 1-channel target and a gray one repeated for RGB.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# scikit-image's bundled images that are 2-D photos or drawings (no download needed)
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins",
                  "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
                  "immunohistochemistry", "logo", "moon", "page", "retina", "rocket", "text")
START_WORDS = ("an image file, mnist-test:INDEX (a digit of the MNIST test set) or "
               "skimage:NAME (a scikit-image photo such as skimage:coffee)")
MAX_START_FILE_BYTES = 64 * 1024 * 1024


@dataclass
class StartImage:
    pixels: np.ndarray      # uint8 (channels, height, width)
    label: int | None       # the true class where the source says (MNIST), else None
    source: str             # the start string, for reports


def load_start_image(start: str, channels: int, size: tuple[int, int],
                     mnist_dir: str | None = None) -> StartImage:
    """The image ``start`` names at ``channels`` x ``size``; ValueError of one line (naming
    ``start`` and what would be valid) when it cannot be read."""
    label = None
    if start.startswith("mnist-test:"):
        image, label = _mnist_test_digit(start, mnist_dir)
    elif start.startswith("skimage:"):
        image = _skimage_photo(start)
    else:
        image = _image_file(start)
    image = image.convert("L" if channels == 1 else "RGB")
    height, width = size
    if image.size != (width, height):
        image = ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    pixels = np.array(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return StartImage(np.ascontiguousarray(pixels), label, start)


def _mnist_test_digit(start: str, mnist_dir: str | None) -> tuple[Image.Image, int]:
    from evofool.fitness.mnist_data import TEST_STEM, read_idx_images, read_idx_labels
    index_text = start.split(":", 1)[1]
    if not index_text.isdigit():
        raise ValueError(f"start '{start}': expected mnist-test:INDEX with INDEX an integer "
                         "from 0 to 9999")
    folder = mnist_dir or os.environ.get("EVOFOOL_MNIST_DIR")
    if not folder:
        raise ValueError(f"start '{start}' needs the MNIST test files: set genome.mnist_dir "
                         "or EVOFOOL_MNIST_DIR to a folder holding t10k-images-idx3-ubyte.gz")
    images = read_idx_images(Path(folder) / f"{TEST_STEM}-images-idx3-ubyte.gz")
    labels = read_idx_labels(Path(folder) / f"{TEST_STEM}-labels-idx1-ubyte.gz")
    index = int(index_text)
    if not index < min(len(images), len(labels)):
        raise ValueError(f"start '{start}': the MNIST test set has {len(images)} digits "
                         f"(indices 0 to {len(images) - 1})")
    return Image.fromarray(images[index]), int(labels[index])


def _skimage_photo(start: str) -> Image.Image:
    name = start.split(":", 1)[1]
    if name not in SKIMAGE_PHOTOS:
        raise ValueError(f"start '{start}': expected one of scikit-image's photos: "
                         f"{', '.join(SKIMAGE_PHOTOS)}")
    try:
        import skimage.data
    except ImportError:
        raise ValueError(f"start '{start}' needs scikit-image: pip install scikit-image") \
            from None
    try:
        pixels = getattr(skimage.data, name)()
    except Exception as exc:  # a photo that scikit-image would have to download
        raise ValueError(f"start '{start}': scikit-image could not load it "
                         f"({type(exc).__name__})") from None
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:  # boolean or float drawings: to 8 bits
        pixels = (np.clip(pixels.astype(np.float64) / max(pixels.max(), 1), 0, 1)
                  * 255).round().astype(np.uint8)
    return Image.fromarray(pixels[..., :3] if pixels.ndim == 3 else pixels)


def _image_file(start: str) -> Image.Image:
    path = Path(start)
    if not path.is_file():
        raise ValueError(f"start '{start}' is not a file: expected {START_WORDS}")
    if path.stat().st_size > MAX_START_FILE_BYTES:
        raise ValueError(f"start '{start}' is larger than {MAX_START_FILE_BYTES >> 20} MiB")
    try:
        with Image.open(path) as image:
            if image.width * image.height > 8192 * 8192:
                raise ValueError(f"start '{start}' is {image.width} x {image.height} pixels, "
                                 "expected at most 8192 x 8192")
            image.load()
            return ImageOps.exif_transpose(image)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"start '{start}' is not an image PIL can read "
                         f"({type(exc).__name__})") from None
