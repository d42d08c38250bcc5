"""A small CNN classifier of Fashion-MNIST: the feature space for sample metrics.

There are no Inception weights offline, and Inception (299x299 RGB ImageNet)
is a poor judge of 28x28 grayscale clothes anyway; a classifier trained on the
same data sees what distinguishes a shirt from a coat. Its penultimate layer
(``features``) plays Inception's pool3 role for FID, KID, precision/recall and
novelty; its class probabilities give the class-histogram entropy.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Annotated

import pydantic
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from genmodels import distributed, speed
from genmodels.checkpoints import model_mismatch, read_checkpoint
from genmodels.config import as_dict, config, from_dict
from genmodels.device import seed_everything
from genmodels.distributed import SINGLE, Dist, autocast, reduce_sum, shard
from genmodels.finite import FiniteGuard, grad_norm
from genmodels.images.autoencoder import Channels
from genmodels.images.data import batches, load_split, n_batches
from genmodels.io import torch_save
from genmodels.resume import Resume, rng_state, set_rng_state

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


def train_classifier(cfg: ClassifierConfig, data_dir: str | Path, checkpoint: str | Path,
                     metrics: str | Path, plots: str | Path, device: str = "auto",
                     resume: Resume | None = None) -> dict:
    """Train on the training split; report val accuracy per epoch and test accuracy at the end.

    Under torchrun: DistributedDataParallel, each rank its share of every batch
    (batch-norm statistics are each rank's own and rank 0's are kept). With
    ``resume`` a killed run continues from its last resume checkpoint.
    """
    info, device = distributed.init(device)
    resume = resume or Resume()
    if cfg.batch_size < info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the {info.world_size} ranks")
    gen = seed_everything(cfg.seed)  # the data order: the same on every rank
    train_x, train_y = load_split(data_dir, "train")
    val_x, val_y = load_split(data_dir, "val")
    test_x, test_y = load_split(data_dir, "test")
    n_classes = int(train_y.max()) + 1
    model = Classifier(cfg, tuple(train_x.shape[1:]), n_classes).to(device)
    ddp = distributed.wrap(model, info, device)
    distributed.seed_noise(cfg.seed, info)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, **speed.adam_options(model.parameters()))
    steps = n_batches(len(train_x), cfg.batch_size, cfg.limit_batches)
    # Cosine decay to zero over the whole run: the last epochs fine-tune at small rates.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)

    at = resume.state or {"epoch": 1, "step": 0}  # where a killed run stopped, if any
    if resume.state:
        model.load_state_dict(at["model"])
        opt.load_state_dict(at["optimizer"])
        schedule.load_state_dict(at["schedule"])
        set_rng_state(resume.local["rng"])
    step = at["step"]

    with distributed.tracking_run(info, "train_classifier", as_dict(cfg), metrics_path=metrics,
                                  plots_path=plots, run_id=resume.run_id,
                                  inputs=[data_dir]) as run:
        if resume.state:
            run.load_state_dict(at["run"])
        for epoch in range(at["epoch"], cfg.epochs + 1):
            resumed = resume.state is not None and epoch == at["epoch"]
            epoch_gen = at["epoch_gen"] if resumed else gen.get_state()  # this epoch's shuffle
            gen.set_state(epoch_gen)
            done = at["batch"] if resumed else 0
            total = resume.local["total"] if resumed else 0.0
            t0 = time.perf_counter()
            ddp.train()
            order = batches(train_x, cfg.batch_size, gen, cfg.limit_batches)
            guard = FiniteGuard(f"train_classifier epoch {epoch}")
            for idx in tqdm(itertools.islice(order, done, None), total=steps, initial=done,
                            desc=f"classifier epoch {epoch}", leave=False,
                            disable=not info.is_main):
                local = shard(idx, info)  # this rank's share of the batch
                with autocast(device):
                    loss = F.cross_entropy(ddp(train_x[local].to(device)),
                                           train_y[local].to(device))
                share = len(local) / len(idx)
                opt.zero_grad(set_to_none=True)
                # DDP averages the ranks' gradients; weighting each by its share of the batch
                # makes that the gradient of the whole batch's mean loss, even if shares differ.
                (loss * share * info.world_size).backward()
                norm = grad_norm(model.parameters())
                opt.step()
                schedule.step()
                total += loss.item() * share
                done, step = done + 1, step + 1
                guard.check(loss, norm, step)  # a diverged run stops here
                if resume.due(step):
                    resume.save({"epoch": epoch, "batch": done, "step": step,
                                 "epoch_gen": epoch_gen, "model": model.state_dict(),
                                 "optimizer": opt.state_dict(), "schedule": schedule.state_dict(),
                                 "run": run.state_dict()},
                                {"rng": rng_state(), "total": total})
            distributed.broadcast_(model.buffers(), info)  # batch-norm statistics: rank 0's
            train_loss = reduce_sum({"loss": total}, info)["loss"] / steps
            run.log({"train/loss": train_loss,
                     "val/accuracy": accuracy(model, val_x, val_y, info=info),
                     "time/epoch_s": time.perf_counter() - t0}, step=epoch)
        run.log({"test/accuracy": accuracy(model, test_x, test_y, info=info)})
        if info.is_main:
            torch_save({"state_dict": model.cpu().state_dict(), "config": as_dict(cfg),
                        "image_shape": list(train_x.shape[1:]), "n_classes": n_classes},
                       checkpoint)
        resume.finish()
        return dict(run.latest)


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
