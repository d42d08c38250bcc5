"""Fashion-MNIST as tensors: read through torchvision, normalized, split, saved.

The IDX files are read by torchvision's ``FashionMNIST`` (no parser of ours),
pointed at the folder the ``download`` stage wrote. Pixels become float32 in
[0, 1] (the VAE's Bernoulli likelihood needs [0, 1] targets); a seeded
validation set is split off the 60,000 training images, and the official
10,000 test images stay the test set.

Output folder: ``train.pt``, ``val.pt``, ``test.pt`` — each
``{"images": float32 (N, 1, 28, 28), "labels": int64 (N,)}`` — and ``meta.json``
(class names, training-set mean/std, split sizes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field
from torchvision.datasets import FashionMNIST

from genmodels.config import config
from genmodels.io import atomic_dir, torch_save, write_json

SPLITS = ("train", "val", "test")
N_TRAIN_OFFICIAL = 60_000


@config
class PrepareImagesConfig:
    val_size: Annotated[int, Field(ge=1, lt=N_TRAIN_OFFICIAL)] = 5000
    seed: int = 0


class _FashionMNISTFolder(FashionMNIST):
    """torchvision's reader over a flat folder of decompressed IDX files."""

    @property
    def raw_folder(self) -> str:
        return str(self.root)

    @property
    def processed_folder(self) -> str:  # no legacy processed/*.pt files here
        return str(Path(self.root) / "__no_processed__")


def read_fashion_mnist(raw: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train"|"test": (uint8 images (N, 28, 28), int64 labels (N,))}`` from ``raw``."""
    try:
        out = {}
        for split, train in (("train", True), ("test", False)):
            ds = _FashionMNISTFolder(raw, train=train)
            out[split] = (ds.data, ds.targets.long())
    except RuntimeError as err:
        raise FileNotFoundError(f"no Fashion-MNIST IDX files in {raw} ({err})") from None
    return out


def split_indices(n: int, val_size: int, seed: int) -> dict[str, torch.Tensor]:
    """A seeded, disjoint ``{"train", "val"}`` split of ``range(n)``, each sorted."""
    if not 0 < val_size < n:
        raise ValueError(f"prepare_images.val_size={val_size} must leave training images of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return {"val": order[:val_size].sort().values, "train": order[val_size:].sort().values}


def prepare(raw: Path, cfg: PrepareImagesConfig) -> tuple[dict, dict]:
    """Split and normalize; returns (splits, meta). Pure: writes nothing."""
    data = read_fashion_mnist(raw)
    images, labels = data["train"]
    index = split_indices(images.shape[0], cfg.val_size, cfg.seed)

    def to_float(x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28) in [0, 1]

    splits = {
        "train": {"images": to_float(images[index["train"]]), "labels": labels[index["train"]]},
        "val": {"images": to_float(images[index["val"]]), "labels": labels[index["val"]]},
        "test": {"images": to_float(data["test"][0]), "labels": data["test"][1]},
    }
    train_images = splits["train"]["images"]
    meta = {
        "classes": list(FashionMNIST.classes),
        "image_shape": list(train_images.shape[1:]),
        # Statistics of the training split only, for models that standardize inputs.
        "mean": train_images.mean().item(),
        "std": train_images.std().item(),
        "sizes": {s: int(splits[s]["labels"].numel()) for s in SPLITS},
        "seed": cfg.seed,
    }
    return splits, meta


def save_prepared(splits: dict, meta: dict, out: Path) -> None:
    """Write the split files and meta.json into ``out``, all or nothing."""
    with atomic_dir(out) as staging:
        for split, tensors in splits.items():
            torch_save(tensors, staging / f"{split}.pt")
        write_json(staging / "meta.json", meta)


def load_split(folder: Path, split: str) -> dict[str, torch.Tensor]:
    """``{"images", "labels"}`` of one prepared split."""
    return torch.load(Path(folder) / f"{split}.pt", weights_only=True)
