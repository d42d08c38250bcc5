"""The image families' part of the training loop (``loop.fit``).

Each epoch: ``model.train_step`` over shuffled training batches (the AE/VAE
step is one optimizer; the VAE-GAN writes out its three), then a one-Gaussian
code prior (the AE's, code_prior.py) refitted to the training codes, the same
named loss terms on the validation split, and a sample grid decoded from one
fixed noise batch (so the grids of successive epochs are comparable). A mixture
prior takes EM, seconds, so it is fitted once, after the last epoch; until then
the grids decode N(0, I).

Under torchrun each rank trains on its share of every batch (``distributed.py``);
``loop.fit`` writes the resume checkpoints that let a killed run go on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from genmodels import distributed, precision
from genmodels.config import as_dict
from genmodels.device import seed_everything
from genmodels.distributed import SINGLE, Dist, autocast, reduce_sum, shard
from genmodels.export import ImageGenerator, image_example
from genmodels.finite import GradNorms
from genmodels.images.autoencoder import ImageModel
from genmodels.images.data import batches, load_split, n_batches
from genmodels.images.grid import save_grid_png
from genmodels.images.registry import build_model, save_checkpoint
from genmodels.loop import fit
from genmodels.resume import Resume

N_FIXED = 64  # images in each per-epoch sample grid (8 x 8)


@torch.no_grad()
def evaluate_terms(model: ImageModel, images: torch.Tensor, batch_size: int,
                   limit: int = 0, info: Dist = SINGLE) -> dict[str, float]:
    """Every loss term averaged over ``images`` (per image), in eval mode; with several
    ranks each evaluates its share of every batch and the sums are added."""
    model.eval()
    device, sums, count = model.device, {}, 0
    for idx in batches(images, batch_size, limit=limit):
        x = images[shard(idx, info)].to(device)
        with autocast(device):
            terms = model.loss(x, model(x))
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(x)
        count += len(x)
    model.train()
    sums = reduce_sum({**sums, "_count": count}, info)
    count = sums.pop("_count")
    return {k: v / count for k, v in sums.items()}


def fit_prior(model: ImageModel, cfg, train_images: torch.Tensor) -> None:
    """Fit the code prior (code_prior.py) to the codes of the first ``prior_images``."""
    model.fit_prior(train_images[: cfg.prior_images], cfg.seed)


class ImageTrainee:
    """An image variant for ``loop.fit``: its model, optimizers and data."""

    headline = ("train/loss", "val/loss")

    def __init__(self, cfg, train_x: torch.Tensor, val_x: torch.Tensor, gen: torch.Generator,
                 device: torch.device, info: Dist = SINGLE, tmp: str | Path = "."):
        self.cfg, self.info, self.device, self.tmp = cfg, info, device, Path(tmp)
        self.bf16 = precision.uses_bf16(cfg.precision, device)
        self.tags = {"family": cfg.family, "precision": "bf16" if self.bf16 else "fp32"}
        self.train_x, self.val_x = train_x, val_x  # (N, C, H, W) in [0, 1]
        self.image_shape = tuple(self.train_x.shape[1:])
        self.model = build_model(cfg, self.image_shape).to(device)
        self.optimizers = self.model.make_optimizers(cfg.lr)
        self.fixed_noise = torch.randn(N_FIXED, cfg.latent_dim, generator=gen).to(device)
        self.steps_per_epoch = n_batches(len(self.train_x), cfg.batch_size, cfg.limit_batches)
        distributed.seed_noise(cfg.seed, info)
        distributed.broadcast_(self.model.state_dict().values(), info)
        self.averager = distributed.GradientAverager(self.optimizers, info)
        self.norms = GradNorms(self.optimizers)  # each optimizer's gradient norm, after averaging
        self.sums: dict[str, float] = {}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(),
                "optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state["model"])
        for opt, saved in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(saved)

    def epoch(self, gen, progress):
        self.sums = dict(progress["sums"]) if progress else {}
        self.model.train()
        return batches(self.train_x, self.cfg.batch_size, gen, self.cfg.limit_batches)

    def step(self, idx, step):
        x = self.train_x[shard(idx, self.info)].to(self.device)  # this rank's share of the batch
        self.averager.share = len(x) / len(idx)
        with precision.autocast(self.device, self.bf16):  # the whole step, backward too
            terms = self.model.train_step(x, self.optimizers)
        for k, v in terms.items():  # weighted so that the ranks' sums add up to the batch mean
            self.sums[k] = self.sums.get(k, 0.0) + v * len(x) / len(idx)
        return terms["loss"], self.norms.pop()

    def progress(self) -> dict:
        return {"sums": self.sums}

    def end_epoch(self, epoch, seconds, run) -> dict[str, float]:
        model = self.model
        distributed.broadcast_(model.buffers(), self.info)  # batch-norm statistics: rank 0's
        if model.prior is not None and model.prior.components == 1:
            fit_prior(model, self.cfg, self.train_x)  # closed form: refit every epoch (grids)
        val = evaluate_terms(model, self.val_x, 500, self.cfg.limit_batches, self.info)
        logged = {f"train/{k}": v / self.steps_per_epoch
                  for k, v in reduce_sum(self.sums, self.info).items()}
        logged |= {f"val/{k}": v for k, v in val.items()}
        model.eval()
        with torch.no_grad():  # the same noise every epoch: comparable grids
            grid = torch.sigmoid(model.decode(model.z_from_noise(self.fixed_noise)))
        png = self.tmp / f"samples_epoch{epoch:03d}.png"
        save_grid_png(grid, png, nrow=8, padding=1)
        run.log_artifact(png, artifact_path="samples")
        return logged

    def weights(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def finish(self, best) -> dict[str, float]:  # the last epoch's weights
        if self.model.prior is not None and self.model.prior.components > 1:
            fit_prior(self.model, self.cfg, self.train_x)  # EM: seconds, so once, at the end
        return {}

    def save(self, checkpoint: Path) -> None:
        save_checkpoint(self.model.cpu(), self.image_shape, checkpoint)

    def export(self, checkpoint: Path):  # the generator: noise -> images
        return "image", ImageGenerator(self.model), image_example(self.cfg.latent_dim)


def train(cfg, data_dir: str | Path, checkpoint: str | Path, metrics: str | Path,
          plots: str | Path, stage: str = "train_image", device: str = "auto",
          resume: Resume | None = None) -> dict:
    """Train the variant ``cfg`` on ``data_dir``; write the checkpoint, metrics and plots.

    Under torchrun each rank trains on its share of every batch (see distributed.py);
    with ``resume`` a killed run continues from its last resume checkpoint.
    """
    info, device = distributed.init(device)
    if cfg.batch_size < info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the {info.world_size} ranks")
    gen = seed_everything(cfg.seed)  # the data order: the same on every rank
    train_x, _ = load_split(data_dir, "train")
    val_x, _ = load_split(data_dir, "val")
    with tempfile.TemporaryDirectory() as tmp:  # the per-epoch sample grids, before upload
        trainee = ImageTrainee(cfg, train_x, val_x, gen, device, info, tmp)
        return fit(trainee, stage=stage, epochs=cfg.epochs, gen=gen, params=as_dict(cfg),
                   checkpoint=checkpoint, metrics=metrics, plots=plots, inputs=[data_dir],
                   resume=resume, info=info)
