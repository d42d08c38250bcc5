"""DVC stage (opt-in, inception/dvc.yaml): Inception features of the test set and the
train-vs-test floor, computed once and cached (``inception_reference``)."""

import argparse
import sys

from genmodels.config import load_section
from genmodels.images.inception import InceptionConfig, reference
from genmodels.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--features", required=True, help="output: test and floor features (.pt)")
    p.add_argument("--metrics", required=True, help="output: the floor's FID and KID (.json)")
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args(argv)
    return run_stage("inception_reference", lambda: reference(
        load_section(args.params, "inception", InceptionConfig), args.data, args.features,
        args.metrics))


if __name__ == "__main__":
    sys.exit(main())
