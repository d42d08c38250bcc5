"""The whole pipeline, tiny: the results page, and experiments that re-run only what they touch."""

import json
import os
import re
import subprocess
import time

import pytest
import yaml
from mlflow import MlflowClient

from conftest import ROOT, run_dvc

pytestmark = pytest.mark.e2e


def test_report_lists_every_model_and_every_image_link_resolves(tiny_pipeline):
    page = (tiny_pipeline / "reports" / "README.md").read_text()
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    for name in params["train_image"]:
        assert f"| `{name}` |" in page, name
    assert "| train vs test (floor) |" in page
    for name, entry in params["train_text"].items():
        assert f"### `{entry['corpus']}`" in page, entry["corpus"]  # one section per corpus
        assert f"| `{name}` |" in page, name
    assert "| Kneser-Ney (order 3, same `<unk>` treatment) |" in page  # the fair baselines
    assert "| unigram (same `<unk>` treatment) |" in page
    assert "Prompt:" in page  # one whole prompted sample per model
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    # four or more figures per image model, a loss curve per text model, the map
    assert len(links) >= 4 * len(params["train_image"]) + len(params["train_text"]) + 1
    for link in links:
        assert (tiny_pipeline / "reports" / link).is_file(), link
    assert "MLflow run: `–`" not in page  # every model's run id is known


def test_everything_is_up_to_date_after_repro(tiny_pipeline):
    status = run_dvc(tiny_pipeline, "status", "dvc.yaml")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout


def test_changing_one_models_param_marks_only_its_stages_stale(tiny_pipeline):
    params_file = tiny_pipeline / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["train_text"]["lstm_shakespeare"]["train"]["lr"] = 1.0e-2
    try:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        status = run_dvc(tiny_pipeline, "status", "--json", "dvc.yaml")
    finally:
        params_file.write_text(original)
    stale = set(yaml.safe_load(status.stdout))
    # train_text@lstm_shakespeare re-runs; evaluate/render follow once its checkpoint changes;
    # the report lists every model's params.
    assert stale == {"train_text@lstm_shakespeare", "report"}, stale


GIT_ID = {k: "genmodels tests" for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")} | {
    k: "tests@genmodels" for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")}


def wait_for_queue(project, timeout: float = 1200) -> str:
    """Poll `dvc queue status` until nothing is queued or running; its last output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run_dvc(project, "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(5)
    raise AssertionError(f"queue still busy after {timeout} s:\n{status}")


@pytest.mark.slow  # two queued tiny pipelines: about 85 s on 2 cores
def test_queued_experiments_carry_their_name_into_mlflow(tiny_pipeline, mirror):
    """Two queued experiments run; `dvc exp show` lists their MLflow run ids, and those
    runs carry the experiment's name (tag dvc.exp), as does the registered model."""
    project = tiny_pipeline
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    names = [m.name for m in client.search_registered_models()]
    candidates = {n: client.get_model_version_by_alias(n, "candidate").version for n in names}
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "tiny baseline"], cwd=project, check=True,
                   env={**os.environ, **GIT_ID})
    env = {"OMP_NUM_THREADS": "1", **GIT_ID}
    exps = {"drop0": "0.0", "drop2": "0.2"}
    try:
        for name, dropout in exps.items():
            run_dvc(project, "exp", "run", "--queue", "-n", name, "-S",
                    f"train_text.lstm_shakespeare.model.dropout={dropout}", extra_env=env)
        run_dvc(project, "queue", "start", extra_env=env, mirror=mirror)
        status = wait_for_queue(project)
        assert status.count("Success") == 2, status
        shown = json.loads(run_dvc(project, "exp", "show", "--json").stdout)
        found = {e["name"]: e["data"] for row in shown for exp in (row.get("experiments") or [])
                 for e in exp["revs"] if e.get("name") in exps}
        assert found.keys() == exps.keys(), shown
        for name, data in found.items():
            metrics = data["metrics"]
            ids = metrics["reports/mlflow_runs.json"]["data"]["mlflow_run_id"]
            run = client.get_run(ids["train_text@lstm_shakespeare"])
            assert run.data.tags["dvc.exp"] == name
            assert run.data.params["model.dropout"] == exps[name]
            assert "test/ppl" in run.data.metrics  # evaluate_text logs into the training run
            assert "test" in metrics["reports/evaluate_text/lstm_shakespeare/metrics.json"]["data"]
        tagged = client.search_model_versions("name = 'genmodels-lstm_shakespeare'")
        assert {v.tags.get("dvc.exp") for v in tagged} >= set(exps)
    finally:  # the fixture is shared: the workspace is untouched, the aliases are restored
        run_dvc(project, "exp", "remove", *exps, check=False)
        for name, version in candidates.items():
            client.set_registered_model_alias(name, "candidate", version)


def stale_after_touching(project, source: str) -> set[str]:
    """The stages `dvc status` lists after one line is appended to ``source``."""
    path = project / source
    original = path.read_text()
    try:
        path.write_text(original + "# touched\n")
        status = run_dvc(project, "status", "--json", "dvc.yaml")
    finally:
        path.write_text(original)
    return set(yaml.safe_load(status.stdout))


def test_touching_speed_py_marks_every_training_stage_stale(tiny_pipeline):
    """Issue 13: speed.py sets every model's numerics, so every training stage depends on it."""
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    stale = stale_after_touching(tiny_pipeline, "src/genmodels/speed.py")
    training = {"train_classifier", *(f"train_image@{k}" for k in params["train_image"]),
                *(f"train_text@{k}" for k in params["train_text"])}
    assert training <= stale, training - stale


def test_touching_the_text_evaluation_marks_evaluate_text_and_no_training(tiny_pipeline):
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    stale = stale_after_touching(tiny_pipeline, "src/genmodels/text/evaluate.py")
    assert stale == {f"evaluate_text@{k}" for k in params["train_text"]}, stale


@pytest.mark.slow  # retrains a model under dvc repro: the default suite stays under 5 min
def test_a_forced_retrain_writes_the_same_checkpoint_and_nothing_downstream_reruns(tiny_pipeline):
    """Issue 13: a checkpoint holds no tracking id, so retraining an unchanged model (tracking
    on) writes the same bytes; DVC then sees nothing downstream to re-run. The new MLflow run
    carries the checkpoint's hash, so evaluate and render would find it."""
    from genmodels.tracking import CHECKPOINT_TAG, sha256

    entry = "lstm_shakespeare"
    checkpoint = tiny_pipeline / "data/models/text" / f"{entry}.pt"
    before = checkpoint.read_bytes()
    run_dvc(tiny_pipeline, "repro", "-f", "-s", f"train_text@{entry}",
            extra_env={"OMP_NUM_THREADS": "1"})
    assert checkpoint.read_bytes() == before
    status = run_dvc(tiny_pipeline, "status", "dvc.yaml")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    client = MlflowClient(f"sqlite:///{tiny_pipeline / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("genmodels").experiment_id],
                              f"tags.`{CHECKPOINT_TAG}` = '{sha256(checkpoint)}'")
    assert len(runs) >= 2  # the first training run and the forced one


def test_the_default_repro_leaves_the_opt_in_inception_pipeline_alone(tiny_pipeline):
    """Inception-FID costs about 15 minutes per 10,000 images on a CPU: the default `dvc
    repro` (run by the fixture) must not have run it, nor plan to. The copy holds the
    project's committed scores, of other checkpoints: its page must call them out of date."""
    for committed in (ROOT / "reports/inception").glob("*.json"):  # not rewritten
        assert (tiny_pipeline / "reports/inception" / committed.name).read_bytes() \
            == committed.read_bytes()
    page = (tiny_pipeline / "reports/README.md").read_text()
    assert "| `vae` | out of date | out of date |" in page
    dry = run_dvc(tiny_pipeline, "repro", "--dry").stdout
    assert "inception" not in dry, dry
    listed = run_dvc(tiny_pipeline, "stage", "list", "inception/dvc.yaml").stdout
    assert "inception_reference" in listed and "inception_fid@vae" in listed  # opt-in, there


def test_each_model_entry_is_one_mlflow_run_with_curves_metrics_figures_and_model(tiny_pipeline):
    """Issue 13: training, evaluation and rendering of a model entry land in one MLflow run,
    named after the entry, for the classifier, the image variants and the language models:
    its per-epoch curves, its test metric, its figures and its logged model."""
    import mlflow

    from genmodels.tracking import CHECKPOINT_TAG, sha256

    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    models = tiny_pipeline / "data/models"
    entries = {  # entry -> (checkpoint, a per-epoch metric, its epochs, the test metric, figures)
        "train_classifier": (models / "classifier.pt", "val/accuracy",
                             params["train_classifier"]["epochs"], "test/accuracy", "figures"),
        **{k: (models / "image" / f"{k}.pt", "val/loss", v["epochs"], "samples/fid", "figures")
           for k, v in params["train_image"].items()},
        **{k: (models / "text" / f"{k}.pt", "val/ppl", v["train"]["epochs"], "test/ppl", "render")
           for k, v in params["train_text"].items()}}
    uri = f"sqlite:///{tiny_pipeline / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("genmodels").experiment_id
    for entry, (checkpoint, curve, epochs, metric, figures) in entries.items():
        runs = client.search_runs([experiment], f"tags.`{CHECKPOINT_TAG}` = '{sha256(checkpoint)}'",
                                  order_by=["attributes.start_time ASC"])
        assert runs, f"{entry}: no run trained {checkpoint.name}"
        run = runs[0]  # the fixture's repro; a forced retrain (another test) adds a later one
        assert run.info.run_name == entry
        steps = [m.step for m in client.get_metric_history(run.info.run_id, curve)]
        assert sorted(steps) == list(range(1, epochs + 1)), (entry, steps)
        assert metric in run.data.metrics, (entry, sorted(run.data.metrics))
        assert client.list_artifacts(run.info.run_id, figures), f"{entry}: no {figures}/"
        mlflow.set_tracking_uri(uri)
        logged = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list",
                                             filter_string=f"source_run_id = '{run.info.run_id}'")
        assert logged, f"{entry}: no logged model"
    named = {r.info.run_name for r in client.search_runs([experiment])
             if CHECKPOINT_TAG not in r.data.tags}
    assert not named & set(entries), named  # evaluation and rendering opened no runs of their own
