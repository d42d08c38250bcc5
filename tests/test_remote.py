"""Sharing data through a DVC remote: push, fresh clone, pull, and nothing to re-run."""

import subprocess

import pytest

from conftest import run_dvc

pytestmark = pytest.mark.e2e

def git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=cwd, check=True, capture_output=True,
    )


def test_push_clone_pull_leaves_nothing_to_do(tmp_path, tiny_pipeline):
    project = tiny_pipeline  # the whole pipeline has run here
    storage = tmp_path / "storage"
    run_dvc(project, "remote", "add", "-f", "-d", "team", str(storage))
    run_dvc(project, "push")
    assert any(storage.rglob("*")), "dvc push wrote nothing to the remote"
    git(project, "add", "-A")
    git(project, "commit", "-qm", "pipeline ran")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    assert not (clone / "data/prepared/fashion-mnist/train.pt").exists()
    run_dvc(clone, "pull")  # no mirror: data and models come from the remote
    assert (clone / "data/prepared/fashion-mnist/train.pt").is_file()
    assert (clone / "data/prepared/sherlock/vocab.json").is_file()
    assert (clone / "data/models/image/vae.pt").is_file()

    status = run_dvc(clone, "status", "dvc.yaml")  # the default pipeline (not the opt-in one)
    assert "Data and pipelines are up to date" in status.stdout
    repro = run_dvc(clone, "repro")
    assert "Running stage" not in repro.stdout
