"""DVC stage: the figures of one trained image model (``render_image``)."""

import argparse
import sys

import torch

from genmodels.config import load_section
from genmodels.images.render import RenderConfig, render
from genmodels.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="variant under train_image in params.yaml")
    p.add_argument("--model", required=True, help="checkpoint from train_image")
    p.add_argument("--data", required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--train-plots", required=True, help="per-epoch CSV from train_image")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    stage = f"render_image@{args.name}"
    return run_stage(stage, lambda: render_image(args, stage))


def render_image(args: argparse.Namespace, stage: str) -> None:
    torch.set_num_threads(args.threads)
    cfg = load_section(args.params, "render_image", RenderConfig)
    render(cfg, args.model, args.data, args.train_plots, args.out, stage=stage)


if __name__ == "__main__":
    sys.exit(main())
