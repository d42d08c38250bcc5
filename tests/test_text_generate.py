"""Generation: validation of the sampling settings, determinism, one step per token, prompts."""

import logging
import math

import pytest
import torch

from genmodels.text.generate import complete, encode_prompt
from genmodels.text.registry import build_model
from genmodels.text.sampling import check_sampling, filter_logits, sample_next

VOCAB = ["<unk>", "<nl>", "<eos>", "the", "king", "is", "dead", ".", ",", "long", "live"]



pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

def lstm(seed=0):
    torch.manual_seed(seed)
    _, model = build_model("rnn", {"cell": "lstm", "n_embd": 8, "n_hidden": 8, "dropout": 0.0}, VOCAB)
    return model.eval()


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(-0.1, 0, 1.0), (math.nan, 0, 1.0), (math.inf, 0, 1.0), ("hot", 0, 1.0),
     (1.0, -1, 1.0), (1.0, 2.5, 1.0), (1.0, 0, 0.0), (1.0, 0, 1.5), (1.0, 0, math.nan)],
)
def test_bad_sampling_settings_raise(temperature, top_k, top_p):
    with pytest.raises(ValueError):
        check_sampling(temperature, top_k, top_p)
    with pytest.raises(ValueError):
        lstm().generate(torch.zeros(1, 1, dtype=torch.long), 3, temperature, top_k, top_p)


def test_good_sampling_settings_pass():
    check_sampling(0, 0, 1.0)
    check_sampling(0.7, 5, 0.9)


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.1)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()


def test_greedy_is_deterministic_and_picks_the_argmax():
    model, start = lstm(), torch.tensor([[3, 4]])
    a = model.generate(start, 10, temperature=0)
    b = model.generate(start, 10, temperature=0, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a, b) and a.shape == (1, 12)
    logits, _, _ = model(start)
    assert a[0, 2].item() == logits[0, -1].argmax().item()


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.5, 0, 1.0), (1.5, 4, 1.0),
                                                       (1.0, 0, 0.8), (0.7, 5, 0.9)])
def test_sampler_draws_softmax_of_the_filtered_logits(temperature, top_k, top_p):
    """Frequencies over 200k rows match softmax(filter(logits / T)); filtered tokens never come."""
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0, -30.0, 1.0, 0.0, 2.5])  # (V,)
    n = 200_000
    ids = sample_next(logits.expand(n, -1), temperature, top_k, top_p,
                      torch.Generator().manual_seed(0))  # (n,)
    want = torch.softmax(filter_logits(logits[None] / temperature, top_k, top_p), -1)[0].double()
    freq = torch.bincount(ids, minlength=logits.numel()).double() / n
    assert torch.equal(freq > 0, want > 1e-9)  # (-30 at T = 0.5 has p ~ 1e-29: never drawn)
    sd = (want * (1 - want) / n).sqrt()
    assert ((freq - want).abs() <= 5 * sd + 1e-12).all(), (freq, want)


def test_sampler_never_draws_a_filtered_first_or_last_token():
    logits = torch.tensor([[-50.0, 1.0, 1.0, -50.0]])  # top_k 2 filters both ends
    ids = sample_next(logits.expand(50_000, -1), 1.0, 2, 1.0, torch.Generator().manual_seed(1))
    assert set(ids.tolist()) == {1, 2}


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_sampler_rejects_nan_and_inf_logits(bad):
    with pytest.raises(ValueError, match="NaN or infinity"):
        sample_next(torch.tensor([[0.0, bad, 1.0]]))


def test_generation_restores_the_thread_count():
    torch.set_num_threads(2)  # (the one_thread fixture puts the caller's count back)
    lstm().generate(torch.zeros(1, 1, dtype=torch.long), 3)  # its steps run on one thread
    assert torch.get_num_threads() == 2


def test_same_seed_same_sample_other_seed_other_sample():
    model, start = lstm(), torch.tensor([[1]])
    gen = lambda s: model.generate(start, 30, 1.0, generator=torch.Generator().manual_seed(s))  # noqa: E731
    assert torch.equal(gen(0), gen(0))
    assert not torch.equal(gen(0), gen(1))


@pytest.mark.parametrize("arch, settings", [
    ("rnn", {"cell": "gru", "n_embd": 8, "n_hidden": 8}),
    ("transformer", {"n_embd": 8, "n_head": 2, "n_layer": 1, "context": 4}),
])
def test_each_new_token_is_one_step(arch, settings):
    _, model = build_model(arch, settings, VOCAB)
    lengths, hidden = [], model.hidden  # record the length of every input the model reads
    model.hidden = lambda idx, state=None: (lengths.append(idx.size(1)), hidden(idx, state))[1]
    model.generate(torch.tensor([[3, 4, 5]]), 8, temperature=1.0)
    assert lengths == [3] + [1] * 7  # the prompt once, then one token a step


def test_prompt_unknown_words_warn_and_empty_prompt_is_unprompted(caplog):
    stoi = {t: i for i, t in enumerate(VOCAB)}
    with caplog.at_level(logging.WARNING):
        ids = encode_prompt("The queen is dead", stoi)
    assert ids == [3, 0, 5, 6] and "queen" in caplog.text
    assert encode_prompt("", stoi) == [stoi["<nl>"]]
    text = complete(lstm(), VOCAB, "", 5, temperature=0)
    assert not text.startswith("\n")
    assert complete(lstm(), VOCAB, "the king", 5, temperature=0).startswith("The king")


def test_generation_never_writes_unk_even_when_the_model_prefers_it():
    """Issue 11: <unk> is scored (the model gives it mass) but never generated, greedy or sampled."""
    from genmodels.text.model import LanguageModel

    class LovesUnk(LanguageModel):
        def forward(self, idx, targets=None, state=None):
            logits = torch.zeros(idx.size(0), idx.size(1), 5)
            logits[..., 0] = 10.0  # <unk> (id 0) holds almost all the mass
            return logits, None, state

        @staticmethod
        def detach_state(state):
            return state

    model = LovesUnk()
    start = torch.ones(4, 1, dtype=torch.long)
    for t in (0, 0.5, 1.0):
        out = model.generate(start, 50, t, generator=torch.Generator().manual_seed(0))
        assert (out[:, 1:] != 0).all()
    assert (model.generate(start, 5, 1.0, banned=())[:, 1:] == 0).any()  # scoring-like: allowed
