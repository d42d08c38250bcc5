"""Training the classifier whose features the image metrics use (``loop.fit``).

Cross-entropy steps with Adam and a cosine decay to zero over the whole run;
validation accuracy after every epoch, test accuracy at the end. Under
torchrun: DistributedDataParallel, each rank its share of every batch
(batch-norm statistics are each rank's own, and rank 0's are kept).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from genmodels import distributed, speed
from genmodels.config import as_dict
from genmodels.device import seed_everything
from genmodels.distributed import SINGLE, Dist, autocast, reduce_sum, shard
from genmodels.export import ClassProbabilities, pixels_example
from genmodels.finite import grad_norm
from genmodels.images.classifier import Classifier, ClassifierConfig, accuracy
from genmodels.images.data import batches, load_split, n_batches
from genmodels.io import torch_save
from genmodels.loop import fit
from genmodels.resume import Resume


class ClassifierTrainee:
    """The classifier for ``loop.fit``: cross-entropy steps, validation accuracy per epoch."""

    headline = ("train/loss", "val/accuracy")
    tags: dict[str, str] = {}

    def __init__(self, cfg: ClassifierConfig, splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
                 device: torch.device, info: Dist = SINGLE):
        self.cfg, self.info, self.device = cfg, info, device
        (self.train_x, self.train_y), (self.val_x, self.val_y), (self.test_x, self.test_y) = (
            splits[k] for k in ("train", "val", "test"))  # images (N, C, H, W), labels (N,)
        self.n_classes = int(self.train_y.max()) + 1
        self.model = Classifier(cfg, tuple(self.train_x.shape[1:]), self.n_classes).to(device)
        self.ddp = distributed.wrap(self.model, info, device)
        distributed.seed_noise(cfg.seed, info)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr,
                                    **speed.adam_options(self.model.parameters()))
        self.steps_per_epoch = n_batches(len(self.train_x), cfg.batch_size, cfg.limit_batches)
        # Cosine decay to zero over the whole run: the last epochs fine-tune at small rates.
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.opt, T_max=cfg.epochs * self.steps_per_epoch)
        self.total = 0.0

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])

    def epoch(self, gen, progress):
        self.total = progress["total"] if progress else 0.0
        self.ddp.train()
        return batches(self.train_x, self.cfg.batch_size, gen, self.cfg.limit_batches)

    def step(self, idx, step):
        local = shard(idx, self.info)  # this rank's share of the batch
        with autocast(self.device):
            loss = F.cross_entropy(self.ddp(self.train_x[local].to(self.device)),
                                   self.train_y[local].to(self.device))
        share = len(local) / len(idx)
        self.opt.zero_grad(set_to_none=True)
        # DDP averages the ranks' gradients; weighting each by its share of the batch
        # makes that the gradient of the whole batch's mean loss, even if shares differ.
        (loss * share * self.info.world_size).backward()
        norm = grad_norm(self.model.parameters())
        self.opt.step()
        self.schedule.step()
        self.total += loss.item() * share
        return loss, norm

    def progress(self) -> dict:
        return {"total": self.total}

    def end_epoch(self, epoch, seconds, run) -> dict[str, float]:
        distributed.broadcast_(self.model.buffers(), self.info)  # batch-norm statistics: rank 0's
        train_loss = reduce_sum({"loss": self.total}, self.info)["loss"] / self.steps_per_epoch
        return {"train/loss": train_loss,
                "val/accuracy": accuracy(self.model, self.val_x, self.val_y, info=self.info)}

    def weights(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def finish(self, best) -> dict[str, float]:
        return {"test/accuracy": accuracy(self.model, self.test_x, self.test_y, info=self.info)}

    def save(self, checkpoint: Path) -> None:
        torch_save({"state_dict": self.model.cpu().state_dict(), "config": as_dict(self.cfg),
                    "image_shape": list(self.train_x.shape[1:]), "n_classes": self.n_classes},
                   checkpoint)

    def export(self, checkpoint: Path):  # logged, not registered: nothing to promote
        return None, ClassProbabilities(self.model), pixels_example(tuple(self.train_x.shape[1:]))


def train_classifier(cfg: ClassifierConfig, data_dir: str | Path, checkpoint: str | Path,
                     metrics: str | Path, plots: str | Path, device: str = "auto",
                     resume: Resume | None = None) -> dict:
    """Train on the training split; report val accuracy per epoch and test accuracy at the end.

    Under torchrun: DistributedDataParallel, each rank its share of every batch
    (batch-norm statistics are each rank's own and rank 0's are kept). With
    ``resume`` a killed run continues from its last resume checkpoint.
    """
    info, device = distributed.init(device)
    if cfg.batch_size < info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the {info.world_size} ranks")
    gen = seed_everything(cfg.seed)  # the data order: the same on every rank
    splits = {split: load_split(data_dir, split) for split in ("train", "val", "test")}
    trainee = ClassifierTrainee(cfg, splits, device, info)
    return fit(trainee, stage="train_classifier", epochs=cfg.epochs, gen=gen,
               params=as_dict(cfg), checkpoint=checkpoint, metrics=metrics, plots=plots,
               inputs=[data_dir], resume=resume, info=info)
