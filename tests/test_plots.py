"""`dvc plots show` on the tiny pipeline: the overlays and the confusion matrix, drawn by a
page that needs no network (the project's template, .dvc/plots/offline.html)."""

import csv
import json
import re
import shutil
import subprocess

import pytest
import torch

from conftest import run_dvc

pytestmark = pytest.mark.e2e


def test_confusion_csv_has_a_row_per_test_image(tiny_pipeline):
    rows = list(csv.DictReader((tiny_pipeline / "reports/evaluate_classifier/confusion.csv").open()))
    test = torch.load(tiny_pipeline / "data/prepared/fashion-mnist/test.pt", weights_only=True)
    assert len(rows) == len(test["labels"]) and set(rows[0]) == {"actual", "predicted"}
    assert "Ankle boot" in {r["actual"] for r in rows}  # class names, not label numbers


def test_plots_page_is_offline_and_draws_every_overlay(tiny_pipeline, tmp_path):
    shown = json.loads(run_dvc(tiny_pipeline, "plots", "show", "--json", check=False).stdout)
    for name in ("Language models, validation perplexity per epoch",
                 "Image models, validation loss per epoch", "Classifier, test-set confusion matrix"):
        assert shown["data"][name], name  # tiny params train fewer models: the rest are errors
    run_dvc(tiny_pipeline, "plots", "show", "-o", str(tmp_path / "plots"), check=False)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert not re.search(r"<script[^>]+src=", page) and "vegaEmbed" in page
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium to render the page in")
    png = tmp_path / "page.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--proxy-server=127.0.0.1:9",  # offline
                    "--virtual-time-budget=5000", f"--screenshot={png}",
                    "--window-size=1200,1600", (tmp_path / "plots" / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    gray = Image.open(png).convert("L")
    dark = sum(gray.histogram()[:200])  # pixels darker than the page's white
    assert dark > 10_000, "blank page: the scripts did not run"
