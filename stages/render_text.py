"""DVC stage render_text@<name>: samples at several temperatures and loss curves."""

from __future__ import annotations

import argparse
import logging
import sys

from genmodels.config import load_section
from genmodels.stage import run_stage
from genmodels.text.render import RenderTextConfig, plot_losses, render_samples
from genmodels.tracking import model_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="entry of train_text in params.yaml")
    p.add_argument("--corpus", required=True, help="picks render_text.prompts.<corpus>")
    p.add_argument("--model", required=True, help="checkpoint from train_text")
    p.add_argument("--plots", required=True, help="plots CSV from train_text")
    p.add_argument("--out", required=True, help="folder for the sample texts and the loss curve")
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stage = f"render_text@{args.name}"
    return run_stage(stage, lambda: render_text(args, stage))


def render_text(args: argparse.Namespace, stage: str) -> None:
    cfg = load_section(args.params, "render_text", RenderTextConfig)
    prompts = list((cfg.prompts or {}).get(args.corpus, ()))
    with model_run(args.model, stage) as run:  # the model's training run
        paths = render_samples(cfg, args.model, prompts, args.out)
        paths.append(plot_losses(args.plots, f"{args.out}/loss.png", title=args.name))
        for path in paths:
            run.log_artifact(path, artifact_path="render")


if __name__ == "__main__":
    sys.exit(main())
