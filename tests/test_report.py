"""reports/README.md from fake stage outputs: every row present, every link resolves."""

import json
import re

import torch

from genmodels.report import ReportConfig, Sources, render


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fake_outputs(root):
    r = root / "reports"
    for name, nelbo in (("ae", None), ("vae", 250.0)):
        tree = {"test": {"recon_mse": 0.01}, "samples": {"fid": 12.5}, "floor": {"fid": 0.5}}
        if nelbo:
            tree["test"]["nelbo"] = nelbo
        write(r / "evaluate_image" / f"{name}.json", json.dumps(tree))
        for fig in ("reconstructions", "loss_curves"):
            write(r / "render_image" / name / f"{fig}.png", "png")
    (root / "models" / "image").mkdir(parents=True)
    torch.save({"run_id": "abc123"}, root / "models" / "image" / "vae.pt")
    write(r / "evaluate_text" / "lstm_toy" / "metrics.json", json.dumps(
        {"test": {"ppl": 100.0}, "kneser_ney": {"ppl": 150.0}, "unigram": {"ppl": 600.0},
         "samples": {"distinct_1": 0.4}}))
    write(r / "render_text" / "lstm_toy" / "loss_curves.png", "png")
    write(r / "render_text" / "lstm_toy" / "samples_t0.5.txt",
          "# header\n\n## prompt: 'x'\n\nx y\n\n## unprompted\n\nthe game is afoot .\n")
    write(r / "cities" / "metrics.json", json.dumps(
        {"heldout": {"events": 18, "loglik_mixture": 3.6, "loglik_gaussian": 0.35}}))
    write(r / "cities" / "map.png", "png")
    write(r / "cities" / "proposals.csv", "city,country\nGroningen,NL\n")
    return Sources(r / "evaluate_image", r / "render_image", r / "evaluate_text",
                   r / "render_text", r / "cities", root / "models", r / "README.md",
                   image_models=["ae", "vae"], text_models={"lstm_toy": "toy"})


def test_report_has_every_row_and_resolvable_links(tmp_path):
    src = fake_outputs(tmp_path)
    page = render(src, ReportConfig())
    for row in ("| `ae` |", "| `vae` |", "| train vs test (floor) |", "| `lstm_toy` | toy |",
                "| Kneser-Ney n-gram | toy |", "| unigram | toy |"):
        assert row in page, row
    assert "| `vae` | 0.01 | 250 | 12.5 |" in page  # values read from the files
    assert "| train vs test (floor) | – | – | 0.5 |" in page
    assert "MLflow run: `abc123`" in page
    assert "the game is afoot ." in page and "Groningen (NL)" in page
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert len(links) == 2 * 2 + 1 + 1
    for link in links:
        assert (src.out.parent / link).is_file(), link


def test_missing_results_leave_gaps_not_errors(tmp_path):
    r = tmp_path / "reports"
    src = Sources(r / "a", r / "b", r / "c", r / "d", r / "e", tmp_path / "m", r / "README.md",
                  image_models=["ae"], text_models={"lstm": "toy"})
    page = render(src, ReportConfig())
    assert "| `ae` |" in page and "| `lstm` | toy |" in page
