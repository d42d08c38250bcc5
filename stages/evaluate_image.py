"""DVC stage: test-set metrics of one trained image model (``evaluate_image``)."""

import argparse

import torch

from genmodels.config import load_section
from genmodels.images.evaluate import EvaluateConfig, evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="variant under train_image in params.yaml")
    p.add_argument("--model", required=True, help="checkpoint from train_image")
    p.add_argument("--classifier", required=True, help="checkpoint from train_classifier")
    p.add_argument("--data", required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--metrics", required=True)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_section(args.params, "evaluate_image", EvaluateConfig)
    evaluate(cfg, args.model, args.classifier, args.data, args.metrics,
             stage=f"evaluate_image@{args.name}")


if __name__ == "__main__":
    main()
