"""DVC stage: train the CNN whose features the image metrics use (``train_classifier``).

Runs as ``python stages/train_classifier.py ...`` or, one process per device,
``torchrun --nproc_per_node=N stages/train_classifier.py ...`` (params.yaml: launch).
"""

import argparse
import sys

import torch

from genmodels import distributed
from genmodels.config import as_dict, load_section
from genmodels.images.classifier import ClassifierConfig
from genmodels.images.train_classifier import train_classifier
from genmodels.resume import Resume, add_resume_arguments
from genmodels.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True)
    add_resume_arguments(p)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    return run_stage("train_classifier", lambda: train(args))


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    cfg = load_section(args.params, "train_classifier", ClassifierConfig)
    with distributed.session() as (info, _):
        resume = Resume(args.resume, args.checkpoint_every, info, config=as_dict(cfg),
                        data=[args.data])
        train_classifier(cfg, args.data, args.checkpoint, args.metrics, args.plots,
                         resume=resume)


if __name__ == "__main__":
    sys.exit(main())
