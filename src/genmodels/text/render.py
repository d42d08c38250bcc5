"""Samples from a trained model at several temperatures, prompted and unprompted,
as text files, plus its loss curves from the training stage's plots CSV."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Annotated

from pydantic import Field

from genmodels.config import config
from genmodels.device import seed_everything
from genmodels.io import atomic_open
from genmodels.text.generate import complete
from genmodels.text.registry import load_checkpoint
from genmodels.text.sampling import check_sampling

log = logging.getLogger(__name__)


@config
class RenderTextConfig:
    temperatures: tuple[float, ...] = (0.2, 0.5, 1.0)
    tokens: Annotated[int, Field(gt=0)] = 120  # generated per sample
    unprompted: Annotated[int, Field(ge=0)] = 2  # unprompted samples per temperature
    top_k: Annotated[int, Field(ge=0)] = 0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    seed: int = 0
    prompts: dict[str, tuple[str, ...]] = None  # type: ignore[assignment]  # corpus -> prompts

    def __post_init__(self):
        for t in self.temperatures:
            check_sampling(t, self.top_k, self.top_p)


def render_samples(
    cfg: RenderTextConfig, model_path: str | Path, prompts: list[str], out_dir: str | Path
) -> list[Path]:
    """One ``samples_t<T>.txt`` per temperature in ``out_dir``; returns their paths."""
    model, itos, ckpt = load_checkpoint(model_path)
    newline = ckpt.get("newline", "line")
    out_dir = Path(out_dir)
    paths = []
    for t in cfg.temperatures:
        gen = seed_everything(cfg.seed)
        kind = ckpt["config"].get("cell", ckpt["arch"])  # arch "rnn" also covers lstm and gru
        parts = [f"# {kind} {model_path}, temperature {t}, {cfg.tokens} tokens a sample\n"]
        for prompt in [*prompts, *[""] * cfg.unprompted]:
            text = complete(model, itos, prompt, cfg.tokens, t, cfg.top_k, cfg.top_p, gen, newline,
                            casing=ckpt.get("casing"))
            parts.append(f"\n## prompt: {prompt!r}\n\n{text}\n" if prompt else f"\n## unprompted\n\n{text}\n")
        path = out_dir / f"samples_t{t:g}.txt"
        with atomic_open(path) as f:
            f.write("".join(parts))
        paths.append(path)
    return paths


def plot_losses(plots_csv: str | Path, out_path: str | Path, title: str = "") -> Path:
    """Train and validation loss per epoch from a tracking plots CSV, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(plots_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in ("train/loss", "val/loss"):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return Path(out_path)
