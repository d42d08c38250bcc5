"""DVC stage: train the CNN whose features the image metrics use (``train_classifier``)."""

import argparse

import torch

from genmodels.config import load_section
from genmodels.images.classifier import ClassifierConfig, train_classifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_section(args.params, "train_classifier", ClassifierConfig)
    train_classifier(cfg, args.data, args.checkpoint, args.metrics, args.plots)


if __name__ == "__main__":
    main()
