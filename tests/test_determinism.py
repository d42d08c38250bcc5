"""Same params and seed, same numbers: two clean runs of the tiny pipeline write identical
metrics and plots files (speed metrics live in MLflow only, tracking.is_speed). The second
run also carries every model family end to end, which the default suite's copy leaves out."""

from pathlib import Path

import pytest
import yaml

from conftest import apply_tiny_params, copy_project, run_dvc

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def metrics_and_plots(project: Path) -> dict[str, str]:
    """Every JSON and CSV file under reports/ that the tiny pipeline wrote (an output, in its
    dvc.lock, of a stage its params define: the lock keeps the entries of the project's
    other models, whose reports are copied, not made), by path, but the MLflow run ids."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    defined = run_dvc(project, "stage", "list", "--name-only", "dvc.yaml").stdout.split()
    outs = [project / o["path"] for name in defined for o in lock[name].get("outs", [])]
    written = [p for out in outs for p in ([out] if out.is_file() else sorted(out.rglob("*")))]
    return {str(p.relative_to(project)): p.read_text() for p in sorted(written)
            if p.parts[len(project.parts)] == "reports" and p.suffix in (".json", ".csv")
            and p.name != "mlflow_runs.json"}


def test_two_clean_runs_write_identical_metrics(tiny_pipeline, mirror, tmp_path):
    """A second clean copy, with every model family (tests/tiny_params_more.yaml: the
    default suite's copy holds one image and one text model), runs every stage of each
    under dvc repro; what the two runs have in common comes out byte for byte the same."""
    again = copy_project(tmp_path / "again")
    params = apply_tiny_params(again, every_family=True)
    run_dvc(again, "repro", mirror=mirror, extra_env={"OMP_NUM_THREADS": "1"})
    first, second = metrics_and_plots(tiny_pipeline), metrics_and_plots(again)
    assert len(first) >= 12 and first.keys() < second.keys()
    assert [p for p in first if first[p] != second[p]] == []
    for name in params["train_image"]:
        assert f"reports/evaluate_image/{name}.json" in second, name
        assert (again / "reports/render_image" / name / "prior_samples.png").is_file(), name
    for name in params["train_text"]:
        assert f"reports/evaluate_text/{name}/metrics.json" in second, name
        assert (again / "reports/render_text" / name / "samples_t1.txt").is_file(), name
    for name in params["ensemble_text"]:  # two tiny Shakespeare models mixed
        assert f"reports/ensemble_text/{name}.json" in second, name
    assert "Data and pipelines are up to date" in run_dvc(again, "status", "dvc.yaml").stdout
    # The resume checkpoints the training stages wrote (tiny_params: checkpoint_every) are gone.
    assert not [p for p in (again / "data").rglob("*") if "resume" in p.parts and p.is_file()]
