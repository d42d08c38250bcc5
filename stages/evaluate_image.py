"""DVC stage: test-set metrics of one trained image model (``evaluate_image``)."""

import argparse
import sys

import torch

from genmodels.config import load_section
from genmodels.images.evaluate import EvaluateConfig, evaluate
from genmodels.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="variant under train_image in params.yaml")
    p.add_argument("--model", required=True, help="checkpoint from train_image")
    p.add_argument("--classifier", required=True, help="checkpoint from train_classifier")
    p.add_argument("--data", required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--features", required=True,
                   help="the classifier's features of the real images, from evaluate_classifier")
    p.add_argument("--metrics", required=True)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    stage = f"evaluate_image@{args.name}"
    return run_stage(stage, lambda: evaluate_image(args, stage))


def evaluate_image(args: argparse.Namespace, stage: str) -> None:
    torch.set_num_threads(args.threads)
    cfg = load_section(args.params, "evaluate_image", EvaluateConfig)
    evaluate(cfg, args.model, args.classifier, args.data, args.metrics, args.features, stage=stage)


if __name__ == "__main__":
    sys.exit(main())
