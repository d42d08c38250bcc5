import csv
import json
import socket
import time

import pytest
from mlflow.tracking import MlflowClient

from genmodels.tracking import TrackingError, flatten, nest, start_run


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts land under tmp_path/mlruns
    return uri


def test_run_is_written_to_mlflow_and_dvc_files_and_read_back(store, tmp_path):
    artifact = tmp_path / "grid.txt"
    artifact.write_text("pixels")
    params = {"model": {"latent_dim": 2, "family": "vae"}, "seed": 0}
    with start_run("train@toy", params, metrics_path=tmp_path / "m.json",
                   plots_path=tmp_path / "plots.csv") as run:
        for epoch in range(3):
            run.log({"train/loss": 10.0 - epoch, "val/loss": 11.0 - epoch}, step=epoch)
        run.log({"test/accuracy": 0.9, "test/count": 7})
        run.log_artifact(artifact, "figures")
        run_id = run.run_id

    client = MlflowClient(store)
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"model.latent_dim": "2", "model.family": "vae", "seed": "0"}
    assert got.data.tags["dvc.stage"] == "train@toy"
    assert "mlflow.source.git.commit" in got.data.tags
    history = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(0, 10.0), (1, 9.0), (2, 8.0)]
    assert [a.path for a in client.list_artifacts(run_id, "figures")] == ["figures/grid.txt"]

    assert json.loads((tmp_path / "m.json").read_text()) == {
        "train": {"loss": 8.0}, "val": {"loss": 9.0}, "test": {"accuracy": 0.9, "count": 7},
    }
    rows = list(csv.DictReader((tmp_path / "plots.csv").open()))
    assert [r["step"] for r in rows] == ["0", "1", "2"]
    assert float(rows[2]["val/loss"]) == 9.0 and "test/accuracy" not in rows[0]


def test_a_failing_stage_ends_its_run_failed(store):
    with pytest.raises(RuntimeError, match="boom"):
        with start_run("broken", {}) as run:
            run_id = run.run_id
            raise RuntimeError("boom")
    assert MlflowClient(store).get_run(run_id).info.status == "FAILED"


def test_unreachable_server_fails_fast_with_a_clear_error(monkeypatch):
    with socket.socket() as s:  # find a closed port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(TrackingError, match="unreachable"):
        with start_run("x", {}):
            pass
    assert time.monotonic() - start < 10


def test_names_flatten_and_nest():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    assert nest({"train/loss": 1.0, "train/kl": 2.0, "n": 3}) == {
        "train": {"loss": 1.0, "kl": 2.0}, "n": 3,
    }


def test_a_resumed_run_continues_the_same_mlflow_run(store, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with start_run("train@toy", {"lr": 0.1}, plots_path=tmp_path / "p.csv") as run:
            run.log({"train/loss": 3.0}, step=0)
            saved = run.state_dict()  # the last resume checkpoint
            run.log({"train/loss": 2.5, "val/loss": 2.7}, step=1)  # logged, then the process dies
            raise KeyboardInterrupt
    with start_run("train@toy", {"lr": 0.1}, plots_path=tmp_path / "p.csv",
                   run_id=saved["run_id"]) as run:
        run.load_state_dict(saved)
        # Step 1 recomputed: train/loss equal (bit for bit on the CPU), val/loss not (a GPU).
        run.log({"train/loss": 2.5, "val/loss": 2.6}, step=1)
        run.log({"train/loss": 2.0}, step=2)
    client = MlflowClient(store)
    runs = client.search_runs(client.get_experiment_by_name("genmodels").experiment_id)
    assert [r.info.run_id for r in runs] == [saved["run_id"]]
    assert runs[0].info.status == "FINISHED"

    def history(key):
        return sorted((m.step, m.value) for m in client.get_metric_history(saved["run_id"], key))

    assert history("train/loss") == [(0, 3.0), (1, 2.5), (2, 2.0)]  # each step once
    assert history("val/loss") == [(1, 2.6), (1, 2.7)]  # a changed value is logged again
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [(r["step"], r["train/loss"], r["val/loss"]) for r in rows] == [
        ("0", "3.0", ""), ("1", "2.5", "2.6"), ("2", "2.0", "")]


def test_experiment_is_model_training_and_runs_record_dvc_inputs(store, tmp_path, monkeypatch):
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    cmd: x\n    outs:\n"
        "    - path: data/prepared\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef.dir\n")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    with start_run("train_text@toy", {"lr": 0.1}, inputs=["data/prepared", "untracked"]) as run:
        time.sleep(2.5)  # a sample or two of the system metrics
        run_id = run.run_id
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("genmodels")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    got = client.get_run(run_id)
    assert [(d.dataset.name, d.dataset.digest) for d in got.inputs.dataset_inputs] == [
        ("data/prepared", "0123456789abcdef0123456789abcdef.dir")]
    assert any(k.startswith("system/cpu_utilization") for k in got.data.metrics), got.data.metrics


def test_a_queued_experiment_keeps_its_artifacts_in_the_project(tmp_path, monkeypatch):
    """`dvc exp run --queue` runs each experiment in a temporary copy (the working directory)
    that DVC deletes afterwards; DVC_ROOT names the project. Runs and their artifacts (the
    checkpoints `genmodels generate models:/...` downloads) must land in the project, not
    in the copy. MLflow's set_tracking_uri sets MLFLOW_TRACKING_URI, which once made the
    default store look like a user's own and the artifacts go to the copy."""
    project, copy = tmp_path / "project", tmp_path / "project/.dvc/tmp/exps/tmpabc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(project))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (copy / "model.pt").write_bytes(b"weights")
    for _ in range(2):  # the experiment is created by the first run, found by the second
        with start_run("train_text@toy", {}) as run:
            run.log_artifact(copy / "model.pt", artifact_path="checkpoint")
            artifacts = run._mlflow_run.info.artifact_uri
        assert artifacts.startswith((project / "mlruns").as_uri()) or artifacts.startswith(
            str(project / "mlruns")), artifacts
    assert (project / "mlflow.db").is_file() and not (copy / "mlruns").exists()
