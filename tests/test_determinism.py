"""Same params and seed, same numbers: two clean runs of the tiny pipeline write identical
metrics and plots files (speed metrics live in MLflow only, tracking.is_speed)."""

from pathlib import Path

import pytest
import yaml

from conftest import apply_tiny_params, copy_project, run_dvc

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def metrics_and_plots(project: Path) -> dict[str, str]:
    """Every JSON and CSV file under reports/ that the tiny pipeline wrote (an output in its
    dvc.lock: the project's own reports of models the tiny params drop are copied, not
    made), by path, but the MLflow run ids."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    outs = [project / o["path"] for stage in lock.values() for o in stage.get("outs", [])]
    written = [p for out in outs for p in ([out] if out.is_file() else sorted(out.rglob("*")))]
    return {str(p.relative_to(project)): p.read_text() for p in sorted(written)
            if p.parts[len(project.parts)] == "reports" and p.suffix in (".json", ".csv")
            and p.name != "mlflow_runs.json"}


def test_two_clean_runs_write_identical_metrics(tiny_pipeline, mirror, tmp_path):
    again = copy_project(tmp_path / "again")
    apply_tiny_params(again)
    run_dvc(again, "repro", mirror=mirror, extra_env={"OMP_NUM_THREADS": "1"})
    first, second = metrics_and_plots(tiny_pipeline), metrics_and_plots(again)
    assert len(first) >= 20 and first.keys() == second.keys()
    assert [p for p in first if first[p] != second[p]] == []
    # The resume checkpoints the training stages wrote (tiny_params: checkpoint_every) are gone.
    assert not [p for p in (again / "data").rglob("*") if "resume" in p.parts and p.is_file()]
