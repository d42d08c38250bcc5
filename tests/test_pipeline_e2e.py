"""The data stages end to end: a copy of the project, `dvc repro` against the mirror."""

import json

import pytest
import torch

from conftest import copy_project, run_dvc

pytestmark = pytest.mark.e2e


def test_data_stages_run_and_a_second_repro_changes_nothing(tiny_pipeline, mirror):
    project = tiny_pipeline
    for split in ("train", "val", "test"):
        assert (project / "data/prepared/fashion-mnist" / f"{split}.pt").is_file()
        for corpus in ("shakespeare", "sherlock"):
            ids = torch.load(project / "data/prepared" / corpus / f"{split}.pt", weights_only=True)
            assert ids["ids"].dtype == torch.int64 and ids["ids"].numel() > 0
    metrics = json.loads((project / "reports/prepare_text/sherlock.json").read_text())
    assert set(metrics) == {"tokens", "vocab_size", "oov_rate", "boilerplate_tokens", "cased_words"}
    assert metrics["boilerplate_tokens"] > 0  # the licence footers and bylines
    vocab = json.loads((project / "data/prepared/sherlock/vocab.json").read_text())
    assert metrics["cased_words"] == len(vocab["casing"]) and vocab["casing"]["holmes"] == "Holmes"
    assert (project / "mlflow.db").is_file()

    again = run_dvc(project, "repro", mirror=mirror)
    assert "Data and pipelines are up to date" in again.stdout
    assert "Running stage" not in again.stdout


def test_dag_shows_download_feeding_every_prepare_stage(tiny_pipeline):
    dag = run_dvc(tiny_pipeline, "dag", "--dot").stdout
    for stage in ("prepare_images", "prepare_text@shakespeare", "prepare_text@sherlock"):
        assert f'"download" -> "{stage}"' in dag


def test_a_corrupted_mirror_file_fails_the_stage_and_leaves_no_output(tmp_path, mirror):
    bad = tmp_path / "mirror"
    bad.mkdir()
    for dataset in ("fashion-mnist", "sherlock"):
        (bad / dataset).symlink_to(mirror / dataset)
    (bad / "shakespeare").mkdir()
    (bad / "shakespeare" / "input.txt").write_bytes(
        (mirror / "shakespeare" / "input.txt").read_bytes()[:-10] + b"corrupted!"
    )
    project = copy_project(tmp_path / "project")
    result = run_dvc(project, "repro", "download", mirror=bad, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "shakespeare/input.txt" in output
    assert "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed" in output
    raw = project / "data" / "raw"
    assert not raw.exists() or not any(raw.iterdir())  # nothing half-written
