"""Resume: a training run stopped mid-epoch and started again ends where an unbroken run
ends, bit for bit on the CPU, and in the same MLflow run.

In process for the image loop and the classifier (an exception raised right after a
resume checkpoint stands in for the kill); end to end for a text stage killed with
SIGKILL under `dvc repro` and started again by `dvc repro`.
"""

import os
import shutil
import signal
import subprocess
import time

import mlflow
import psutil
import pytest
import torch
import yaml

from genmodels.images.classifier import ClassifierConfig
from genmodels.images.registry import config_from_dict
from genmodels.images.train import train
from genmodels.images.train_classifier import train_classifier
from genmodels.resume import Resume

from conftest import VENV_BIN, apply_tiny_params, copy_project, run_dvc, write_fake_images

TINY = dict(channels=[4, 8], epochs=2, batch_size=16, lr=1e-3, seed=0, limit_batches=5)
VAEGAN = dict(family="vaegan", latent_dim=8, hidden_dim=8, disc_channels=[4, 8], gamma=0.05,
              beta=1.0, beta1=0.5, real_label=0.9, **TINY)  # three optimizers, batch norm, noise
CLASSIFIER = dict(feature_dim=8, dropout=0.3, **TINY)  # dropout and a cosine LR schedule
EVERY = 3  # steps between checkpoints: 3 (epoch 1), 6 and 9 (epoch 2, of 5 steps each)


class Killed(BaseException):
    """Stands in for SIGKILL."""


def kill_after_checkpoint(monkeypatch, n: int) -> None:
    """Make the ``n``-th resume checkpoint of the next run its last act."""
    save, count = Resume.save, iter(range(1, 1_000))

    def save_then_die(self, state, local):
        save(self, state, local)
        if next(count) == n:
            raise Killed

    monkeypatch.setattr(Resume, "save", save_then_die)


def fit_vaegan(data, out, resume):
    cfg = config_from_dict(VAEGAN, "train_image.vaegan")
    train(cfg, data, out / "model.pt", out / "metrics.json", out / "plots.csv",
          stage="train_image@vaegan", resume=resume)


def fit_classifier(data, out, resume):
    train_classifier(ClassifierConfig(**CLASSIFIER), data, out / "model.pt",
                     out / "metrics.json", out / "plots.csv", resume=resume)


@pytest.fixture
def fake_images(tmp_path, monkeypatch):
    """A prepared Fashion-MNIST folder of random images; its own MLflow store; cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return write_fake_images(tmp_path / "prepared", {"train": 160, "val": 40, "test": 40})


@pytest.mark.parametrize("fit", [  # the classifier under slow: the default suite stays < 5 min
    pytest.param(fit_vaegan, id="vaegan"),
    pytest.param(fit_classifier, id="classifier", marks=pytest.mark.slow)])
def test_a_run_killed_mid_epoch_resumes_bit_for_bit(fit, fake_images, tmp_path, monkeypatch,
                                                    one_thread):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    fit(fake_images, whole, None)

    path = tmp_path / "resume" / "model.pt"
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 2)
        with pytest.raises(Killed):
            fit(fake_images, broken, Resume(path, EVERY, data=[fake_images]))
    saved = torch.load(path, weights_only=True)["state"]
    assert (saved["epoch"], saved["batch"], saved["step"]) == (2, 1, 6)  # mid-epoch
    killed_run = saved["run"]["run_id"]

    fit(fake_images, broken, Resume(path, EVERY, data=[fake_images]))
    assert not path.exists()  # removed once the stage's outputs are written
    for name in ("metrics.json", "plots.csv"):
        assert (broken / name).read_text() == (whole / name).read_text(), name
    a = torch.load(whole / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(broken / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The killed run was continued, not left behind: two runs in all, both finished.
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("genmodels").experiment_id])
    assert killed_run in {r.info.run_id for r in runs}
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}


def test_a_checkpoint_from_other_settings_is_ignored(tmp_path):
    path = tmp_path / "resume.pt"
    Resume(path, 1, config={"lr": 0.1}).save({"step": 1, "run": {}}, {})
    assert Resume(path, 1, config={"lr": 0.1}).state["step"] == 1
    assert Resume(path, 1, config={"lr": 0.2}).state is None
    assert Resume(path, 0, config={"lr": 0.1}).state is None  # checkpoints off


STAGE = "train_text@lstm_shakespeare"


def stage_process(dvc: subprocess.Popen) -> psutil.Process | None:
    """The stage's python process under ``dvc repro``, once it has started."""
    for child in psutil.Process(dvc.pid).children(recursive=True):
        try:
            if "stages/train_text.py" in " ".join(child.cmdline()) and "python" in child.name():
                return child
        except psutil.NoSuchProcess:
            pass
    return None


def tiny_lstm_project(path, tiny_pipeline):
    """A project copy that holds tiny_pipeline's prepared Shakespeare, with the tiny LSTM
    made longer (400 windows an epoch: a kill lands well inside epoch 1)."""
    project = copy_project(path)
    params = apply_tiny_params(project)
    params["checkpoint_every"] = 25
    params["train_text"] = {"lstm_shakespeare": params["train_text"]["lstm_shakespeare"]}
    params["train_text"]["lstm_shakespeare"]["train"]["limit_batches"] = 400
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(tiny_pipeline / "data/prepared/shakespeare",
                    project / "data/prepared/shakespeare")
    return project


def outputs(project) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The stage's metrics and plots files, and its checkpoint's weights."""
    reports = project / "reports/train_text/lstm_shakespeare"
    files = {name: (reports / name).read_text() for name in ("metrics.json", "plots.csv")}
    checkpoint = project / "data/models/text/lstm_shakespeare.pt"
    return files, torch.load(checkpoint, weights_only=True)["state_dict"]


@pytest.mark.slow
@pytest.mark.e2e
def test_a_stage_killed_mid_epoch_resumes_under_dvc_repro(tiny_pipeline, tmp_path):
    env = {"OMP_NUM_THREADS": "1"}
    # Two copies: DVC's run cache would hand the second run the first one's outputs.
    whole = tiny_lstm_project(tmp_path / "whole", tiny_pipeline)
    run_dvc(whole, "repro", "--single-item", STAGE, extra_env=env)
    whole_files, whole_weights = outputs(whole)

    project = tiny_lstm_project(tmp_path / "killed", tiny_pipeline)
    resume = project / "data/resume/train_text/lstm_shakespeare.pt"
    dvc = subprocess.Popen(  # kill the stage once it has written a resume checkpoint
        [str(VENV_BIN / "dvc"), "repro", "--single-item", STAGE], cwd=project,
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
             "DVC_NO_ANALYTICS": "1", "MLFLOW_TRACKING_URI": "", **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not resume.exists() and dvc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    stage = stage_process(dvc)
    assert stage is not None, "the stage ended before it wrote a resume checkpoint"
    stage.send_signal(signal.SIGKILL)
    assert dvc.wait(timeout=60) != 0
    saved = torch.load(resume, weights_only=True)["state"]
    assert saved["epoch"] == 1 and 0 < saved["step"] < 400  # mid-epoch

    rerun = run_dvc(project, "repro", "--single-item", STAGE, extra_env=env)
    assert f"resuming from {resume.relative_to(project)}" in rerun.stdout + rerun.stderr
    assert not resume.exists()
    files, weights = outputs(project)
    assert files == whole_files  # bit for bit: metrics and per-epoch curves
    assert weights.keys() == whole_weights.keys()
    assert all(torch.equal(weights[k], whole_weights[k]) for k in weights)
    # One MLflow run for the killed and resumed stage, finished: no dead duplicate.
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("genmodels").experiment_id])
    assert [(r.info.run_id, r.info.status) for r in runs] == [(saved["run"]["run_id"], "FINISHED")]
    print(f"\n{STAGE} unbroken:\n{whole_files['metrics.json']}"
          f"killed at step {saved['step']} and resumed:\n{files['metrics.json']}")
