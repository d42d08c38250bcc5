"""A small CNN classifier of Fashion-MNIST: the feature space for sample metrics.

There are no Inception weights offline, and Inception (299x299 RGB ImageNet)
is a poor judge of 28x28 grayscale clothes anyway; a classifier trained on the
same data sees what distinguishes a shirt from a coat. Its penultimate layer
(``features``) plays Inception's pool3 role for FID, KID, precision/recall and
novelty; its class probabilities give the class-histogram entropy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pydantic
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from genmodels.config import as_dict, config, from_dict
from genmodels.device import pick_device, seed_everything
from genmodels.images.data import batches, load_split, n_batches
from genmodels.io import torch_save
from genmodels.tracking import start_run

PositiveInt = Annotated[int, pydantic.Field(gt=0)]


@config
class ClassifierConfig:
    """``train_classifier`` in params.yaml."""

    channels: tuple[PositiveInt, ...]  # conv widths; each conv is followed by 2x2 max-pooling
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
        self.fc = nn.Linear(c_in * h * w, cfg.feature_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.feature_dim, n_classes)

    def features(self, x):
        return F.relu(self.fc(self.convs(x).flatten(1)))  # (B, feature_dim)

    def forward(self, x):
        return self.out(self.drop(self.features(x)))  # (B, n_classes) logits


@torch.no_grad()
def accuracy(model: Classifier, images, labels, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for idx in batches(images, batch_size):
        correct += (model(images[idx]).argmax(1) == labels[idx]).sum().item()
    return correct / len(images)


def train_classifier(cfg: ClassifierConfig, data_dir: str | Path, checkpoint: str | Path,
                     metrics: str | Path, plots: str | Path, device: str = "auto") -> dict:
    """Train on the training split; report val accuracy per epoch and test accuracy at the end."""
    gen = seed_everything(cfg.seed)
    device = pick_device(device)
    train_x, train_y = load_split(data_dir, "train")
    val_x, val_y = load_split(data_dir, "val")
    test_x, test_y = load_split(data_dir, "test")
    n_classes = int(train_y.max()) + 1
    model = Classifier(cfg, tuple(train_x.shape[1:]), n_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = n_batches(len(train_x), cfg.batch_size, cfg.limit_batches)
    # Cosine decay to zero over the whole run: the last epochs fine-tune at small rates.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)

    with start_run("train_classifier", as_dict(cfg), metrics_path=metrics,
                   plots_path=plots) as run:
        for epoch in range(1, cfg.epochs + 1):
            t0, total = time.perf_counter(), 0.0
            model.train()
            for idx in tqdm(batches(train_x, cfg.batch_size, gen, cfg.limit_batches),
                            total=steps, desc=f"classifier epoch {epoch}", leave=False):
                loss = F.cross_entropy(model(train_x[idx].to(device)), train_y[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
                total += loss.item()
            model.cpu()
            run.log({"train/loss": total / steps, "val/accuracy": accuracy(model, val_x, val_y),
                     "time/epoch_s": time.perf_counter() - t0}, step=epoch)
            model.to(device)
        model.cpu()
        run.log({"test/accuracy": accuracy(model, test_x, test_y)})
        torch_save({"state_dict": model.state_dict(), "config": as_dict(cfg),
                    "image_shape": list(train_x.shape[1:]), "n_classes": n_classes}, checkpoint)
        return dict(run.latest)


def load_classifier(path: str | Path) -> Classifier:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = from_dict(ClassifierConfig, ckpt["config"], f"checkpoint {path}")
    model = Classifier(cfg, ckpt["image_shape"], ckpt["n_classes"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
