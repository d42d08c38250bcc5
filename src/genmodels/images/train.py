"""One training loop for every image family.

Each epoch: ``model.train_step`` over shuffled training batches (the AE/VAE
step is one optimizer; the VAE-GAN writes out its three), then the same named
loss terms on the validation split, a sample grid decoded from one fixed noise
batch (so the grids of successive epochs are comparable), and the AE's
Gaussian refitted to its training codes.

Under torchrun each rank trains on its share of every batch (``distributed.py``);
a resume checkpoint every ``checkpoint_every`` steps lets a killed run go on
from where it stopped (``resume.py``).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import torch
from torchvision.utils import save_image
from tqdm import tqdm

from genmodels import distributed
from genmodels.config import as_dict
from genmodels.device import seed_everything
from genmodels.distributed import SINGLE, Dist, autocast, reduce_sum, shard
from genmodels.export import ImageGenerator, image_example, log_model
from genmodels.finite import FiniteGuard, GradNorms
from genmodels.images.autoencoder import Autoencoder, ImageModel
from genmodels.images.data import batches, load_split, n_batches
from genmodels.images.registry import build_model, save_checkpoint
from genmodels.model_registry import register
from genmodels.resume import Resume, rng_state, set_rng_state
from genmodels.tracking import tag_checkpoint

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


@torch.no_grad()
def encode_means(model: ImageModel, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The code (AE) or posterior mean (VAE, VAE-GAN) of every image, (N, latent)."""
    was_training = model.training
    model.eval()
    out = []
    for idx in batches(images, batch_size):
        code = model.encode(images[idx].to(model.device))
        out.append((code[0] if isinstance(code, tuple) else code).cpu())
    model.train(was_training)
    return torch.cat(out)


def fit_prior(model: ImageModel, train_images: torch.Tensor, max_images: int = 10_000) -> None:
    """The AE has no prior of its own: fit a Gaussian to (a seeded subset of) its codes."""
    if isinstance(model, Autoencoder):
        model.fit_code_gaussian(encode_means(model, train_images[:max_images]))


def train(cfg, data_dir: str | Path, checkpoint: str | Path, metrics: str | Path,
          plots: str | Path, stage: str = "train_image", device: str = "auto",
          resume: Resume | None = None) -> dict:
    """Train the variant ``cfg`` on ``data_dir``; write the checkpoint, metrics and plots.

    Under torchrun each rank trains on its share of every batch (see distributed.py);
    with ``resume`` a killed run continues from its last resume checkpoint.
    """
    info, device = distributed.init(device)
    resume = resume or Resume()
    if cfg.batch_size < info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the {info.world_size} ranks")
    gen = seed_everything(cfg.seed)  # the data order: the same on every rank
    train_x, _ = load_split(data_dir, "train")
    val_x, _ = load_split(data_dir, "val")
    image_shape = tuple(train_x.shape[1:])
    model = build_model(cfg, image_shape).to(device)
    optimizers = model.make_optimizers(cfg.lr)
    fixed_noise = torch.randn(N_FIXED, cfg.latent_dim, generator=gen).to(device)
    steps = n_batches(len(train_x), cfg.batch_size, cfg.limit_batches)
    distributed.seed_noise(cfg.seed, info)
    distributed.broadcast_(model.state_dict().values(), info)
    averager = distributed.GradientAverager(optimizers, info)
    norms = GradNorms(optimizers)  # each optimizer's gradient norm, after the averaging

    at = resume.state or {"epoch": 1, "step": 0}  # where a killed run stopped, if any
    if resume.state:
        model.load_state_dict(at["model"])
        for opt, saved in zip(optimizers, at["optimizers"], strict=True):
            opt.load_state_dict(saved)
        set_rng_state(resume.local["rng"])
    step = at["step"]

    with distributed.tracking_run(info, stage, as_dict(cfg), metrics_path=metrics,
                                  plots_path=plots, run_id=resume.run_id,
                                  inputs=[data_dir]) as run, \
            tempfile.TemporaryDirectory() as tmp:
        if resume.state:
            run.load_state_dict(at["run"])
        run.set_tags({"family": cfg.family})
        for epoch in range(at["epoch"], cfg.epochs + 1):
            resumed = resume.state is not None and epoch == at["epoch"]
            epoch_gen = at["epoch_gen"] if resumed else gen.get_state()  # this epoch's shuffle
            gen.set_state(epoch_gen)
            done = at["batch"] if resumed else 0  # batches of this epoch already trained
            sums = resume.local["sums"] if resumed else {}
            t0 = time.perf_counter()
            model.train()
            order = batches(train_x, cfg.batch_size, gen, cfg.limit_batches)
            bar = tqdm(itertools.islice(order, done, None), total=steps, initial=done,
                       desc=f"{stage} epoch {epoch}/{cfg.epochs}", leave=False,
                       disable=not info.is_main)
            guard = FiniteGuard(f"{stage} epoch {epoch}")
            for idx in bar:
                x = train_x[shard(idx, info)].to(device)  # this rank's share of the batch
                averager.share = len(x) / len(idx)
                with autocast(device):
                    terms = model.train_step(x, optimizers)
                for k, v in terms.items():  # weighted so that the ranks' sums add up to
                    sums[k] = sums.get(k, 0.0) + v * len(x) / len(idx)  # the batch mean
                done, step = done + 1, step + 1
                guard.check(terms["loss"], norms.pop(), step)  # a diverged run stops here
                bar.set_postfix(loss=f"{terms['loss']:.2f}")
                if resume.due(step):
                    resume.save({"epoch": epoch, "batch": done, "step": step,
                                 "epoch_gen": epoch_gen, "model": model.state_dict(),
                                 "optimizers": [o.state_dict() for o in optimizers],
                                 "run": run.state_dict()},
                                {"rng": rng_state(), "sums": sums})
            distributed.broadcast_(model.buffers(), info)  # batch-norm statistics: rank 0's
            fit_prior(model, train_x)
            val = evaluate_terms(model, val_x, 500, cfg.limit_batches, info)
            logged = {f"train/{k}": v / steps for k, v in reduce_sum(sums, info).items()}
            logged |= {f"val/{k}": v for k, v in val.items()}
            logged["time/epoch_s"] = time.perf_counter() - t0
            run.log(logged, step=epoch)
            if info.is_main:
                tqdm.write(f"{stage} epoch {epoch}: train/loss {logged['train/loss']:.3f} "
                           f"val/loss {logged['val/loss']:.3f} ({logged['time/epoch_s']:.0f} s)")

            model.eval()
            with torch.no_grad():  # the same noise every epoch: comparable grids
                grid = torch.sigmoid(model.decode(model.z_from_noise(fixed_noise)))
            png = Path(tmp) / f"samples_epoch{epoch:03d}.png"
            save_image(grid.float().cpu(), png, nrow=8, padding=1)
            run.log_artifact(png, artifact_path="samples")

        if info.is_main:
            save_checkpoint(model.cpu(), image_shape, checkpoint)  # no run id: see tracking.py
            tag_checkpoint(run.run_id, checkpoint)  # how evaluate and render find this run
            # The generator (noise -> images) as an MLflow model: pyfunc.load_model / models serve.
            logged = log_model(ImageGenerator(model), image_example(cfg.latent_dim))
            register(stage.partition("@")[2] or stage, "image", logged.model_uri, checkpoint)
        resume.finish()
        return dict(run.latest)
