"""Trained models in MLflow's model registry: ``genmodels-<entry>``, aliases ``candidate``
and ``champion``.

Every training run registers a new version of ``genmodels-<entry>`` (the entry of
``train_text`` or ``train_image`` in params.yaml) and points the alias ``candidate``
at it. The version carries, as tags, what the rest of the project needs to use it:

- ``checkpoint``: the run artifact holding the training checkpoint itself (a
  ``state_dict`` dict, loaded with ``torch.load(weights_only=True)``); ``genmodels
  generate --checkpoint models:/genmodels-<entry>@champion`` downloads it;
- ``checkpoint_md5``: the file's MD5, the hash ``dvc.lock`` records for it;
- ``metric``: the test metric that ranks versions, lower is better
  (``test/ppl`` of evaluate_text for language models, ``samples/fid`` of
  evaluate_image for image models).

:func:`promote` moves ``champion`` to the candidate when the candidate's test
metric is lower than the champion's. The metric is read from the candidate's
MLflow run (evaluate_image logs into the training run), or from the latest run
tagged ``genmodels.model_run_id`` with it (evaluate_text's own runs).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from genmodels.tracking import exp_tags

PREFIX = "genmodels-"
CANDIDATE = "candidate"
CHAMPION = "champion"
CHECKPOINT_DIR = "checkpoint"  # run artifact folder of the training checkpoint
MODEL_RUN_TAG = "genmodels.model_run_id"  # on an evaluation run: the training run it judges
METRICS = {"text": "test/ppl", "image": "samples/fid"}  # lower is better, both


def model_name(entry: str) -> str:
    return f"{PREFIX}{entry}"


def md5(path: str | Path) -> str:
    from genmodels.tracking import file_digest

    return file_digest(path, "md5")


def client():
    """An MlflowClient on the project's tracking store (tracking.tracking_uri)."""
    import mlflow

    from genmodels.tracking import check_reachable, tracking_uri

    uri = tracking_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient()


def register(entry: str, kind: str, model_uri: str, checkpoint: str | Path):
    """Inside the active training run: log ``checkpoint`` as an artifact, register
    ``model_uri`` as a new version of ``genmodels-<entry>`` and alias it ``candidate``."""
    import mlflow

    run = mlflow.active_run()
    checkpoint = Path(checkpoint)
    mlflow.log_artifact(str(checkpoint), artifact_path=CHECKPOINT_DIR)
    tags = {"checkpoint": f"{CHECKPOINT_DIR}/{checkpoint.name}", "checkpoint_md5": md5(checkpoint),
            "metric": METRICS[kind], "kind": kind, "run_id": run.info.run_id, **exp_tags()}
    version = mlflow.register_model(model_uri, model_name(entry), tags=tags)
    mlflow.MlflowClient().set_registered_model_alias(model_name(entry), CANDIDATE,
                                                     version.version)
    return version


def version_by_alias(mlf, name: str, alias: str):
    """The version ``alias`` points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return mlf.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def ranking_metric(mlf, version) -> float | None:
    """The version's ranking metric: from its training run, else from the newest run that
    trained the same checkpoint bytes (a forced retrain of an unchanged model is not
    evaluated again: DVC sees nothing changed), else from the latest evaluation run tagged
    with the run's id; None if not evaluated yet."""
    from genmodels.tracking import CHECKPOINT_TAG

    key, run_id = version.tags["metric"], version.tags.get("run_id") or version.run_id
    run = mlf.get_run(run_id)
    if key in run.data.metrics:
        return run.data.metrics[key]
    sha = run.data.tags.get(CHECKPOINT_TAG)
    same = mlf.search_runs([run.info.experiment_id], f"tags.`{CHECKPOINT_TAG}` = '{sha}'",
                           order_by=["attributes.start_time DESC"]) if sha else []
    for other in same:
        if key in other.data.metrics:
            return other.data.metrics[key]
    for other in mlf.search_runs([run.info.experiment_id],
                                 f"tags.`{MODEL_RUN_TAG}` = '{run_id}'",
                                 order_by=["attributes.start_time DESC"]):
        if key in other.data.metrics:
            return other.data.metrics[key]
    return None


@dataclass(frozen=True)
class Decision:
    promoted: bool
    message: str


def promote(entry: str, mlf=None) -> Decision:
    """Move ``champion`` to ``candidate`` if the candidate's test metric is lower.
    ValueError (one line) when there is nothing to decide on."""
    mlf = mlf or client()
    name = model_name(entry)
    cand = version_by_alias(mlf, name, CANDIDATE)
    if cand is None:
        raise ValueError(f"{name} has no version aliased {CANDIDATE!r}: train the entry "
                         f"{entry!r} first (dvc repro or dvc exp run)")
    champ = version_by_alias(mlf, name, CHAMPION)
    key = cand.tags["metric"]
    if champ is not None and champ.version == cand.version:
        return Decision(False, f"{name}: version {cand.version} is already {CHAMPION}")
    new = ranking_metric(mlf, cand)
    if new is None:
        stage = "evaluate_text" if cand.tags.get("kind") == "text" else "evaluate_image"
        raise ValueError(f"{name} version {cand.version} ({CANDIDATE}) has no {key} yet: "
                         f"run `dvc repro {stage}@{entry}` first")
    old = ranking_metric(mlf, champ) if champ is not None else None
    if champ is not None and old is not None and not new < old:
        return Decision(False, f"{name}: kept {CHAMPION} version {champ.version} ({key} "
                               f"{old:.4g}); {CANDIDATE} version {cand.version} has {key} "
                               f"{new:.4g}, not lower")
    mlf.set_registered_model_alias(name, CHAMPION, cand.version)
    if champ is None:
        why = f"there was no {CHAMPION}"
    elif old is None:
        why = f"{CHAMPION} version {champ.version} had no {key}"
    else:
        why = f"{key} {new:.4g} < {old:.4g} of version {champ.version}"
    return Decision(True, f"{name}: {CHAMPION} -> version {cand.version} ({key} {new:.4g}; {why})")


def parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, "3")."""
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, None
    name, _, version = rest.partition("/")
    if not name or not version:
        raise ValueError(f"{uri}: expected models:/<name>@<alias> or models:/<name>/<version>")
    return name, None, version


def download_checkpoint(uri: str, mlf=None) -> Path:
    """The training checkpoint of the registered version ``uri`` (``models:/...``),
    downloaded once into the temp folder; ValueError (one line) if there is none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlf = mlf or client()
    name, alias, number = parse_uri(uri)
    try:
        version = (mlf.get_model_version_by_alias(name, alias) if alias
                   else mlf.get_model_version(name, number))
    except MlflowException as err:
        from genmodels.tracking import one_line

        raise ValueError(f"{uri}: {one_line(err)}") from None
    artifact = version.tags.get("checkpoint")
    if not artifact:
        raise ValueError(f"{uri}: version {version.version} has no checkpoint tag")
    dest = Path(tempfile.gettempdir()) / "genmodels-models" / name / str(version.version)
    path = dest / artifact
    if path.is_file() and md5(path) == version.tags.get("checkpoint_md5"):
        return path
    dest.mkdir(parents=True, exist_ok=True)
    run_id = version.tags.get("run_id") or version.run_id
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact,
                                                    dst_path=str(dest)))
