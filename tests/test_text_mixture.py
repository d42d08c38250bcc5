"""The ensemble_text mixture as a model that generates: its distribution, its state, the CLI."""

import json

import pytest
import torch

from genmodels.cli import main
from genmodels.text.mixture import MixtureLM
from genmodels.text.registry import build_model, save_checkpoint

VOCAB = ["<unk>", "<nl>", "<eos>", "sherlock", "woke", "up", "and", "saw", "watson", ".", ","]
LSTM = ("rnn", {"cell": "lstm", "n_embd": 8, "n_hidden": 8, "dropout": 0.0})
TRANSFORMER = ("transformer", {"n_embd": 8, "n_head": 2, "n_layer": 1, "context": 16, "dropout": 0.0})

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def model(arch_settings, seed, vocab=VOCAB):
    torch.manual_seed(seed)
    cfg, m = build_model(*arch_settings, vocab)
    return cfg, m.eval()


def test_the_mixture_is_the_weighted_sum_of_its_members_probabilities():
    (_, a), (_, b) = model(LSTM, 0), model(TRANSFORMER, 1)
    mix = MixtureLM([a, b], [0.3, 0.7]).eval()
    idx = torch.tensor([[3, 4, 5, 6], [1, 7, 8, 9]])  # (B, T)
    with torch.no_grad():
        p_mix = mix.next_logits(idx)[0].exp()  # (B, V)
        p_a, p_b = (m.next_logits(idx)[0].float().softmax(-1) for m in (a, b))
        full = mix(idx)[0]  # (B, T, V)
    torch.testing.assert_close(p_mix, 0.3 * p_a + 0.7 * p_b)
    torch.testing.assert_close(p_mix.sum(-1), torch.ones(2))
    torch.testing.assert_close(full[:, -1].exp(), p_mix)  # forward and next_logits agree
    assert mix.prompt_limit == min(a.prompt_limit, b.prompt_limit) == 16  # what both read


def test_a_mixture_of_a_model_with_itself_is_that_model():
    _, a = model(LSTM, 0)
    idx = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        torch.testing.assert_close(MixtureLM([a, a], [0.4, 0.6]).next_logits(idx)[0].exp(),
                                   a.next_logits(idx)[0].softmax(-1))


def test_each_members_state_carries_from_one_call_to_the_next():
    (_, a), (_, b) = model(LSTM, 0), model(TRANSFORMER, 1)
    mix = MixtureLM([a, b], [0.5, 0.5]).eval()
    idx = torch.tensor([[3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        whole = mix.next_logits(idx)[0]
        _, state = mix.next_logits(idx[:, :4])
        parts = mix.next_logits(idx[:, 4:], state)[0]
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)


def test_the_mixture_generates_without_unk_and_deterministically():
    (_, a), (_, b) = model(LSTM, 0), model(TRANSFORMER, 1)
    mix = MixtureLM([a, b], [0.5, 0.5])
    start = torch.ones(8, 1, dtype=torch.long)
    out = [mix.generate(start, 30, 1.0, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert torch.equal(out[0], out[1])
    assert (out[0][:, 1:] != 0).all()  # <unk> (id 0) is never drawn


@pytest.mark.parametrize("weights", [[0.5, 0.6], [1.0, 0.0], [0.5], [float("nan"), 0.5]])
def test_bad_weights_are_refused(weights):
    (_, a), (_, b) = model(LSTM, 0), model(LSTM, 1)
    with pytest.raises(ValueError, match="weight"):
        MixtureLM([a, b], weights)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A pipeline workspace with two trained models of one corpus and their mixture's weights."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "ensemble_text:\n  mix_sherlock:\n    members: [lstm_sherlock, transformer_sherlock]\n")
    (tmp_path / "data/models/text").mkdir(parents=True)
    for name, arch_settings, seed in [("lstm_sherlock", LSTM, 0), ("transformer_sherlock", TRANSFORMER, 1)]:
        cfg, m = model(arch_settings, seed)
        save_checkpoint(tmp_path / f"data/models/text/{name}.pt", m, cfg, arch_settings[0], VOCAB,
                        newline="paragraph", casing={"sherlock": "Sherlock", "watson": "Watson"})
    (tmp_path / "reports/ensemble_text").mkdir(parents=True)
    metrics = {"test": {"weight": {"lstm_sherlock": 0.6, "transformer_sherlock": 0.4}}}
    (tmp_path / "reports/ensemble_text/mix_sherlock.json").write_text(json.dumps(metrics))
    return tmp_path


def test_cli_generates_from_the_mixture_and_echoes_the_prompt_as_typed(workspace, capsys, caplog):
    args = ["generate", "--model", "mix", "--corpus", "sherlock", "--prompt", "holmes saw",
            "--words", "30", "--temperature", "0.7", "--seed", "0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # "holmes" is outside the vocabulary: read as <unk>, with a warning, but shown as typed
    assert out.startswith("Holmes saw") and "<unk>" not in out and "holmes" in caplog.text
    main(args)
    assert capsys.readouterr().out == out  # same seed, same passage


def test_cli_mixture_without_its_weights_says_what_to_run(workspace, capsys):
    (workspace / "reports/ensemble_text/mix_sherlock.json").unlink()
    assert main(["generate", "--model", "mix", "--corpus", "sherlock"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genmodels: error:") and "dvc repro ensemble_text" in err
    assert err.count("\n") == 1


def test_cli_refuses_members_of_different_vocabularies(workspace, capsys):
    cfg, m = model(LSTM, 2, VOCAB + ["holmes"])
    save_checkpoint(workspace / "data/models/text/lstm_sherlock.pt", m, cfg, "rnn", VOCAB + ["holmes"],
                    newline="paragraph")
    assert main(["generate", "--model", "mix", "--corpus", "sherlock"]) == 2
    assert "different vocabularies" in capsys.readouterr().err


def test_cli_refuses_weights_of_other_members(workspace, capsys):
    """params.yaml changed its members after ensemble_text last ran: the weights are stale."""
    metrics = {"test": {"weight": {"rnn_sherlock": 0.5, "transformer_sherlock": 0.5}}}
    (workspace / "reports/ensemble_text/mix_sherlock.json").write_text(json.dumps(metrics))
    assert main(["generate", "--model", "mix", "--corpus", "sherlock"]) == 2
    assert "run `dvc repro ensemble_text` again" in capsys.readouterr().err
