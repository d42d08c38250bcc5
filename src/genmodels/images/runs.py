"""Evaluation and rendering report into the MLflow run of the model they judge.

The training stage stores its run id in the checkpoint; later stages reopen
that run, so the MLflow UI shows one run per model with its curves, metrics and
figures. If the run is gone (a fresh ``mlflow.db``), a new run is opened instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from genmodels.tracking import (
    DEFAULT_EXPERIMENT,
    Run,
    check_reachable,
    exp_tags,
    tracking_uri,
    use_experiment,
)


@contextlib.contextmanager
def reopen_run(run_id: str | None, stage: str, metrics_path: str | Path | None = None,
               experiment: str = DEFAULT_EXPERIMENT) -> Iterator[Run]:
    import mlflow

    uri = tracking_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    use_experiment(experiment, uri)
    if run_id is not None:
        try:
            mlflow.MlflowClient().get_run(run_id)
        except mlflow.exceptions.MlflowException:
            logging.getLogger(__name__).warning(
                "MLflow run %s not found; logging %s to a new run", run_id, stage)
            run_id = None
    name = None if run_id else stage
    tags = {"dvc.stage": stage, **({} if run_id else exp_tags())}  # a reopened run keeps its own
    with mlflow.start_run(run_id=run_id, run_name=name, tags=tags) as active:
        run = Run(active, Path(metrics_path) if metrics_path else None, None)
        try:
            yield run
        except BaseException:
            run.discard()  # a failed stage leaves no metrics file
            raise
