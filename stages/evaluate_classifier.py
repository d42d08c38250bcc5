"""DVC stage `evaluate_classifier`: the metric classifier's confusion matrix on the test set,
and its features of the real images for every image model's evaluation.

    python stages/evaluate_classifier.py --classifier data/models/classifier.pt \
        --data data/prepared/fashion-mnist --out reports/evaluate_classifier/confusion.csv \
        --features data/features/classifier.pt

One ``actual,predicted`` row (class names) per test image, the input of DVC's
``confusion`` plot template (dvc.yaml, top-level ``plots:``); the same CSV and
a picture of the matrix go to the classifier's MLflow training run. The features
(``images/real_features.py``) are what ``evaluate_image`` compares samples with.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from genmodels.images.classifier import load_classifier
from genmodels.images.data import load_classes, load_split
from genmodels.images.real_features import save_real_features
from genmodels.io import atomic_open
from genmodels.stage import run_stage
from genmodels.tracking import model_run


def confusion_rows(predicted: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> str:
    """The CSV text: a header and one ``actual,predicted`` row per image."""
    return "actual,predicted\n" + "".join(
        f"{classes[a]},{classes[p]}\n" for a, p in zip(labels.tolist(), predicted.tolist(),
                                                      strict=True))


def confusion_png(csv_text: str, classes: list[str], path: Path) -> Path:
    """The confusion matrix as a picture: counts, actual classes down, predicted across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = {c: i for i, c in enumerate(classes)}
    counts = torch.zeros(len(classes), len(classes), dtype=torch.long)
    for line in csv_text.splitlines()[1:]:
        actual, predicted = line.rsplit(",", 1)
        counts[index[actual], index[predicted]] += 1
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(counts.numpy(), cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            n = int(counts[i, j])
            ax.text(j, i, n, ha="center", va="center", fontsize=7,
                    color="white" if n > counts.max().item() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("classifier on the test split")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate_classifier(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    model = load_classifier(args.classifier)
    images, labels = load_split(args.data, "test")
    classes = (load_classes(args.data) if (args.data / "meta.json").is_file()
               else [str(i) for i in range(int(labels.max()) + 1)])
    # The features of the real images every evaluate_image compares its samples with;
    # the test images' class probabilities give the confusion matrix.
    real = save_real_features(model, args.classifier, args.data, args.features)
    rows = confusion_rows(real["test"]["probs"].argmax(1), labels, classes)
    # Into the classifier's training run: its curves, test metric, confusion matrix and model.
    with model_run(args.classifier, "evaluate_classifier") as run, \
            tempfile.TemporaryDirectory() as tmp:
        run.log_artifact(confusion_png(rows, classes, Path(tmp) / "confusion.png"), "figures")
        with atomic_open(args.out) as f:
            f.write(rows)
        run.log_artifact(args.out, "figures")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="prepared Fashion-MNIST folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--features", type=Path, required=True,
                   help="output: the classifier's features of the test and training images (.pt)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    return run_stage("evaluate_classifier", lambda: evaluate_classifier(args))


if __name__ == "__main__":
    sys.exit(main())
