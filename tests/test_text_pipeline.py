"""The text stages end to end: the pure functions on a tiny fake corpus, and `dvc repro`
of train_text, evaluate_text and render_text on a copy of the project."""

import json
import math

import pytest
import torch
import yaml

from genmodels.data.text import Vocab, tokenize
from genmodels.text.data import replace_rare
from genmodels.text.ensemble import read_scores
from genmodels.text.evaluate import EvaluateTextConfig, evaluate, sample_metrics
from genmodels.text.render import RenderTextConfig, plot_losses, render_samples
from genmodels.text.train import TrainTextConfig, train

from conftest import VERSE

TINY_TRAIN = dict(epochs=2, batch_size=4, bptt=8, lr=3e-3, min_lr=3e-4, warmup=2,
                  weight_decay=0.01, clip=0.5, patience=2, eval_batch_size=2, seed=0, limit_batches=3,
                  unk_alpha=0.5)
TINY_MODELS = {
    "lstm_shakespeare": dict(corpus="shakespeare", arch="rnn", train=TINY_TRAIN, model=dict(
        cell="lstm", n_embd=16, n_hidden=16, n_layer=1, dropout=0.1, tie_weights=True,
        cutoffs=[20])),
    "transformer_sherlock": dict(corpus="sherlock", arch="transformer", train=TINY_TRAIN,
                                 model=dict(n_embd=16, n_head=2, n_layer=1, context=16,
                                            dropout=0.1, tie_weights=True, cutoffs=[])),
}
TINY_EVALUATE = dict(batch_size=2, bptt=8, ngram_order=3, samples=3, sample_tokens=12,
                     temperatures=[0.5, 1.0], top_k=0, top_p=1.0, seed=0, max_tokens=200,
                     cache_sizes=[5, 20], cache_thetas=[0.1, 1.0], cache_lambdas=[0.1, 0.3])
TINY_RENDER = dict(temperatures=[0.2, 1.0], tokens=10, unprompted=1, top_k=0, top_p=1.0, seed=0,
                   prompts={"shakespeare": ["first citizen"], "sherlock": ["holmes said"]})


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for this module's training runs (each run logs and registers its
    model, as the stage does)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def corpus(tmp_path, store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)  # MLflow artifacts land under tmp_path/mlruns
    """A prepared-corpus folder made from a few lines."""
    tokens = tokenize(VERSE * 12, "line")
    vocab = Vocab(Vocab.build(tokens).itos, casing={"citizen": "Citizen"})  # VERSE is lowercase
    folder = tmp_path / "prepared"
    vocab.save(folder / "vocab.json")
    ids = torch.tensor(vocab.encode(tokens))
    a, b = int(len(ids) * 0.7), int(len(ids) * 0.85)
    for split, part in (("train", ids[:a]), ("val", ids[a:b]), ("test", ids[b:])):
        torch.save({"ids": part}, folder / f"{split}.pt")
    return folder


def test_stage_functions_run_on_a_tiny_corpus(corpus, tmp_path):
    for name, params in TINY_MODELS.items():
        cfg = TrainTextConfig(**params)
        ckpt = tmp_path / f"{name}.pt"
        plots = tmp_path / f"{name}.csv"
        best = train(cfg, corpus, ckpt, tmp_path / f"{name}.json", plots,
                     stage=f"train_text@{name}")
        assert best["best/epoch"] in (1, 2)
        saved = torch.load(ckpt, weights_only=True)
        assert {"state_dict", "config", "arch", "vocab"} <= set(saved)
        assert saved["casing"] == {"citizen": "Citizen"}  # the vocabulary's display forms
        logged = plots.read_text().splitlines()[0].split(",")  # the DVC plots file's columns
        assert {"step", "train/loss", "train/ppl", "val/loss", "val/ppl", "val/acc", "val/top5",
                "lr"} <= set(logged)
        assert not any(c.endswith("_per_s") for c in logged)  # speeds go to MLflow only
        assert ("train/acc" in logged) == (name == "transformer_sherlock")  # full softmax only
        metrics, samples, scores = evaluate(EvaluateTextConfig(**TINY_EVALUATE), ckpt, corpus, name)
        stats = ("nl_share", "punct_share", "unk_share", "distinct_1", "distinct_2", "repetition_4",
                 "novelty_4", "mean_length")
        for key in ("test/ppl", "test/acc", "test/top5", "test/ppl_known", "test/unk_share",
                    "unigram/ppl", "kneser_ney/ppl", "kneser_ney/ppl_known", "kneser_ney/top5",
                    "samples/t0_5/nl_punct_ratio", "samples/t1/nl_punct_ratio",
                    "cache/ppl", "cache/ppl_known", "cache/kn_ppl", "cache/gain_over_kn",
                    *(f"{p}/{k}" for p in ("samples/t0_5", "samples/t1", "heldout") for k in stats)):
            assert key in metrics, key
        assert metrics["kneser_ney/ppl"] < metrics["unigram/ppl"]
        assert metrics["cache/size"] in TINY_EVALUATE["cache_sizes"]
        assert metrics["cache/lambda"] in TINY_EVALUATE["cache_lambdas"]
        assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("cache/"))
        assert metrics["test/unk_share"] == metrics["kneser_ney/unk_share"]  # the same targets
        assert set(samples) == {"t0_5", "t1"} and all(len(s) == 3 for s in samples.values())
        # the per-token scores an ensemble mixes reproduce the metrics they come with
        assert scores["name"] == name and scores["targets"]["test"].shape == scores["model"]["test"].shape
        torch.save(scores, tmp_path / f"{name}_scores.pt")  # what ensemble_text reads back
        assert read_scores(tmp_path / f"{name}_scores.pt", name)["targets"]["val"].numel() > 0
        for key, metric in (("model", "test/ppl"), ("kneser_ney", "kneser_ney/ppl"),
                            ("model_cached", "cache/ppl"), ("kneser_ney_cached", "cache/kn_ppl")):
            ppl = math.exp(-scores[key]["test"].log().mean().item())
            assert ppl == pytest.approx(metrics[metric], rel=1e-4), key
        assert not any("<unk>" in s for ss in samples.values() for s in ss)
        paths = render_samples(RenderTextConfig(**TINY_RENDER), ckpt, ["first citizen"],
                               tmp_path / name)
        assert [p.name for p in paths] == ["samples_t0.2.txt", "samples_t1.txt"]
        assert "## prompt: 'first citizen'\n\nFirst Citizen" in paths[0].read_text()  # cased
        assert plot_losses(tmp_path / f"{name}.csv", tmp_path / name / "loss.png").stat().st_size


def test_training_is_deterministic_for_a_seed(corpus, tmp_path):
    cfg = TrainTextConfig(**TINY_MODELS["lstm_shakespeare"])
    states = []
    for i in range(2):
        train(cfg, corpus, tmp_path / f"m{i}.pt", stage="train_text@lstm_shakespeare")
        states.append(torch.load(tmp_path / f"m{i}.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_replace_rare_drops_rare_words_to_unk_at_the_expected_rate():
    counts = torch.tensor([0, 1, 1000])  # <unk>, a word seen once, a frequent word
    ids = torch.tensor([1, 2] * 20_000)
    gen = torch.Generator().manual_seed(0)
    out = replace_rare(ids, counts, 1.0, 0, gen)
    once, often = out[0::2], out[1::2]
    assert (once == 0).float().mean() == pytest.approx(1 / 2, abs=0.01)  # 1 / (1 + 1)
    assert (often == 0).float().mean() == pytest.approx(1 / 1001, abs=0.001)
    assert set(out.tolist()) <= {0, 1, 2} and torch.equal(out[out != 0], ids[out != 0])
    again = replace_rare(ids, counts, 1.0, 0, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded
    assert replace_rare(ids, counts, 0.0, 0, gen) is ids  # off


def test_sample_metrics_on_known_samples():
    itos = ["<unk>", "<nl>", ".", "a", "b", "c", "d"]
    m = sample_metrics([[1, 2, 3, 4, 1, 2, 3, 4], [5, 6]], train_ids=[1, 2, 3, 4], itos=itos)
    assert m["nl_share"] == pytest.approx(2 / 10) and m["punct_share"] == pytest.approx(2 / 10)
    assert m["unk_share"] == 0
    assert m["distinct_1"] == pytest.approx(6 / 10)
    assert m["repetition_4"] == pytest.approx(1 - 4 / 5)  # 5 4-grams, 4 distinct
    assert m["novelty_4"] == pytest.approx(3 / 5)  # only (1, 2, 3, 4) is in the training text
    assert m["mean_length"] == 5


@pytest.mark.e2e
def test_dvc_repro_ran_the_text_stages(tiny_pipeline):
    project = tiny_pipeline  # the whole pipeline ran once with tests/tiny_params.yaml
    params = yaml.safe_load((project / "params.yaml").read_text())
    for name in params["train_text"]:
        metrics = json.loads((project / f"reports/evaluate_text/{name}/metrics.json").read_text())
        assert {"test", "unigram", "kneser_ney", "cache", "samples", "heldout"} <= set(metrics)
        samples = (project / f"reports/evaluate_text/{name}/samples.txt").read_text()
        assert "## t0_5" in samples and "<unk>" not in samples
        for txt in (project / "reports/render_text" / name).glob("*.txt"):
            assert "<unk>" not in txt.read_text()
        rendered = {p.name for p in (project / "reports/render_text" / name).iterdir()}
        assert rendered == {"samples_t0.2.txt", "samples_t0.5.txt", "samples_t1.txt", "loss.png"}


def test_fair_baselines_see_unk_in_training():
    """Issue 11: the count baselines get the model's word dropout, so they learn how likely
    a new word is instead of paying ~15 nats for each one."""
    from genmodels.text.evaluate import fair_baselines

    train_ids = torch.tensor([3, 4, 5, 6, 7, 8, 9, 3, 4] * 50)  # words 5..9 are rarer
    plain = fair_baselines(train_ids, 10, 3, unk_alpha=0.0, seed=0)["kneser_ney"]
    fair = fair_baselines(train_ids, 10, 3, unk_alpha=1.0, seed=0)["kneser_ney"]
    history = [3, 4]
    assert fair.distribution(history)[0] > 10 * plain.distribution(history)[0]  # P(<unk> | 3 4)
    assert fair.distribution(history).sum() == pytest.approx(1.0)


def test_heldout_passages_start_after_a_line_break():
    from genmodels.text.evaluate import heldout_passages

    itos = ["<unk>", "<nl>", "<eos>", "a", "b"]
    ids = [3, 4, 1, 3, 3, 1, 4, 4, 1, 3, 4, 2, 3]
    passages = heldout_passages(ids, itos, n=2, length=3)
    assert passages == [[3, 3, 1], [3, 4]]  # after the first and the last <nl>; cut at <eos>


def test_auto_precision_is_bf16_only_where_the_hardware_does_bf16(monkeypatch):
    from genmodels.precision import uses_bf16

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert uses_bf16("bf16", cuda) and not uses_bf16("fp32", cuda)
    assert uses_bf16("auto", cuda) and not uses_bf16("auto", torch.device("mps"))
    for avx512_bf16, amx in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert uses_bf16("auto", cpu) == (avx512_bf16 or amx)  # emulated bf16 is slower
        assert not uses_bf16("fp32", cpu)
        if avx512_bf16 or amx:
            assert uses_bf16("bf16", cpu)
        else:  # emulated: 10x slower, and no LSTM kernel; refused before training starts
            with pytest.raises(ValueError, match=r"^precision: bf16 needs a CPU with bf16"):
                uses_bf16("bf16", cpu)


BF16_MODELS = {  # the default recipes' switches, small
    "rnn": ("rnn", dict(cell="rnn", n_embd=32, n_hidden=32, dropout=0.3, cutoffs=[40, 80])),
    "lstm": ("rnn", dict(cell="lstm", n_embd=32, n_hidden=32, dropout=0.4, locked_dropout=True,
                         embed_dropout=0.1, weight_drop=0.3, cutoffs=[40, 80])),
    "transformer": ("transformer", dict(n_embd=32, n_head=2, n_layer=2, context=16, dropout=0.3,
                                        sink=True, cutoffs=[40, 80])),
}


@pytest.mark.parametrize("name", list(BF16_MODELS))
def test_a_bf16_training_step_matches_fp32_on_every_architecture(name):
    """Training in bf16 autocast on the CPU: speed.py's oneDNN linear takes fp32 only, so
    under autocast the Transformer's step failed with a dtype error. Each architecture's
    step must run, give fp32's loss to within bf16's precision, and leave fp32 weights.
    Only where the CPU does bf16 products: elsewhere ``precision: bf16`` is refused, and
    oneDNN has no bf16 LSTM (it failed here on an AVX2-only AMD EPYC)."""
    from genmodels.precision import bf16_hardware
    from genmodels.text.registry import build_model

    if not bf16_hardware(torch.device("cpu")):
        pytest.skip("this CPU has no bf16 products: precision: bf16 is refused here")
    from genmodels.text.train import TrainSettings, make_optimizer, window_step

    arch, settings = BF16_MODELS[name]
    vocab = ["<unk>", "<nl>", *(f"w{i}" for i in range(118))]
    losses, models = {}, {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = build_model(arch, settings, vocab)[1].train()
        opt = make_optimizer(model, TrainSettings())
        torch.manual_seed(1)  # the same data and dropout masks in both precisions
        x = torch.randint(0, len(vocab), (4, 13))
        losses[bf16] = window_step(model, opt, x[:, :-1], x[:, 1:], None, 0.5, 1e-3, bf16)[1]
        models[bf16] = model
    assert losses[True].item() == pytest.approx(losses[False].item(), rel=0.01)
    assert losses[True].item() != losses[False].item()  # bf16 did run
    assert all(p.dtype == torch.float32 and p.isfinite().all() for p in models[True].parameters())
