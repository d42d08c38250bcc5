"""DVC stage (opt-in, inception/dvc.yaml): Inception-FID and KID of one image model's
prior samples against the test set (``inception_fid@<name>``)."""

import argparse
import sys

from genmodels.config import load_section
from genmodels.images.inception import InceptionConfig, score
from genmodels.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="variant under train_image in params.yaml")
    p.add_argument("--model", required=True, help="checkpoint from train_image")
    p.add_argument("--features", required=True, help="inception_reference's features")
    p.add_argument("--metrics", required=True)
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args(argv)
    stage = f"inception_fid@{args.name}"
    return run_stage(stage, lambda: score(load_section(args.params, "inception", InceptionConfig),
                                          args.model, args.features, args.metrics, stage))


if __name__ == "__main__":
    sys.exit(main())
