"""Figures of a trained image model, written as PNGs and logged to its MLflow run.

- ``prior_samples.png`` and ``test_images.png``: 64 draws from the prior, decoded from
  noise fixed by the seed (the same noise for every model of a latent size), and 64 test
  images, as 8x8 grids to look at side by side;
- ``reconstructions.png``: the workshop's 3x8 figure: test data, their
  reconstructions, and prior samples;
- ``latent_scatter.png`` and ``latent_grid.png`` (2-D latents only): test codes
  coloured by class, and the decoder over a 10x10 grid spanning [-3, 3]^2 of the
  prior's standard coordinates (for the AE: of its fitted Gaussian);
- ``latent_arithmetic.png``: mean code of one class plus alpha times the
  direction to another class's mean code, alpha from 0 to 1;
- ``interpolation.png``: decoded straight line between two test images' codes;
- ``loss_curves.png``: per-epoch train and validation terms from the training stage.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pydantic  # noqa: E402
import torch  # noqa: E402

from genmodels.config import config  # noqa: E402
from genmodels.device import seed_everything  # noqa: E402
from genmodels.images.data import load_classes, load_split  # noqa: E402
from genmodels.images.grid import save_grid_png  # noqa: E402
from genmodels.images.registry import load_checkpoint  # noqa: E402
from genmodels.tracking import model_run  # noqa: E402

PositiveInt = Annotated[int, pydantic.Field(gt=0)]


@config
class RenderConfig:
    """``render_image`` in params.yaml (shared by every model)."""

    grid_size: PositiveInt            # the latent grid is grid_size x grid_size
    grid_extent: Annotated[float, pydantic.Field(gt=0)]  # spans [-extent, extent]^2
    arithmetic_from: str              # class names, as in meta.json
    arithmetic_to: str
    steps: Annotated[int, pydantic.Field(gt=1)]  # alphas / interpolation points
    max_scatter: PositiveInt          # test codes drawn in the scatter
    seed: int


def _show_row(axes, images, title=None):
    for i, ax in enumerate(axes):
        ax.imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        axes[0].set_ylabel(title, rotation=0, ha="right", va="center")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


@torch.no_grad()
def decode(model, z):
    return torch.sigmoid(model.decode(z))  # (B, C, H, W) in [0, 1]


def save_grid(images: torch.Tensor, path: Path, scale: int = 2) -> Path:
    """(64, C, H, W) in [0, 1] -> an 8x8 PNG, each pixel ``scale`` x ``scale`` (nearest,
    so the pixels stay sharp); one pixel of padding."""
    big = torch.nn.functional.interpolate(images.float().cpu(), scale_factor=scale, mode="nearest")
    save_grid_png(big, path, nrow=8, padding=2, pad_value=1.0)
    return path


@torch.no_grad()
def figure_sample_grids(model, test_x, seed: int, out: Path, n: int = 64) -> list[Path]:
    """64 prior samples from fixed noise and 64 test images, as two 8x8 grids."""
    noise = torch.Generator().manual_seed(seed)  # not the figures' generator: fixed noise
    samples = model.sample(n, noise)
    real = test_x[torch.randperm(len(test_x), generator=noise)[:n]]
    return [save_grid(samples, out / "prior_samples.png"), save_grid(real, out / "test_images.png")]


def figure_reconstructions(model, test_x, gen, path: Path, n: int = 8) -> Path:
    x = test_x[torch.randperm(len(test_x), generator=gen)[:n]]
    rec = decode(model, model.encode_means(x))
    samples = model.sample(n, gen)
    fig, axes = plt.subplots(3, n, figsize=(n, 3.3))
    for row, imgs, title in zip(axes, (x, rec, samples), ("data", "reconstruction", "prior"),
                                strict=True):
        _show_row(row, imgs, title)
    return _save(fig, path)


def figure_scatter(codes, labels, classes, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 6))
    for c, name in enumerate(classes):
        m = labels == c
        ax.scatter(codes[m, 0], codes[m, 1], s=3, alpha=0.6, label=name,
                   color=plt.cm.tab10(c))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.legend(markerscale=4, fontsize=8, loc="best")
    ax.set_title("test codes by class")
    return _save(fig, path)


def figure_grid(model, size: int, extent: float, path: Path) -> Path:
    # Rows run from z[1] = +extent down to -extent, so the picture matches the scatter.
    ys, xs = torch.linspace(extent, -extent, size), torch.linspace(-extent, extent, size)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    eps = torch.stack([xx, yy], dim=-1).reshape(-1, 2)  # (size * size, 2)
    imgs = decode(model, model.z_from_noise(eps))  # (size * size, C, H, W)
    fig, axes = plt.subplots(size, size, figsize=(size, size))
    for i, ax in enumerate(axes.flat):
        ax.imshow(imgs[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle(f"decoder over [-{extent:g}, {extent:g}]^2 of the prior")
    return _save(fig, path)


def figure_arithmetic(model, codes, labels, classes, cfg: RenderConfig, path: Path) -> Path:
    for name in (cfg.arithmetic_from, cfg.arithmetic_to):
        if name not in classes:
            raise ValueError(f"render_image: class {name!r} not in {classes}")
    a = codes[labels == classes.index(cfg.arithmetic_from)].mean(0)
    b = codes[labels == classes.index(cfg.arithmetic_to)].mean(0)
    alphas = torch.linspace(0, 1, cfg.steps)
    imgs = decode(model, a + alphas[:, None] * (b - a))  # mean 'from' + alpha * direction
    fig, axes = plt.subplots(1, cfg.steps, figsize=(cfg.steps, 1.6))
    _show_row(axes, imgs)
    for ax, alpha in zip(axes, alphas, strict=True):
        ax.set_title(f"{alpha:.2f}", fontsize=8)
    fig.suptitle(f"mean {cfg.arithmetic_from} + alpha x ({cfg.arithmetic_to} - "
                 f"{cfg.arithmetic_from})", fontsize=9)
    return _save(fig, path)


def figure_interpolation(model, test_x, codes, gen, steps: int, path: Path) -> Path:
    i, j = torch.randperm(len(test_x), generator=gen)[:2].tolist()
    t = torch.linspace(0, 1, steps)[:, None]
    imgs = decode(model, (1 - t) * codes[i] + t * codes[j])
    fig, axes = plt.subplots(1, steps + 2, figsize=(steps + 2, 1.4))
    _show_row(axes, torch.cat([test_x[i : i + 1], imgs, test_x[j : j + 1]]))
    axes[0].set_title("start", fontsize=8)
    axes[-1].set_title("end", fontsize=8)
    return _save(fig, path)


def figure_losses(plots_csv: str | Path, path: Path) -> Path:
    with open(plots_csv) as f:
        rows = list(csv.DictReader(f))
    terms = sorted({c.split("/", 1)[1] for c in rows[0] if c.startswith(("train/", "val/"))})
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 3), squeeze=False)
    steps = [int(r["step"]) for r in rows]
    for ax, term in zip(axes[0], terms, strict=True):
        for split in ("train", "val"):
            key = f"{split}/{term}"
            if key in rows[0]:
                ax.plot(steps, [float(r[key]) if r[key] else float("nan") for r in rows],
                        marker="o", label=split)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.legend()
    return _save(fig, path)


def render(cfg: RenderConfig, model_path: str | Path, data_dir: str | Path,
           train_plots: str | Path, out_dir: str | Path, stage: str = "render_image") -> list:
    """Write every figure of the model into ``out_dir``; return their paths."""
    gen = seed_everything(cfg.seed)
    model, ckpt = load_checkpoint(model_path)
    test_x, test_y = load_split(data_dir, "test")
    classes = load_classes(data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    codes = model.encode_means(test_x)  # (N, latent)

    paths = [
        *figure_sample_grids(model, test_x, cfg.seed, out),
        figure_reconstructions(model, test_x, gen, out / "reconstructions.png"),
        figure_arithmetic(model, codes, test_y, classes, cfg, out / "latent_arithmetic.png"),
        figure_interpolation(model, test_x, codes, gen, cfg.steps, out / "interpolation.png"),
        figure_losses(train_plots, out / "loss_curves.png"),
    ]
    if codes.shape[1] == 2:
        keep = torch.randperm(len(codes), generator=gen)[: cfg.max_scatter]
        paths.append(figure_scatter(codes[keep], test_y[keep], classes,
                                    out / "latent_scatter.png"))
        paths.append(figure_grid(model, cfg.grid_size, cfg.grid_extent, out / "latent_grid.png"))

    with model_run(model_path, stage) as run:
        for p in paths:
            run.log_artifact(p, artifact_path="figures")
    return paths
