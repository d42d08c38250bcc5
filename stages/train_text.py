"""DVC stage train_text@<name>: train one language model on one prepared corpus.

Runs as ``python stages/train_text.py ...`` or, one process per device,
``torchrun --nproc_per_node=N stages/train_text.py ...`` (params.yaml: launch).
"""

from __future__ import annotations

import argparse
import logging
import sys

from genmodels import distributed
from genmodels.config import as_dict, load_section
from genmodels.data.text import PrepareTextConfig
from genmodels.resume import Resume, add_resume_arguments
from genmodels.stage import run_stage
from genmodels.text.registry import model_config
from genmodels.text.train import TrainTextConfig, train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="entry of train_text in params.yaml")
    p.add_argument("--data", required=True, help="prepared corpus folder")
    p.add_argument("--model", required=True, help="checkpoint to write")
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True)
    add_resume_arguments(p)
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stage = f"train_text@{args.name}"
    return run_stage(stage, lambda: train_text(args, stage))


def train_text(args: argparse.Namespace, stage: str) -> None:
    section = f"train_text.{args.name}"
    cfg = load_section(args.params, section, TrainTextConfig)
    # The model's settings too, before the corpus or the tracking store is touched; the
    # vocabulary size comes from the corpus later (1 stands in for it here).
    model_config(cfg.arch, cfg.model, 1, f"{section}.model")
    newline = load_section(args.params, f"prepare_text.{cfg.corpus}", PrepareTextConfig).newline
    with distributed.session(cfg.train.device) as (info, _):
        resume = Resume(args.resume, args.checkpoint_every, info, config=as_dict(cfg),
                        data=[args.data])
        train(cfg, args.data, args.model, args.metrics, args.plots, stage=stage, newline=newline,
              resume=resume)


if __name__ == "__main__":
    sys.exit(main())
