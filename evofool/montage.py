"""A labelled grid of elite images, the picture of a whole archive at a glance."""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def confidence_label(confidence: float | None, decimals: int = 2) -> str:
    """Percent, rounded down so that 99.996% never reads as 100.00%."""
    if confidence is None:
        return "empty"
    scale = 10 ** (decimals + 2)
    return f"{math.floor(confidence * scale) / 10 ** decimals:.{decimals}f}%"


def to_uint8(images) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] (an array, or a tensor on any device) -> (N, H, W, C)
    uint8 (how a PNG stores them)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu()
    array = np.asarray(images, dtype=np.float32)
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(0, 2, 3, 1)


def make_montage(images: np.ndarray, labels: list[str], tile: int = 112,
                 columns: int | None = None) -> Image.Image:
    """Tiles of ``images`` ((N, H, W, C) uint8, ``None`` rows allowed for empty cells) scaled
    to ``tile`` pixels (nearest neighbour, so single pixels stay visible), each captioned."""
    n = len(labels)
    columns = columns or min(n, 10)
    rows = math.ceil(n / columns)
    font = ImageFont.load_default()
    caption = 14 * max(label.count("\n") + 1 for label in labels) + 4
    sheet = Image.new("RGB", (columns * (tile + 4) + 4, rows * (tile + caption + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for i, label in enumerate(labels):
        x = 4 + (i % columns) * (tile + 4)
        y = 4 + (i // columns) * (tile + caption + 4)
        if images[i] is not None:
            picture = images[i] if images[i].shape[-1] == 3 else images[i][..., 0]
            tile_image = Image.fromarray(picture).convert("RGB").resize((tile, tile),
                                                                        Image.NEAREST)
            sheet.paste(tile_image, (x, y))
        else:
            draw.rectangle([x, y, x + tile - 1, y + tile - 1], outline="gray")
        draw.multiline_text((x + 2, y + tile + 2), label, fill="black", font=font, spacing=2)
    return sheet
