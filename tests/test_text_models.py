"""Invariants of the language models: shapes, initial loss, a step lowers the loss,
carried state equals the whole sequence at once, pretrained embeddings."""

import math

import pytest
import torch
import torch.nn.functional as F

from genmodels.text.registry import build_model, load_checkpoint, save_checkpoint
from genmodels.text.softmax import OutputLayer
from genmodels.text.transformer import TransformerConfig, TransformerLM

V = 50
VOCAB = ["<unk>", "<nl>", "<eos>", *[f"w{i}" for i in range(V - 3)]]

MODELS = {
    "rnn": ("rnn", {"cell": "rnn", "n_embd": 16, "n_hidden": 16, "dropout": 0.0}),
    "lstm": ("rnn", {"cell": "lstm", "n_embd": 16, "n_hidden": 16, "n_layer": 2, "dropout": 0.0}),
    "gru": ("rnn", {"cell": "gru", "n_embd": 16, "n_hidden": 24, "tie_weights": False,
                    "dropout": 0.0}),
    "lstm_adaptive": ("rnn", {"cell": "lstm", "n_embd": 16, "n_hidden": 16, "dropout": 0.0,
                              "cutoffs": [10, 30]}),
    "transformer": ("transformer", {"n_embd": 16, "n_head": 2, "n_layer": 2, "context": 64,
                                    "dropout": 0.0}),
    "transformer_adaptive": ("transformer", {"n_embd": 16, "n_head": 2, "n_layer": 1,
                                             "context": 64, "dropout": 0.0, "cutoffs": [20]}),
}



pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

def make(name, seed=0):
    torch.manual_seed(seed)
    arch, settings = MODELS[name]
    return build_model(arch, settings, VOCAB)


def batch(B=3, T=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (B, T + 1), generator=g)
    return ids[:, :-1], ids[:, 1:]


@pytest.mark.parametrize("name", MODELS)
def test_logits_shape_and_initial_loss(name):
    _, model = make(name)
    model.eval()
    x, y = batch()
    logits, loss, _ = model(x, y)
    assert logits.shape == (3, 12, V)
    # an untrained model is close to uniform: loss near ln V
    assert abs(loss.item() - math.log(V)) < 0.3


@pytest.mark.parametrize("name", MODELS)
def test_one_step_lowers_loss(name):
    _, model = make(name)
    x, y = batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    _, before, _ = model(x, y)
    opt.zero_grad()
    before.backward()
    opt.step()
    _, after, _ = model(x, y)
    assert after.item() < before.item()


@pytest.mark.parametrize("name", MODELS)
def test_carried_state_matches_whole_sequence(name):
    _, model = make(name)
    model.eval()
    x, _ = batch(B=2, T=20)
    whole, _, _ = model(x)
    parts, state = [], None
    for chunk in (x[:, :7], x[:, 7:8], x[:, 8:15], x[:, 15:]):  # windows, then one token at a time
        logits, _, state = model(chunk, state=state)
        parts.append(logits)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-5)
    state, steps = None, []
    for t in range(x.size(1)):
        logits, _, state = model(x[:, t : t + 1], state=state)
        steps.append(logits)
    assert torch.allclose(torch.cat(steps, 1), whole, atol=1e-5)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_recurrent_step_equals_the_layer(name):
    """Generation's one-token path (the cell functions) gives nn.RNN/LSTM/GRU's output and state."""
    _, model = make(name)
    model.eval()
    x = torch.randn(3, 1, model.config.n_embd)
    _, state = model.rnn(torch.randn(3, 4, model.config.n_embd))  # some carried state
    for s in (None, state):
        want_out, want_state = model.rnn(x, s)
        out, new_state = model.step(x, s)
        assert torch.allclose(out, want_out, atol=1e-6)
        if name != "lstm":  # the LSTM's state is (h, c), the others' is h
            new_state, want_state = (new_state,), (want_state,)
        for a, b in zip(new_state, want_state, strict=True):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)


def test_transformer_cache_is_a_fixed_window():
    arch, settings = MODELS["transformer"]
    _, model = build_model(arch, {**settings, "context": 5}, VOCAB)
    model.eval()
    x, _ = batch(B=1, T=12)
    _, _, (pos, caches) = model(x)
    assert pos == 12 and caches[0][0].shape[2] == 5  # (B, nh, context, hs)


def test_adaptive_softmax_is_a_distribution_and_its_loss_matches():
    torch.manual_seed(0)
    head = OutputLayer(8, V, (10, 30))
    h, t = torch.randn(64, 8), torch.randint(0, V, (64,))
    logp = head.full_logits(h)  # (N, V) log-probabilities
    assert torch.allclose(logp.exp().sum(-1), torch.ones(64), atol=1e-5)
    assert torch.allclose(head.loss(h, t), torch.nn.functional.cross_entropy(logp, t), atol=1e-5)


def test_weight_tying_shares_the_matrix():
    _, model = make("lstm")
    assert model.head.weight is model.embed.weight
    _, untied = make("gru")
    assert untied.head.weight is not untied.embed.weight


def test_embedding_dropout_drops_whole_words_at_its_rate():
    """embed_dropout: every occurrence of a word in a batch is dropped together, or kept
    and scaled by 1 / (1 - p); about p of the words are dropped; off in eval mode."""
    torch.manual_seed(0)
    _, model = build_model("rnn", dict(cell="lstm", n_embd=8, n_hidden=8, embed_dropout=0.5),
                           [f"w{i}" for i in range(400)])
    idx = torch.arange(400).repeat(3, 2)  # (3, 800): each word 6 times
    model.train()
    out = model.embedding(idx)  # (3, 800, 8)
    rows = model.embed(idx)
    kept = (out != 0).any(-1)  # (3, 800)
    for word in range(400):
        at = idx == word
        assert kept[at].all() or not kept[at].any()  # one draw per word
    torch.testing.assert_close(out[kept], 2 * rows[kept])
    dropped = 1 - kept[0, :400].float().mean().item()
    assert 0.4 < dropped < 0.6
    model.eval()
    assert torch.equal(model.embedding(idx), rows)


def test_bad_config_names_the_key():
    from genmodels.config import ParamsError

    with pytest.raises(ParamsError, match="tie_weights"):
        build_model("rnn", {"n_embd": 16, "n_hidden": 32}, VOCAB)
    with pytest.raises(ParamsError, match="model.cell"):
        build_model("rnn", {"cell": "bogus"}, VOCAB)
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("mamba", {}, VOCAB)


def test_frozen_glove_embeddings(tmp_path, caplog):
    glove = tmp_path / "vectors.txt"
    glove.write_text("w0 1 2 3 4\nw1 -1 0 0.5 2\nnotinvocab 9 9 9 9\n")
    _, model = build_model(
        "rnn", {"n_embd": 4, "n_hidden": 8, "tie_weights": False, "embeddings": str(glove)}, VOCAB
    )
    assert torch.equal(model.embed.weight[VOCAB.index("w1")], torch.tensor([-1, 0, 0.5, 2.0]))
    assert not model.embed.weight.requires_grad
    assert "have no vector" in caplog.text
    bad = tmp_path / "bad.txt"
    bad.write_text("w0 1 2\n")
    with pytest.raises(ValueError, match="expected 4 numbers"):
        build_model("rnn", {"n_embd": 4, "n_hidden": 8, "tie_weights": False,
                            "embeddings": str(bad)}, VOCAB)


@pytest.mark.parametrize("name", ["lstm", "transformer_adaptive"])
def test_checkpoint_round_trip(tmp_path, name):
    cfg, model = make(name)
    model.eval()
    arch = MODELS[name][0]
    save_checkpoint(tmp_path / "m.pt", model, cfg, arch, VOCAB, newline="paragraph")
    loaded, itos, ckpt = load_checkpoint(tmp_path / "m.pt")
    x, _ = batch()
    assert itos == VOCAB and ckpt["newline"] == "paragraph"
    assert torch.equal(loaded(x)[0], model(x)[0])


def train_tiny_transformer(text: str, **model):
    """A 32-wide Transformer trained by the training loop's step (``window_step``, the
    cache carried) for 10 epochs on ``text``: (model in eval mode, vocabulary, token ids)."""
    from genmodels.data.text import Vocab, tokenize
    from genmodels.text.data import batchify, windows
    from genmodels.text.train import TrainSettings, make_optimizer, window_step

    torch.manual_seed(0)
    tokens = tokenize(text, "line")
    vocab = Vocab.build(tokens)
    ids = torch.tensor(vocab.encode(tokens))
    net = TransformerLM(TransformerConfig(n_embd=32, n_head=2, context=32, dropout=0.0,
                                          vocab_size=len(vocab), **model))
    s = TrainSettings(epochs=1, batch_size=4, bptt=8, lr=3e-3, min_lr=3e-3, warmup=1,
                      weight_decay=0.0, clip=1.0)
    opt = make_optimizer(net, s)
    net.train()
    for _ in range(10):
        carry = None
        for x, y in windows(batchify(ids, 4), s.bptt):
            carry = window_step(net, opt, x, y, carry, s.clip, s.lr)[3]
    return net.eval(), vocab, ids


def test_transformer_trained_with_a_carried_cache_predicts_from_a_cold_start(one_thread):
    """Issue 11: the Transformer carries its key/value cache from window to window in
    training, so without memory dropout every training position saw a full cache, and
    generation, which starts with none, met a context it never trained on (its samples
    were blank lines and punctuation). Trained by the real loop on a repeated verse, the
    model must predict the first tokens of a window from scratch, not only by copying
    from a long cache: here the loss on the first 4 tokens of cold windows was 1.9-2.2
    nats without memory dropout, and is 0.5-0.8 with it."""
    from conftest import VERSE

    model, _, ids = train_tiny_transformer(VERSE * 30, n_layer=1)
    x = ids[64 : 64 + 8 * 20].view(20, 8)  # 20 windows of 8 tokens, each read from scratch
    y = ids[65 : 65 + 8 * 20].view(20, 8)
    with torch.no_grad():
        cold = F.cross_entropy(model(x)[0].transpose(1, 2), y, reduction="none")[:, :4].mean()
    assert cold.item() < 1.2


SPEECHES = """first citizen:
before we proceed any further, hear me speak.

all:
speak, speak.

first citizen:
you are all resolved rather to die than to famish?

all:
resolved. resolved.

"""  # speeches apart by one blank line: <nl> <nl>, never three <nl> in a row


def cold_next(model, nl: int, run: int) -> torch.Tensor:
    """The next-token distribution after ``run`` line breaks read from a cold start (no
    cache), (vocab,)."""
    with torch.no_grad():
        logits, _ = model.next_logits(torch.full((1, run), nl))
    return torch.softmax(logits[0], -1)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * (p - q).abs().sum().item()


@pytest.mark.parametrize("sink", [False, True])
def test_transformer_tells_a_run_of_line_breaks_from_one(one_thread, sink):
    """Issue 11: with rotary positions only, every query over a run of one token averages
    identical values, so from a cold start "<nl>" and "<nl> <nl>" look the same: the
    Shakespeare Transformer gave <nl> 45% after 1 or 12 line breaks, and its unprompted
    samples opened with a dozen blank lines. The attention sink lets it count. Trained on
    speeches one blank line apart, its next-token distributions after 1, 2 and 3 line breaks
    must differ, and after two <nl> a third must be unlikely. Without the sink the three
    are equal (the xfail).

    What it predicts after one <nl> depends on the CPU's rounding. The test used to ask
    P(<nl>) after one line break to exceed P(<nl>) after two by 0.001; on an AVX2-only AMD
    EPYC both were 0.005, since the model read a cold start as the text's first line
    ("first citizen:", 95%), and it failed. So it compares whole distributions (total
    variation 0.35 and 0.13 on that machine, 0.081 and 0.022 on an AVX-512 Zen 4 EPYC), not
    P(<nl>) alone, against 0.01: without the sink they are equal to 1e-6."""
    from genmodels.data.text import NL

    model, vocab, _ = train_tiny_transformer(SPEECHES * 30, n_layer=2, sink=sink)
    nl = vocab.stoi[NL]
    p1, p2, p3 = (cold_next(model, nl, n) for n in (1, 2, 3))
    one_two, two_three = total_variation(p1, p2), total_variation(p2, p3)
    two, three = p2[nl].item(), p3[nl].item()
    print(f"total variation 1-2, 2-3 line breaks: {one_two:.3f} {two_three:.3f}; "
          f"P(<nl>) after 2, 3: {two:.3f} {three:.3f}")
    if not sink:
        assert one_two < 1e-6 and two_three < 1e-6
        pytest.xfail("without a sink a run of <nl> reads as one <nl>")
    assert one_two > 0.01 and two_three > 0.01  # it can tell them apart
    assert two < 0.05 and three < 0.05  # and has learnt that a third line break never comes


@pytest.mark.parametrize("name", ["lstm_adaptive", "transformer"])
def test_model_outputs_scores_the_stream_as_evaluate_stream(name):
    """evaluate_text's one test pass (model_outputs with a StreamScore) gives the metrics
    validation's evaluate_stream gives, and each target's probability behind its loss."""
    from genmodels.text.scoring import StreamScore, evaluate_stream, model_outputs

    _, model = make(name)
    data = torch.randint(0, V, (3, 40), generator=torch.Generator().manual_seed(2))
    score = StreamScore()
    h, p = model_outputs(model, data, bptt=7, score=score)
    assert score.result() == evaluate_stream(model, data, bptt=7)
    assert h.shape[:2] == p.shape == (3, 39)
    assert -p.log().mean().item() == pytest.approx(score.result()["loss"], rel=1e-6)
