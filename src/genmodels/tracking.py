"""One place that records a stage's params, metrics and artifacts, twice over.

A :class:`Run` writes everything it is given both to MLflow (params, metrics
per step, artifacts; tagged with the git commit, the DVC stage and the DVC experiment) and to
DVC's files: a metrics JSON (the latest value of every metric, nested by the
``/`` in its name, ``train/loss`` -> ``{"train": {"loss": ...}}``) and a plots
CSV (one row per step, one column per metric) that ``dvc plots`` renders.
Speed metrics (``time/...``, ``..._per_s``) go to MLflow only: the wall clock
differs from run to run, and DVC's files of the same params and seed must not.

The default MLflow store is the SQLite file ``mlflow.db`` in the working
directory (the project root under ``dvc repro``); ``MLFLOW_TRACKING_URI``
points it elsewhere. A store that cannot be used is an error of one line naming
the URI, raised within seconds and before the stage does any work: an HTTP
server that does not answer within a few seconds, or a SQLite file that cannot
be opened for writing (MLflow itself would retry for about two minutes).

A stage that fails inside its run (a diverged loss, an error, Ctrl-C) leaves no
metrics or plots file behind: the files the run wrote are removed.

    with start_run("train_image@vae", params=cfg_dict, metrics_path=..., plots_path=...) as run:
        run.log({"train/loss": 1.2, "val/loss": 1.3}, step=epoch)
        run.log_artifact("reports/samples.png")
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import sqlite3
import subprocess
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from genmodels.io import atomic_open, write_json

DEFAULT_EXPERIMENT = "genmodels"
# MLflow 3's UI opens an experiment on its GenAI "Overview" unless its kind says otherwise;
# "custom_model_development" (the UI's "Machine learning") opens it on the runs table.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
PROBE_TIMEOUT_S = 5.0


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be used."""


def project_root() -> Path:
    """The DVC project: ``DVC_ROOT`` (set by DVC for every stage; for a queued experiment,
    which runs in a temporary copy, the project it was queued from), else the working
    directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd())


def default_uri() -> str:
    """The SQLite file ``mlflow.db`` of the project (:func:`project_root`)."""
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else :func:`default_uri`: queued experiments record
    beside the others."""
    return os.environ.get("MLFLOW_TRACKING_URI", "").strip() or default_uri()


def check_reachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, with a clear message, when an HTTP tracking server is down or a SQLite
    store cannot be opened for writing."""
    if uri.startswith("sqlite:"):
        check_sqlite(uri, timeout)
        return
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}). Start it, or unset "
            "MLFLOW_TRACKING_URI to record runs in the local mlflow.db."
        ) from None


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URI (None: in memory)."""
    rest = uri.removeprefix("sqlite:").removeprefix("//")
    if rest.startswith("/"):
        rest = rest[1:]  # sqlite:///x.db -> x.db; sqlite:////abs/x.db -> /abs/x.db
    rest = rest.split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def check_sqlite(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """The SQLite store's folder exists and is writable, and the file (if any) is a database
    we can write to; else :class:`TrackingError`."""
    path = sqlite_path(uri)
    if path is None:
        return
    hint = "Fix the path, or unset MLFLOW_TRACKING_URI to record runs in the local mlflow.db."
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise TrackingError(f"cannot use MLflow tracking store {uri}: folder {folder} does not "
                            f"exist. {hint}")
    if path.is_dir():
        raise TrackingError(f"cannot use MLflow tracking store {uri}: {path} is a folder. {hint}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise TrackingError(f"cannot use MLflow tracking store {uri}: no write permission "
                            f"for {path if path.exists() else folder}. {hint}")
    if path.exists():
        try:  # a file that is not a database, or one locked for longer than the timeout
            with contextlib.closing(sqlite3.connect(path, timeout=timeout)) as db:
                db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as err:
            raise TrackingError(f"cannot use MLflow tracking store {uri}: {err}. {hint}") from None


def one_line(err: BaseException) -> str:
    """An exception's message on one line (MLflow's carry SQL and tracebacks)."""
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:297] + "..."


def git_commit(cwd: str | Path = ".") -> str:
    """The commit of the working tree, or ``"unknown"`` outside a git repository."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"latent": 2}}`` -> ``{"model.latent": 2}`` (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def nest(metrics: Mapping[str, float]) -> dict:
    """``{"train/loss": 1.0}`` -> ``{"train": {"loss": 1.0}}`` (DVC metrics JSON)."""
    tree: dict = {}
    for name, value in metrics.items():
        *parents, leaf = name.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def is_speed(name: str) -> bool:
    """A wall-clock metric (seconds, tokens per second): MLflow only, never DVC's files."""
    return name.startswith("time/") or name.endswith("_per_s")


class Run:
    """An active tracking run; made by :func:`start_run`."""

    def __init__(self, mlflow_run, metrics_path: Path | None, plots_path: Path | None,
                 logged: Mapping[tuple[str, int], float] | None = None):
        self._mlflow_run = mlflow_run
        # (metric, step) -> value already in MLflow: what a killed run logged before this one
        # resumed it. The resumed run recomputes those steps; equal values are not sent twice.
        self._logged = dict(logged or {})
        self.metrics_path = metrics_path
        self.plots_path = plots_path
        self.latest: dict[str, float] = {}
        self.history: dict[int, dict[str, float]] = {}
        self._written: set[Path] = set()  # the DVC files this run wrote (removed if it fails)

    @property
    def run_id(self) -> str:
        return self._mlflow_run.info.run_id

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record metrics (``"split/name"`` keys); with a step they also join the plots CSV.
        Speed metrics (:func:`is_speed`) are logged to MLflow only."""
        import mlflow

        # Counts stay ints in the DVC JSON; everything else becomes a float.
        values = {k: v if isinstance(v, int) else float(v) for k, v in metrics.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            logging.getLogger(__name__).warning("non-finite metric values: %s", ", ".join(bad))
        fresh = {k: v for k, v in values.items() if self._logged.get((k, step or 0)) != v}
        if fresh:
            mlflow.log_metrics(fresh, step=step)
        values = {k: v for k, v in values.items() if not is_speed(k)}
        self.latest.update(values)
        if step is not None:
            self.history.setdefault(step, {}).update(values)
            self._write_plots()
        self._write_metrics()

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def state_dict(self) -> dict:
        """What a resumed stage needs to continue this run (kept in its resume checkpoint)."""
        return {"run_id": self.run_id, "latest": dict(self.latest),
                "history": {int(k): dict(v) for k, v in self.history.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        """Continue from :meth:`state_dict`: later steps replace what a killed run logged."""
        self.latest = dict(state["latest"])
        self.history = {int(k): dict(v) for k, v in state["history"].items()}

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(tags))

    def discard(self) -> None:
        """Remove the metrics and plots files this run wrote: a failed stage leaves none."""
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written.clear()

    def _write_metrics(self) -> None:
        if self.metrics_path is not None:
            write_json(self.metrics_path, nest(self.latest))
            self._written.add(self.metrics_path)

    def _write_plots(self) -> None:
        if self.plots_path is None:
            return
        columns = sorted({k for row in self.history.values() for k in row})
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["step", *columns])
        for step in sorted(self.history):
            row = self.history[step]
            writer.writerow([step, *(repr(row[c]) if c in row else "" for c in columns)])
        with atomic_open(self.plots_path) as f:
            f.write(buf.getvalue())
        self._written.add(self.plots_path)


def use_experiment(experiment: str, uri: str) -> None:
    """Make ``experiment`` the active one, creating it marked as model training; in the
    default store its artifacts go to the project's ``mlruns/`` (not a queued experiment's
    temporary copy). :class:`TrackingError` (one line) if the store cannot be used."""
    import mlflow

    try:
        client = mlflow.MlflowClient()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            # (not from MLFLOW_TRACKING_URI: MLflow's set_tracking_uri sets that variable)
            where = (project_root() / "mlruns").as_uri() if uri == default_uri() else None
            client.create_experiment(experiment, artifact_location=where, tags=EXPERIMENT_KIND)
        elif not found.tags.get("mlflow.experimentKind"):
            for key, value in EXPERIMENT_KIND.items():
                client.set_experiment_tag(found.experiment_id, key, value)
        mlflow.set_experiment(experiment)
    except Exception as err:  # noqa: BLE001 - any store failure gets one clear message
        raise TrackingError(f"cannot use MLflow tracking store {uri}: {one_line(err)}") from err


def entry_name(stage: str) -> str:
    """A run's name: the model entry of its stage (``train_text@lstm_shakespeare`` ->
    ``lstm_shakespeare``), or the stage (``train_classifier``) when it has none."""
    return stage.partition("@")[2] or stage


def exp_tags() -> dict[str, str]:
    """``dvc.exp``: the DVC experiment (``DVC_EXP_NAME``, set by ``dvc exp run``), if any."""
    name = os.environ.get("DVC_EXP_NAME")
    return {"dvc.exp": name} if name else {}


def dvc_hash(path: str | Path, lock: str | Path = "dvc.lock") -> str | None:
    """The hash ``lock`` records for the DVC output ``path`` (a file's MD5, a folder's
    ``<md5>.dir``), or None if no stage outputs it."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 0.05 s, not 0.5 s
    try:
        stages = yaml.load(Path(lock).read_text(), Loader=loader).get("stages", {})
    except (OSError, AttributeError, yaml.YAMLError):
        return None
    want = Path(path).as_posix().rstrip("/")
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out.get("path", "").rstrip("/") == want:
                return out.get("md5")
    return None


def log_dvc_inputs(paths: list[str | Path], context: str = "training") -> None:
    """Each DVC-tracked input of the active run as an MLflow dataset input: its path as
    name and source, its DVC hash (dvc.lock) as digest; untracked paths are skipped."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for path in paths:
        digest = dvc_hash(path)
        if digest is None:
            continue
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local path
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(str(Path(path).resolve()))
        mlflow.log_input(MetaDataset(source, name=Path(path).as_posix(), digest=digest),
                         context=context)


def _quiet_mlflow_logs() -> None:
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _metric_history(run_id: str) -> dict[tuple[str, int], float]:
    """Every (metric, step) -> value of an existing MLflow run."""
    import mlflow

    client = mlflow.MlflowClient()
    return {(key, m.step): m.value for key in client.get_run(run_id).data.metrics
            for m in client.get_metric_history(run_id, key)}


@contextlib.contextmanager
def start_run(
    stage: str,
    params: Mapping[str, Any],
    *,
    metrics_path: str | Path | None = None,
    plots_path: str | Path | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    uri: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
    inputs: list[str | Path] = (),
) -> Iterator[Run]:
    """Open an MLflow run for ``stage`` with ``params``; mirror metrics to DVC files.

    With ``run_id`` (a stage resumed after a crash) the existing run is
    continued instead of leaving a dead duplicate. The run ends FINISHED on
    success and FAILED if the block raises. ``inputs``: DVC-tracked paths,
    logged as the run's dataset inputs (:func:`log_dvc_inputs`). A training stage
    (``train_...``) also records system metrics (CPU, memory; GPU with ``nvidia-ml-py``).
    """
    uri = uri or tracking_uri()
    check_reachable(uri)
    _quiet_mlflow_logs()
    import mlflow

    mlflow.set_tracking_uri(uri)
    use_experiment(experiment, uri)
    all_tags = {"mlflow.source.git.commit": git_commit(), "dvc.stage": stage, **exp_tags(),
                **(tags or {})}
    if run_id is not None:
        try:
            mlflow.MlflowClient().get_run(run_id)
        except mlflow.exceptions.MlflowException:
            logging.getLogger(__name__).warning("MLflow run %s not found; starting a new one", run_id)
            run_id = None
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else entry_name(stage),
                          tags=all_tags,
                          log_system_metrics=stage.startswith("train_")) as active:
        flat = flatten(params)
        if flat and run_id is None:
            mlflow.log_params({k: str(v) for k, v in flat.items()})
            log_dvc_inputs(list(inputs))
        run = Run(
            active,
            Path(metrics_path) if metrics_path else None,
            Path(plots_path) if plots_path else None,
            logged=_metric_history(run_id) if run_id else None,
        )
        try:
            yield run
        except BaseException:
            run.discard()
            raise


class NullRun:
    """The tracking run of ranks other than 0: accepts everything, writes nothing."""

    run_id = None

    def __init__(self):
        self.latest: dict[str, float] = {}

    def log(self, *_, **__) -> None:
        pass

    def log_artifact(self, *_, **__) -> None:
        pass

    def set_tags(self, *_, **__) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        pass


def training_run(info, stage: str, params: Mapping[str, Any], **kwargs):
    """:func:`start_run` on rank 0 (``info``: a ``distributed.Dist``), a :class:`NullRun`
    on the other ranks: only rank 0 writes files and MLflow runs."""
    if not info.is_main:
        return contextlib.nullcontext(NullRun())
    return start_run(stage, params, **kwargs)


# --- the training run of a checkpoint -------------------------------------------------------
# A checkpoint holds no run id: the same params and seed must give the same bytes, so that a
# forced retrain of an unchanged model leaves the stages downstream of it up to date. The
# training run is tagged with the checkpoint's SHA-256 instead, and the stages after it find
# the run through that tag.

CHECKPOINT_TAG = "genmodels.checkpoint_sha256"


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``hashlib``'s ``algorithm``)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sha256(path: str | Path) -> str:
    return file_digest(path, "sha256")


def tag_checkpoint(run_id: str, checkpoint: str | Path) -> None:
    """Tag the training run ``run_id`` with the SHA-256 of the checkpoint it wrote."""
    import mlflow

    mlflow.MlflowClient().set_tag(run_id, CHECKPOINT_TAG, sha256(checkpoint))


def run_of_checkpoint(checkpoint: str | Path, experiment: str = DEFAULT_EXPERIMENT) -> str | None:
    """The id of the newest run tagged with ``checkpoint``'s SHA-256 (the run that trained
    it, or the latest of several that trained the same bytes); None if there is none."""
    if not Path(checkpoint).is_file():
        return None
    uri = tracking_uri()
    check_reachable(uri)
    _quiet_mlflow_logs()
    import mlflow

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    try:
        found = client.get_experiment_by_name(experiment)
    except Exception as err:  # noqa: BLE001 - any store failure gets one clear message
        raise TrackingError(f"cannot use MLflow tracking store {uri}: {one_line(err)}") from err
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id],
                              f"tags.`{CHECKPOINT_TAG}` = '{sha256(checkpoint)}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


@contextlib.contextmanager
def model_run(checkpoint: str | Path, stage: str, metrics_path: str | Path | None = None,
              experiment: str = DEFAULT_EXPERIMENT) -> Iterator[Run]:
    """Evaluation and rendering log into the MLflow run that trained ``checkpoint``
    (:func:`run_of_checkpoint`), so the UI shows one run per model entry with its curves,
    test metrics, figures, samples and model, for images and text alike. A checkpoint
    with no run (a fresh ``mlflow.db``) gets a new run named after ``stage``."""
    uri = tracking_uri()
    check_reachable(uri)  # first: an unusable store fails in seconds, checkpoint or not
    run_id = run_of_checkpoint(checkpoint, experiment)
    import mlflow

    mlflow.set_tracking_uri(uri)
    use_experiment(experiment, uri)
    if run_id is None:
        logging.getLogger(__name__).warning(
            "no MLflow run trained %s; logging %s to a new run", checkpoint, stage)
    tags = {"dvc.stage": stage, **({} if run_id else exp_tags())}  # a reopened run keeps its own
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else entry_name(stage),
                          tags=tags) as active:
        run = Run(active, Path(metrics_path) if metrics_path else None, None)
        try:
            yield run
        except BaseException:
            run.discard()  # a failed stage leaves no metrics file
            raise
