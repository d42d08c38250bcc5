"""A small CNN classifier of Fashion-MNIST: the feature space for sample metrics.

Inception (299x299 RGB ImageNet) costs about 0.1 s per image on a CPU, so the
papers' Inception-FID is opt-in (``inception.py``); a classifier trained on the
same data is cheap and sees what distinguishes a shirt from a coat. Its penultimate layer
(``features``) plays Inception's pool3 role for FID, KID, precision/recall and
novelty; its class probabilities give the class-histogram entropy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pydantic
import torch
import torch.nn as nn
import torch.nn.functional as F

from genmodels import speed
from genmodels.checkpoints import model_mismatch, read_checkpoint
from genmodels.config import config, from_dict
from genmodels.distributed import SINGLE, Dist, autocast, reduce_sum, shard
from genmodels.images.autoencoder import Channels
from genmodels.images.data import batches

PositiveInt = Annotated[int, pydantic.Field(gt=0)]


@config
class ClassifierConfig:
    """``train_classifier`` in params.yaml."""

    channels: Channels  # conv widths; each conv is followed by 2x2 max-pooling
    feature_dim: PositiveInt          # width of the penultimate layer (the metric features)
    dropout: Annotated[float, pydantic.Field(ge=0, lt=1)]
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: Annotated[float, pydantic.Field(gt=0)]
    seed: int
    limit_batches: Annotated[int, pydantic.Field(ge=0)] = 0


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig, image_shape=(1, 28, 28), n_classes: int = 10):
        super().__init__()
        self.config = cfg
        c, h, w = image_shape
        layers, c_in = [], c
        for c_out in cfg.channels:  # 28 -> 14 -> 7
            # Batch norm: ~2 points of accuracy more after a few epochs on a CPU budget.
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(), nn.MaxPool2d(2)]
            c_in, h, w = c_out, h // 2, w // 2
        self.convs = nn.Sequential(*layers)
        self.fc = speed.Linear(c_in * h * w, cfg.feature_dim)
        self.drop = speed.Dropout(cfg.dropout)
        self.out = speed.Linear(cfg.feature_dim, n_classes)
        speed.channels_last(self)  # oneDNN's convolutions run in NHWC: the first one ~10x faster

    def features(self, x):
        return F.relu(self.fc(speed.flatten(self.convs(x))))  # (B, feature_dim)

    def forward(self, x):
        return self.out(self.drop(self.features(x)))  # (B, n_classes) logits


@torch.no_grad()
def accuracy(model: Classifier, images, labels, batch_size: int = 1000,
             info: Dist = SINGLE) -> float:
    """Share of ``images`` classified right; with several ranks each takes its share."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for idx in batches(images, batch_size):
        idx = shard(idx, info)
        with autocast(device):
            logits = model(images[idx].to(device))
        correct += (logits.argmax(1).cpu() == labels[idx]).sum().item()
    return reduce_sum({"correct": correct}, info)["correct"] / len(images)


def load_classifier(path: str | Path) -> Classifier:
    """The classifier of a checkpoint; :class:`~genmodels.checkpoints.CheckpointError`
    (one line) for anything else."""
    ckpt = read_checkpoint(path, "classifier")
    try:
        cfg = from_dict(ClassifierConfig, ckpt["config"], f"checkpoint {path}")
        model = Classifier(cfg, ckpt["image_shape"], ckpt["n_classes"])
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError, TypeError, KeyError) as err:
        raise model_mismatch(path, err, "a classifier checkpoint") from None
    return model.eval()
