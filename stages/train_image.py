"""DVC stage: train one image-model variant, ``train_image.<name>`` in params.yaml.

Runs as ``python stages/train_image.py ...`` or, one process per device,
``torchrun --nproc_per_node=N stages/train_image.py ...`` (params.yaml: launch).
"""

import argparse
import sys

import torch

from genmodels import distributed
from genmodels.config import as_dict
from genmodels.images.registry import load_variant
from genmodels.images.train import train
from genmodels.resume import Resume, add_resume_arguments
from genmodels.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="variant under train_image in params.yaml")
    p.add_argument("--data", required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True)
    add_resume_arguments(p)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    stage = f"train_image@{args.name}"
    return run_stage(stage, lambda: train_image(args, stage))


def train_image(args: argparse.Namespace, stage: str) -> None:
    torch.set_num_threads(args.threads)
    cfg = load_variant(args.params, args.name)
    with distributed.session() as (info, _):
        resume = Resume(args.resume, args.checkpoint_every, info, config=as_dict(cfg),
                        data=[args.data])
        train(cfg, args.data, args.checkpoint, args.metrics, args.plots, stage=stage,
              resume=resume)


if __name__ == "__main__":
    sys.exit(main())
