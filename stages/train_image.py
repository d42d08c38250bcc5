"""DVC stage: train one image-model variant, ``train_image.<name>`` in params.yaml."""

import argparse

import torch

from genmodels.images.registry import load_variant
from genmodels.images.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="variant under train_image in params.yaml")
    p.add_argument("--data", required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_variant(args.params, args.name)
    train(cfg, args.data, args.checkpoint, args.metrics, args.plots,
          stage=f"train_image@{args.name}")


if __name__ == "__main__":
    main()
