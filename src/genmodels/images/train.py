"""One training loop for every image family.

Each epoch: ``model.train_step`` over shuffled training batches (the AE/VAE
step is one optimizer; the VAE-GAN writes out its three), then the same named
loss terms on the validation split, a sample grid decoded from one fixed noise
batch (so the grids of successive epochs are comparable), and the AE's
Gaussian refitted to its training codes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torchvision.utils import save_image
from tqdm import tqdm

from genmodels.config import as_dict
from genmodels.device import pick_device, seed_everything
from genmodels.export import ImageGenerator, image_example, log_model
from genmodels.images.autoencoder import Autoencoder, ImageModel
from genmodels.images.data import batches, load_split, n_batches
from genmodels.images.registry import build_model, save_checkpoint
from genmodels.tracking import start_run

N_FIXED = 64  # images in each per-epoch sample grid (8 x 8)


@torch.no_grad()
def evaluate_terms(model: ImageModel, images: torch.Tensor, batch_size: int,
                   limit: int = 0) -> dict[str, float]:
    """Every loss term averaged over ``images`` (per image), in eval mode."""
    model.eval()
    device, sums, count = model.device, {}, 0
    for idx in batches(images, batch_size, limit=limit):
        x = images[idx].to(device)
        terms = model.loss(x, model(x))
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(x)
        count += len(x)
    model.train()
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
          plots: str | Path, stage: str = "train_image", device: str = "auto") -> dict:
    """Train the variant ``cfg`` on ``data_dir``; write the checkpoint, metrics and plots."""
    gen = seed_everything(cfg.seed)
    device = pick_device(device)
    train_x, _ = load_split(data_dir, "train")
    val_x, _ = load_split(data_dir, "val")
    image_shape = tuple(train_x.shape[1:])
    model = build_model(cfg, image_shape).to(device)
    optimizers = model.make_optimizers(cfg.lr)
    fixed_noise = torch.randn(N_FIXED, cfg.latent_dim, generator=gen).to(device)
    steps = n_batches(len(train_x), cfg.batch_size, cfg.limit_batches)

    with start_run(stage, as_dict(cfg), metrics_path=metrics, plots_path=plots) as run, \
            tempfile.TemporaryDirectory() as tmp:
        run.set_tags({"family": cfg.family})
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            sums = {}
            bar = tqdm(batches(train_x, cfg.batch_size, gen, cfg.limit_batches), total=steps,
                       desc=f"{stage} epoch {epoch}/{cfg.epochs}", leave=False)
            for idx in bar:
                terms = model.train_step(train_x[idx].to(device), optimizers)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.set_postfix(loss=f"{terms['loss']:.2f}")
            fit_prior(model, train_x)
            val = evaluate_terms(model, val_x, 500, cfg.limit_batches)
            logged = {f"train/{k}": v / steps for k, v in sums.items()}
            logged |= {f"val/{k}": v for k, v in val.items()}
            logged["time/epoch_s"] = time.perf_counter() - t0
            run.log(logged, step=epoch)
            tqdm.write(f"{stage} epoch {epoch}: train/loss {logged['train/loss']:.3f} "
                       f"val/loss {logged['val/loss']:.3f} ({logged['time/epoch_s']:.0f} s)")

            model.eval()
            with torch.no_grad():  # the same noise every epoch: comparable grids
                grid = torch.sigmoid(model.decode(model.z_from_noise(fixed_noise)))
            png = Path(tmp) / f"samples_epoch{epoch:03d}.png"
            save_image(grid.cpu(), png, nrow=8, padding=1)
            run.log_artifact(png, artifact_path="samples")

        save_checkpoint(model.cpu(), image_shape, checkpoint, run_id=run.run_id)
        # The generator (noise -> images) as an MLflow model: pyfunc.load_model / models serve.
        log_model(ImageGenerator(model), image_example(cfg.latent_dim))
        return dict(run.latest)
