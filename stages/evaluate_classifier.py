"""DVC stage `evaluate_classifier`: the metric classifier's confusion matrix on the test set.

    python stages/evaluate_classifier.py --classifier data/models/classifier.pt \
        --data data/prepared/fashion-mnist --out reports/evaluate_classifier/confusion.csv

One ``actual,predicted`` row (class names) per test image, the input of DVC's
``confusion`` plot template (dvc.yaml, top-level ``plots:``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from genmodels.images.classifier import load_classifier
from genmodels.images.data import batches, load_classes, load_split
from genmodels.io import atomic_open
from genmodels.stage import run_stage


@torch.no_grad()
def confusion_rows(model, images, labels, classes: list[str], batch_size: int = 1000) -> str:
    """The CSV text: a header and one ``actual,predicted`` row per image."""
    predicted = torch.cat([model(images[idx]).argmax(1) for idx in batches(images, batch_size)])
    return "actual,predicted\n" + "".join(
        f"{classes[a]},{classes[p]}\n" for a, p in zip(labels.tolist(), predicted.tolist(),
                                                      strict=True))


def evaluate_classifier(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    model = load_classifier(args.classifier)
    images, labels = load_split(args.data, "test")
    classes = (load_classes(args.data) if (args.data / "meta.json").is_file()
               else [str(i) for i in range(int(labels.max()) + 1)])
    with atomic_open(args.out) as f:
        f.write(confusion_rows(model, images, labels, classes))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    return run_stage("evaluate_classifier", lambda: evaluate_classifier(args))


if __name__ == "__main__":
    sys.exit(main())
