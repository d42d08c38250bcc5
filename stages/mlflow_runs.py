"""DVC stage `mlflow_runs`: the MLflow run id of every trained model, as DVC metrics.

    python stages/mlflow_runs.py --models data/models --out reports/mlflow_runs.json

Each training stage keeps its run id in its checkpoint; this stage copies them into
one metrics file, ``{"mlflow_run_id": {"train_text@lstm_sherlock": "...", ...}}``, so
that ``dvc exp show`` has a column per model naming the MLflow run that trained it
(DVC shows string metrics). A stage of its own, so that the training stages' commands
and outputs stay as they were.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genmodels.io import write_json
from genmodels.report import run_ids
from genmodels.stage import run_stage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, required=True, help="data/models")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    return run_stage("mlflow_runs", lambda: write_json(args.out,
                                                       {"mlflow_run_id": run_ids(args.models)}))


if __name__ == "__main__":
    sys.exit(main())
