"""DVC stage `ensemble_text@<name>`: two or more language models of one corpus mixed into one.

    python stages/ensemble_text.py --name mix_sherlock --scores data/scores/text \
        --metrics reports/ensemble_text/mix_sherlock.json

Reads the params section ``ensemble_text.<name>`` (its ``members``) and their
per-token scores ``<scores>/<member>.pt`` from evaluate_text; the mixture weights come
from the validation split, the metrics from the test split (``genmodels.text.ensemble``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genmodels.config import as_dict, load_section
from genmodels.stage import run_stage
from genmodels.text.ensemble import EnsembleTextConfig, ensemble_metrics, read_scores
from genmodels.tracking import start_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="entry of ensemble_text in params.yaml")
    parser.add_argument("--scores", type=Path, required=True, help="folder of evaluate_text's scores")
    parser.add_argument("--metrics", type=Path, required=True, help="DVC metrics JSON")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    stage = f"ensemble_text@{args.name}"
    return run_stage(stage, lambda: ensemble_text(args, stage))


def ensemble_text(args: argparse.Namespace, stage: str) -> None:
    cfg = load_section(args.params, f"ensemble_text.{args.name}", EnsembleTextConfig)
    paths = [args.scores / f"{m}.pt" for m in cfg.members]
    scores = {m: read_scores(p, m) for m, p in zip(cfg.members, paths, strict=True)}
    metrics = ensemble_metrics(scores)  # checks the members' terms before any run opens
    with start_run(stage, as_dict(cfg), metrics_path=args.metrics, inputs=paths) as run:
        run.log(metrics)
    weights = ", ".join(f"{m} {metrics[f'test/weight/{m}']:.2f}" for m in cfg.members)
    cached = f", with caches {metrics['cache/ppl']:.2f}" if "cache/ppl" in metrics else ""
    print(f"{stage}: weights {weights}; test ppl {metrics['test/ppl']:.2f} "
          f"(gain over KN {metrics['test/gain_over_kn']:.1%}){cached} -> {args.metrics}")


if __name__ == "__main__":
    sys.exit(main())
