"""The whole pipeline, tiny: the results page, and experiments that re-run only what they touch."""

import re

import pytest
import yaml

from conftest import run_dvc

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
    status = run_dvc(tiny_pipeline, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout


def test_changing_one_models_param_marks_only_its_stages_stale(tiny_pipeline):
    params_file = tiny_pipeline / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["train_text"]["lstm_shakespeare"]["train"]["lr"] = 1.0e-2
    try:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        status = run_dvc(tiny_pipeline, "status", "--json")
    finally:
        params_file.write_text(original)
    stale = set(yaml.safe_load(status.stdout))
    # train_text@lstm_shakespeare re-runs; evaluate/render follow once its checkpoint changes;
    # the report lists every model's params.
    assert stale == {"train_text@lstm_shakespeare", "report"}, stale
