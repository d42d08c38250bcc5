"""DVC stage evaluate_text@<name>: test-set metrics of one model, baselines, sample metrics."""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from genmodels.config import load_section
from genmodels.io import atomic_open
from genmodels.stage import run_stage
from genmodels.text.evaluate import EvaluateTextConfig, evaluate
from genmodels.tracking import model_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="entry of train_text in params.yaml")
    p.add_argument("--data", required=True, help="prepared corpus folder")
    p.add_argument("--model", required=True, help="checkpoint from train_text")
    p.add_argument("--metrics", required=True)
    p.add_argument("--samples", required=True, help="text file for the unprompted samples")
    p.add_argument("--scores", required=True,
                   help="file for each target's probability (what ensemble_text mixes)")
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stage = f"evaluate_text@{args.name}"
    return run_stage(stage, lambda: evaluate_text(args, stage))


def evaluate_text(args: argparse.Namespace, stage: str) -> None:
    cfg = load_section(args.params, "evaluate_text", EvaluateTextConfig)
    # into the model's training run: `genmodels promote` reads test/ppl there
    with model_run(args.model, stage, metrics_path=args.metrics) as run:
        metrics, samples, scores = evaluate(cfg, args.model, args.data, args.name)
        run.log(metrics)
        with atomic_open(args.scores, "wb") as f:
            torch.save(scores, f)
        with atomic_open(args.samples) as f:  # token by token, one block per temperature
            f.write(f"# {args.name}: the unprompted samples the sample statistics count, token by "
                    "token (<nl> is a line break; t0_5 is temperature 0.5). The same models' "
                    "samples as text are the render_text stage's.\n\n")
            f.write("\n".join(f"## {tag}\n\n" + "\n\n".join(" ".join(s) for s in ss) + "\n"
                              for tag, ss in samples.items()))
        run.log_artifact(args.samples)


if __name__ == "__main__":
    sys.exit(main())
