"""The ensemble of language models: EM weights, the mixture's metrics, bad inputs."""

import json
import math

import pytest
import torch

from genmodels.checkpoints import CheckpointError
from genmodels.config import ParamsError, from_dict
from genmodels.text.ensemble import (
    EnsembleTextConfig,
    ensemble_metrics,
    mixture,
    mixture_weights,
    read_scores,
)

from conftest import load_stage


def nll(p: torch.Tensor) -> float:
    return -p.log().mean().item()


def test_em_weights_are_the_best_mixture_on_a_grid():
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(2, 500, generator=gen, dtype=torch.float64) * 0.5 + 0.01  # (M, N)
    w = mixture_weights(p)
    assert w.sum().item() == pytest.approx(1.0) and (w >= 0).all()
    grid = min(nll(mixture(p, torch.tensor([a / 1000, 1 - a / 1000], dtype=torch.float64)))
               for a in range(1001))
    assert nll(mixture(p, w)) <= grid + 1e-9


def test_em_gives_all_weight_to_a_model_that_is_always_better():
    p = torch.tensor([[0.5, 0.4, 0.6], [0.1, 0.1, 0.1]], dtype=torch.float64)
    w = mixture_weights(p)
    assert w[0].item() > 0.99


def scores(name, model, val=None, kn=None, cached=True, targets=None):
    """A scores file as evaluate_text writes it, for (1, N) streams."""
    n = model.shape[-1]
    y = targets if targets is not None else torch.arange(n)[None] % 5  # id 0 is <unk>
    val = val if val is not None else model
    kn = kn if kn is not None else torch.full((1, n), 0.05, dtype=torch.float64)
    out = {"format": 1, "name": name, "targets": {"val": y, "test": y},
           "model": {"val": val, "test": model}, "kneser_ney": {"val": kn, "test": kn}}
    if cached:
        out["model_cached"] = {"val": val * 1.1, "test": model * 1.1}
        out["kneser_ney_cached"] = {"val": kn * 1.2, "test": kn * 1.2}
    return out


def two_models(n=200):
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(1, n, generator=gen, dtype=torch.float64) * 0.2 + 0.05
    b = torch.rand(1, n, generator=gen, dtype=torch.float64) * 0.2 + 0.05
    return {"lstm": scores("lstm", a), "transformer": scores("transformer", b)}


def test_the_mixture_beats_both_members_and_compares_with_the_fair_kneser_ney():
    m = ensemble_metrics(two_models())
    members = [m["test/member_ppl/lstm"], m["test/member_ppl/transformer"]]
    assert m["test/ppl"] < min(members)  # independent errors: the mixture gains
    assert m["test/kn_ppl"] == pytest.approx(20.0)
    assert m["test/gain_over_kn"] == pytest.approx(1 - m["test/ppl"] / 20.0)
    assert m["test/weight/lstm"] + m["test/weight/transformer"] == pytest.approx(1.0)
    assert m["cache/kn_ppl"] == pytest.approx(20.0 / 1.2)
    assert m["cache/ppl"] == pytest.approx(m["test/ppl"] / 1.1)
    assert m["test/ppl_known"] != m["test/ppl"]  # <unk> targets left out


def test_three_members_mix_and_a_useless_one_takes_no_weight():
    models = two_models()
    models["rnn"] = scores("rnn", torch.full((1, 200), 0.01, dtype=torch.float64))
    pair, three = ensemble_metrics(two_models()), ensemble_metrics(models)
    weights = [three[f"test/weight/{n}"] for n in models]
    assert sum(weights) == pytest.approx(1.0) and three["test/weight/rnn"] < 1e-3
    assert three["test/ppl"] == pytest.approx(pair["test/ppl"], rel=1e-3)
    assert three["test/member_ppl/rnn"] == pytest.approx(100.0)


def test_weights_come_from_validation_not_test():
    models = two_models()
    good_val = torch.full_like(models["lstm"]["model"]["val"], 0.9)
    models["lstm"] = scores("lstm", models["lstm"]["model"]["test"], val=good_val)
    m = ensemble_metrics(models)
    assert m["test/weight/lstm"] > 0.99  # test probabilities did not choose the weights


def test_no_cache_columns_when_a_member_has_no_cache():
    models = two_models()
    models["lstm"] = scores("lstm", models["lstm"]["model"]["test"], cached=False)
    m = ensemble_metrics(models)
    assert "test/ppl" in m and not any(k.startswith("cache/") for k in m)


def test_members_of_different_text_or_baselines_are_refused():
    models = two_models()
    other = scores("transformer", models["transformer"]["model"]["test"],
                   targets=torch.arange(200)[None] % 7)
    with pytest.raises(ValueError, match="different val text"):
        ensemble_metrics({"lstm": models["lstm"], "transformer": other})
    other = scores("transformer", models["transformer"]["model"]["test"],
                   kn=torch.full((1, 200), 0.07, dtype=torch.float64))
    with pytest.raises(ValueError, match="different Kneser-Ney baselines"):
        ensemble_metrics({"lstm": models["lstm"], "transformer": other})


@pytest.mark.parametrize("members, message", [
    (["a", "a"], "different models, got 'a' twice"),
    (["a", "b", "a"], "different models, got 'a' twice"),
    (["a"], "two or more models, got 1"),
    ([], "two or more models, got 0"),
])
def test_config_wants_two_or_more_different_members(members, message):
    with pytest.raises(ParamsError, match=message):
        from_dict(EnsembleTextConfig, {"members": members}, "ensemble_text.mix")
    three = from_dict(EnsembleTextConfig, {"members": ["a", "b", "c"]}, "ensemble_text.mix")
    assert three.members == ("a", "b", "c")


def test_read_scores_refuses_another_models_file(tmp_path):
    torch.save(two_models()["lstm"], tmp_path / "transformer.pt")
    with pytest.raises(CheckpointError, match="the scores of 'lstm', not of 'transformer'"):
        read_scores(tmp_path / "transformer.pt", "transformer")
    torch.save({"state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="expected per-token probabilities"):
        read_scores(tmp_path / "x.pt", "x")


def test_stage_writes_metrics_and_fails_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for name, s in two_models().items():
        torch.save(s, tmp_path / f"{name}.pt")
    torch.save(scores("rnn", torch.full((1, 200), 0.1, dtype=torch.float64)), tmp_path / "rnn.pt")
    params = tmp_path / "params.yaml"
    params.write_text("ensemble_text:\n  mix: {members: [lstm, transformer]}\n"
                      "  three: {members: [lstm, transformer, rnn]}\n"
                      "  bad: {members: [lstm, missing]}\n")
    out = tmp_path / "reports" / "mix.json"
    argv = ["--scores", str(tmp_path), "--params", str(params)]
    stage = load_stage("ensemble_text")
    assert stage.main(["--name", "mix", "--metrics", str(out), *argv]) == 0
    metrics = json.loads(out.read_text())
    assert math.isfinite(metrics["test"]["ppl"]) and "lstm" in metrics["test"]["weight"]
    three = tmp_path / "reports" / "three.json"
    assert stage.main(["--name", "three", "--metrics", str(three), *argv]) == 0
    weights = json.loads(three.read_text())["test"]["weight"]
    assert set(weights) == {"lstm", "transformer", "rnn"} and sum(weights.values()) == pytest.approx(1)
    bad = tmp_path / "reports" / "bad.json"
    assert stage.main(["--name", "bad", "--metrics", str(bad), *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt: no such file" in err[0] and not bad.exists()
