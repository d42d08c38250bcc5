"""DVC stage `report`: write reports/README.md from every stage's metrics and figures.

    python stages/report.py --image-metrics reports/evaluate_image \
        --image-figures reports/render_image --text-metrics reports/evaluate_text \
        --text-figures reports/render_text --ensembles reports/ensemble_text \
        --cities reports/cities --models data/models \
        --inception-lock inception/dvc.lock --out reports/README.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genmodels.config import load_section, read_params
from genmodels.images.autoencoder import prior_size
from genmodels.images.registry import config_from_dict
from genmodels.io import atomic_open
from genmodels.report import ReportConfig, Sources, render
from genmodels.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("image-metrics", "image-figures", "text-metrics", "text-figures", "cities",
                 "models", "out"):
        parser.add_argument(f"--{flag}", type=Path, required=True)
    parser.add_argument("--ensembles", type=Path, default=None,
                        help="ensemble_text's metrics folder (reports/ensemble_text)")
    parser.add_argument("--inception-lock", type=Path, default=None,
                        help="inception/dvc.lock: the checkpoints the opt-in scores come from")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    return run_stage("report", lambda: report(args), expected=(KeyError,))


def report(args: argparse.Namespace) -> None:
    cfg = load_section(args.params, "report", ReportConfig)
    params = read_params(args.params)
    images = {n: config_from_dict(e, f"train_image.{n}")
              for n, e in params.get("train_image", {}).items()}
    src = Sources(
        args.image_metrics, args.image_figures, args.text_metrics, args.text_figures,
        args.cities, args.models, args.out, inception_lock=args.inception_lock,
        image_models=list(images),
        image_priors={n: (c.family, prior_size(c), c.prior_images) for n, c in images.items()},
        text_models={n: e["corpus"] for n, e in params.get("train_text", {}).items()},
        ngram_order=params.get("evaluate_text", {}).get("ngram_order"),
        ensemble_metrics=args.ensembles,
        ensembles={n: tuple(e.get("members", ())) for n, e in params.get("ensemble_text", {}).items()},
    )
    page = render(src, cfg)
    with atomic_open(args.out) as f:
        f.write(page)
    print(f"report: wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
