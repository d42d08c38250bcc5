"""A batch of images as one PNG grid: what ``torchvision.utils.save_image`` writes, pixel
for pixel, without importing torchvision.

Why not torchvision's: importing any part of torchvision runs its package ``__init__``,
which imports its detection ops and through them ``torch._dynamo``: about 3 s per process
on a 2-core CPU, paid by every training and rendering stage for one PNG per epoch.
tests/test_image_pipeline.py checks that the bytes match torchvision's.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch


@torch.no_grad()
def save_grid_png(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2,
                  pad_value: float = 0.0) -> Path:
    """(B, C, H, W) with C in {1, 3}, values in [0, 1] -> an RGB PNG at ``path``: ``nrow``
    images per row, ``padding`` pixels of ``pad_value`` around and between them."""
    from PIL import Image

    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"save_grid_png: expected (B, 1 or 3, H, W) images, got {tuple(images.shape)}")
    images = images.detach().float().cpu().expand(-1, 3, -1, -1)  # grey -> RGB, as torchvision
    b, c, h, w = images.shape
    cols = min(nrow, b)
    rows = math.ceil(b / cols)
    if b == 1:
        grid = images[0]  # torchvision pads no single image
    else:
        grid = torch.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding),
                          float(pad_value))
        for k in range(b):
            top = (k // cols) * (h + padding) + padding
            left = (k % cols) * (w + padding) + padding
            grid[:, top:top + h, left:left + w] = images[k]
    # + 0.5 then truncation: round to the nearest of 0..255 (torchvision's save_image)
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    path = Path(path)
    Image.fromarray(pixels).save(path)
    return path
