"""The tiny pipeline registers every trained model; promote and generate work on it."""

import contextlib
import os
import subprocess
import sys

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.e2e


def genmodels(project, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "genmodels.cli", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)


def locked_md5(project, path: str) -> str:
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return next(o["md5"] for s in lock["stages"].values() for o in s.get("outs", [])
                if o["path"] == path)


def test_every_trained_model_is_a_candidate_version(tiny_pipeline):
    client = MlflowClient(f"sqlite:///{tiny_pipeline / 'mlflow.db'}")
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    entries = {**{e: "text" for e in params["train_text"]},
               **{e: "image" for e in params["train_image"]}}
    for entry, kind in entries.items():
        version = client.get_model_version_by_alias(f"genmodels-{entry}", "candidate")
        assert version.tags["kind"] == kind
        out = f"data/models/{kind}/{entry}.pt"
        assert version.tags["checkpoint_md5"] == locked_md5(tiny_pipeline, out), entry


@pytest.mark.slow  # trains a better model under dvc repro: the default suite stays under 5 min
def test_promote_then_generate_by_alias(tiny_pipeline):
    client = MlflowClient(f"sqlite:///{tiny_pipeline / 'mlflow.db'}")
    try:
        for entry in ("lstm_shakespeare", "vae"):
            first = genmodels(tiny_pipeline, "promote", entry)
            assert first.returncode == 0, first.stderr
            assert "there was no champion" in first.stdout
            again = genmodels(tiny_pipeline, "promote", entry)
            assert "is already champion" in again.stdout
        args = ["generate", "--prompt", "first citizen", "--words", "10", "--seed", "1"]
        by_path = genmodels(tiny_pipeline, *args, "--checkpoint",
                            "data/models/text/lstm_shakespeare.pt")
        by_alias = genmodels(tiny_pipeline, *args, "--checkpoint",
                             "models:/genmodels-lstm_shakespeare@champion")
        assert by_alias.returncode == 0, by_alias.stderr
        assert by_alias.stdout == by_path.stdout and by_path.stdout.strip()
    finally:  # the fixture is shared: leave the registry as the pipeline left it
        for entry in ("lstm_shakespeare", "vae"):
            with contextlib.suppress(MlflowException):
                client.delete_registered_model_alias(f"genmodels-{entry}", "champion")
