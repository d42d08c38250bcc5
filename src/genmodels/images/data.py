"""Load the prepared Fashion-MNIST tensors and cut them into minibatches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

SPLITS = ("train", "val", "test")


def load_split(folder: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (N, C, H, W) float32 in [0, 1], labels (N,) int64)`` of one split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    path = Path(folder) / f"{split}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare_images stage first")
    data = torch.load(path, weights_only=True)
    images, labels = data["images"], data["labels"]
    if images.dim() != 4 or images.dtype != torch.float32:
        raise ValueError(f"{path}: expected float32 images (N, C, H, W), got "
                         f"{images.dtype} {tuple(images.shape)}")
    if float(images.min()) < 0.0 or float(images.max()) > 1.0:
        raise ValueError(f"{path}: pixel intensities must lie in [0, 1]")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"{path}: {len(labels)} labels for {len(images)} images")
    return images, labels


def load_classes(folder: str | Path) -> list[str]:
    """The class names, index = label (from the prepare stage's ``meta.json``)."""
    return list(json.loads((Path(folder) / "meta.json").read_text())["classes"])


def batches(
    images: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    limit: int = 0,
) -> Iterator[torch.Tensor]:
    """Index batches over ``images``: shuffled with ``generator``, in order without it.

    ``limit`` > 0 stops after that many batches (tiny smoke runs).
    """
    n = len(images)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    n_batches = (n + batch_size - 1) // batch_size
    if limit > 0:
        n_batches = min(n_batches, limit)
    for i in range(n_batches):
        yield order[i * batch_size : (i + 1) * batch_size]


def n_batches(n: int, batch_size: int, limit: int = 0) -> int:
    full = (n + batch_size - 1) // batch_size
    return min(full, limit) if limit > 0 else full
