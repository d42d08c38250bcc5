"""reports/README.md from fake stage outputs: every row present, every link resolves."""

import json
import re

import torch

from genmodels.report import ReportConfig, Sources, passage, render


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# render_text's format: a header, then prompted and unprompted blocks; the prompt is a repr.
SAMPLES = """# lstm data/models/text/lstm_toy.pt, temperature 0.5, 120 tokens a sample

## prompt: '"my dear watson," said he'

"My dear watson," said he. "The game is afoot."

"Come at once."



## prompt: 'x'

x y

## unprompted

the end .
"""


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
    torch.save({"state_dict": {}}, root / "models" / "image" / "vae.pt")
    stats = {"nl_share": 0.1, "punct_share": 0.2, "unk_share": 0.05, "distinct_2": 0.8,
             "repetition_4": 0.01}
    write(r / "evaluate_text" / "lstm_toy" / "metrics.json", json.dumps(
        {"test": {"ppl": 100.0, "ppl_known": 80.0, "acc": 0.25, "gain_over_kn": 0.3333,
                  "unk_share": 0.04},
         "kneser_ney": {"ppl": 150.0, "ppl_known": 120.0, "acc": 0.2},
         "unigram": {"ppl": 600.0, "ppl_known": 500.0, "acc": 0.05},
         "cache": {"ppl": 70.0, "kn_ppl": 140.0, "gain_over_kn": 0.5},
         "samples": {"t0_5": {**stats, "nl_punct_ratio": 0.5}, "t1": {**stats, "nl_share": 0.3}},
         "heldout": {**stats, "nl_share": 0.15}}))
    write(r / "render_text" / "lstm_toy" / "loss_curves.png", "png")
    write(r / "render_text" / "lstm_toy" / "samples_t0.5.txt", SAMPLES)
    write(r / "cities" / "metrics.json", json.dumps(
        {"heldout": {"events": 18, "loglik_mixture": 3.6, "loglik_gaussian": 0.35}}))
    write(r / "cities" / "map.png", "png")
    write(r / "cities" / "proposals.csv", "city,country\nGroningen,NL\n")
    return Sources(r / "evaluate_image", r / "render_image", r / "evaluate_text",
                   r / "render_text", r / "cities", root / "models", r / "README.md",
                   image_models=["ae", "vae"], text_models={"lstm_toy": "toy"})


def test_report_has_every_row_and_resolvable_links(tmp_path, monkeypatch):
    from genmodels.tracking import start_run, tag_checkpoint

    src = fake_outputs(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    with start_run("train_image@vae", {}) as run:  # the run that trained vae.pt, by its hash
        tag_checkpoint(run.run_id, tmp_path / "models" / "image" / "vae.pt")
    page = render(src, ReportConfig())
    for row in ("| `ae` |", "| `vae` |", "| train vs test (floor) |"):
        assert row in page, row
    assert "| `vae` | 0.01 | 250 | 12.5 |" in page  # values read from the files
    assert "| train vs test (floor) | – | – | 0.5 |" in page
    assert f"MLflow run: `{run.run_id}`" in page
    assert "Groningen (NL)" in page
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert len(links) == 2 * 2 + 1 + 1
    for link in links:
        assert (src.out.parent / link).is_file(), link


def test_text_tables_show_fair_baselines_known_ppl_and_heldout_text(tmp_path):
    src = fake_outputs(tmp_path)
    src.ngram_order = 3
    page = render(src, ReportConfig())
    assert ("| model | test ppl | ppl on known-word targets | top-1 acc | gain over KN | "
            "with cache: test ppl | with cache: gain over KN with cache |") in page
    assert "| `lstm_toy` | 100 | 80 | 0.25 | 0.3333 | 70 | 0.5 |" in page
    assert "| Kneser-Ney (order 3, same `<unk>` treatment) | 150 | 120 | 0.2 | 0 | 140 | 0 |" in page
    assert "| unigram (same `<unk>` treatment) | 600 | 500 | 0.05 | -3 | – | – |" in page  # 1 - 600/150
    assert "`<unk>` share of the test targets: 0.04." in page
    assert "| `lstm_toy` | T=0.5 | 0.1 | 0.2 | 0.05 | 0.5 | 0.8 | 0.01 |" in page
    assert "| `lstm_toy` | T=1.0 | 0.3 | 0.2 | 0.05 | – | 0.8 | 0.01 |" in page
    assert "| held-out text | – | 0.15 | 0.2 | 0.05 | 1 | 0.8 | 0.01 |" in page


def test_quoted_sample_is_whole_with_its_prompt(tmp_path):
    src = fake_outputs(tmp_path)
    page = render(src, ReportConfig())
    quoted = page.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert 'Prompt: “"my dear watson," said he”' in page
    assert quoted == '"My dear watson," said he. "The game is afoot."\n\n"Come at once."'
    assert not any(line.startswith(("## ", "# ")) for line in quoted.splitlines())
    long = "# h\n\n## unprompted\n\n" + "a line of words .\n" * 10 + "word " * 50 + "\n"
    write(tmp_path / "long" / "samples_t0.5.txt", long)
    assert passage(tmp_path / "long", 0.5, 100) == (None, "a line of words .\n" * 5 + "…")
    assert passage(tmp_path / "long", 0.5, 1000)[1].endswith("word")  # whole
    cut = '# h\n\n## unprompted\n\n"Yes, sir."\n\n"\n'  # the budget ran out after an opening quote
    write(tmp_path / "cut" / "samples_t0.5.txt", cut)
    assert passage(tmp_path / "cut", 0.5, 1000) == (None, '"Yes, sir."')
    page = render(src, ReportConfig(temperature=1.0))  # no samples_t1.txt: no quote, no error
    assert "```text" not in page
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert len(links) == 2 * 2 + 1 + 1
    for link in links:
        assert (src.out.parent / link).is_file(), link


def test_missing_results_leave_gaps_not_errors(tmp_path):
    r = tmp_path / "reports"
    src = Sources(r / "a", r / "b", r / "c", r / "d", r / "e", tmp_path / "m", r / "README.md",
                  image_models=["ae"], text_models={"lstm": "toy"})
    page = render(src, ReportConfig())
    assert "| `ae` |" in page and "| `lstm` | – | – | – | – |" in page
    assert "| Kneser-Ney (same `<unk>` treatment) | – | – | – | – |" in page
    assert "| held-out text | – | – | – | – | – | – | – |" in page


def test_report_names_the_experiment_and_commit(tmp_path, monkeypatch):
    src = fake_outputs(tmp_path)
    monkeypatch.setattr("genmodels.report.git_commit", lambda: "0123abc")
    monkeypatch.setenv("DVC_EXP_NAME", "lusty-bass")
    assert "Made by DVC experiment `lusty-bass` from git commit `0123abc`." in render(
        src, ReportConfig())
    monkeypatch.delenv("DVC_EXP_NAME")
    assert "Made by the workspace (not a DVC experiment)" in render(src, ReportConfig())


def test_inception_scores_of_another_checkpoint_show_as_out_of_date(tmp_path):
    """The opt-in scores are not a dep of the report: after a model is retrained, its old
    score must not sit beside its new pictures. inception/dvc.lock names the checkpoint each
    score came from; a score from another checkpoint loses its numbers and says why."""
    import hashlib

    from genmodels.report import inception_table

    scores = tmp_path / "reports/inception"
    for name, fid in (("ae", 148.6), ("vae", 152.4)):
        write(scores / f"{name}.json", json.dumps({"inception": {
            "fid": fid, "kid": 0.08, "n_samples": 10000, "wall_s": 900.0}}))
    models = tmp_path / "data/models"
    ae = write(models / "image/ae.pt", "ae weights")
    write(models / "image/vae.pt", "vae weights, retrained since")
    lock = write(tmp_path / "inception/dvc.lock", json.dumps({"stages": {
        f"inception_fid@{n}": {"deps": [{"path": f"data/models/image/{n}.pt", "md5": md5}]}
        for n, md5 in (("ae", hashlib.md5(ae.read_bytes()).hexdigest()),
                       ("vae", hashlib.md5(b"vae weights").hexdigest()))}}))  # JSON is YAML

    page = "\n".join(inception_table(scores, ["ae", "vae"], models, lock))
    assert "| `ae` | 148.6 |" in page
    assert "| `vae` | out of date | out of date |" in page and "152.4" not in page
    assert "Out of date: the scores of `vae`" in page
    # no lock at all (scores copied from elsewhere): every score is out of date
    page = "\n".join(inception_table(scores, ["ae", "vae"], models, tmp_path / "missing.lock"))
    assert "148.6" not in page and "152.4" not in page


def test_each_image_model_says_what_its_samples_decode(tmp_path):
    src = fake_outputs(tmp_path)
    src.image_priors = {"ae": ("ae", 1, 10_000), "vae": ("vae", 20, 20_000)}
    page = render(src, ReportConfig())
    ae, vae = page.split("### `vae`")
    assert "one Gaussian fitted to the codes of 10,000 training images: the AE has no prior" in ae
    assert ("a 20-component Gaussian mixture fitted to the codes of 20,000 training images "
            "(one posterior draw each) after training, not from the N(0, I) prior") in vae
    src.image_priors = {"vae": ("vae", 0, 10_000)}
    assert "Samples decode draws from the model's prior, N(0, I)." in render(src, ReportConfig())
