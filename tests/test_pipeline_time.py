"""The pipeline timer notes when each stage starts and writes nothing for a failed run."""

import json
import sys

from genmodels.pipeline_time import durations, group, main

FAKE = """import sys, time
for name in ("download", "train_image@vae", "train_text@lstm_sherlock"):
    print(f"Running stage '{name}':", flush=True)
    sys.stderr.write("progress 50%\\r"); sys.stderr.flush()
    time.sleep(0.2)
sys.exit(int(sys.argv[1]))
"""


def test_stage_groups_and_durations():
    assert [group(s) for s in ("train_image@vae", "evaluate_classifier", "ensemble_text@mix",
                               "report")] == ["images", "images", "text", "other"]
    assert durations([("a", 1.0), ("b", 3.5)], 10.0) == [("a", 2.5), ("b", 6.5)]


def test_times_every_stage_of_a_run(tmp_path, capsysbinary):
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    out = tmp_path / "t"
    assert main(["--out", str(out), "--", sys.executable, str(script), "0"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert list(summary["stages_s"]) == ["download", "train_image@vae", "train_text@lstm_sherlock"]
    assert all(s >= 0.15 for s in summary["stages_s"].values())
    assert set(summary["groups_s"]) == {"other", "images", "text"}
    assert summary["total_s"] >= sum(summary["stages_s"].values())
    assert "`train_text@lstm_sherlock` | text |" in out.with_suffix(".md").read_text()
    assert b"progress 50%" in capsysbinary.readouterr().out  # passed through as it came


def test_a_failed_run_writes_nothing(tmp_path):
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    out = tmp_path / "t"
    assert main(["--out", str(out), "--", sys.executable, str(script), "3"]) == 3
    assert not out.with_suffix(".json").exists() and not out.with_suffix(".md").exists()
