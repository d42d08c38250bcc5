"""Issue 15, deliverable 2: generation is bounded in time and memory.

A prompt is cut to what the model reads (``prompt_limit``) with a one-line notice, read
in chunks, and only the last position goes through the output layer; the CLI prints
each token as it is drawn; peak memory stays flat in the prompt's length and in --words.
"""

import itertools
import logging
import subprocess
import sys

import pytest
import torch

from genmodels.cli import main
from genmodels.text.generate import complete
from genmodels.text.model import LanguageModel
from genmodels.text.registry import build_model, save_checkpoint
from genmodels.text.sampling import READ_CHUNK

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# 1,000 three-letter words ("aaa" .. "jjj") after the special tokens
WORDS = ["".join(w) for w in itertools.product("abcdefghij", repeat=3)]
VOCAB = ["<unk>", "<nl>", "<eos>", ".", ",", *WORDS]
LSTM = ("rnn", {"cell": "lstm", "n_embd": 16, "n_hidden": 16, "cutoffs": [100, 500]})
TRANSFORMER = ("transformer", {"n_embd": 16, "n_head": 2, "n_layer": 2, "context": 16,
                               "cutoffs": [100, 500]})


def model_of(arch, settings, vocab=VOCAB):
    torch.manual_seed(0)
    return build_model(arch, settings, vocab)[1].eval()


def prompt_ids(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, len(VOCAB), (1, n), generator=torch.Generator().manual_seed(seed))


def prompt_text(n: int, seed: int = 0) -> str:
    return " ".join(VOCAB[i] for i in prompt_ids(n, seed)[0].tolist())


@pytest.mark.parametrize("arch, settings, limit", [(*LSTM, 1024), (*TRANSFORMER, 16)])
def test_a_long_prompt_is_cut_to_its_last_tokens_with_a_notice(arch, settings, limit, caplog):
    model, idx = model_of(arch, settings), prompt_ids(1500)
    assert model.prompt_limit == limit  # the Transformer: its context, the cache's size
    with caplog.at_level(logging.WARNING):
        out = model.generate(idx, 5, 1.0, generator=torch.Generator().manual_seed(0))
    notices = [r.getMessage() for r in caplog.records]
    assert notices == [f"prompt of 1500 tokens cut to its last {limit}: the model reads no further back"]
    assert torch.equal(out[:, :limit], idx[:, -limit:]) and out.shape == (1, limit + 5)
    alone = model.generate(idx[:, -limit:], 5, 1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, alone)  # the tokens cut made no difference


@pytest.mark.parametrize("arch, settings", [LSTM, TRANSFORMER])
def test_the_prompt_is_read_in_chunks_and_only_its_last_position_is_scored(arch, settings):
    model = model_of(arch, settings)
    lengths, hidden = [], model.hidden
    model.hidden = lambda idx, state=None: (lengths.append(idx.size(1)), hidden(idx, state))[1]
    scored, full_logits = [], model.head.full_logits
    model.head.full_logits = lambda h: (scored.append(tuple(h.shape)), full_logits(h))[1]
    model.generate(prompt_ids(900), 3, 1.0)
    n = min(900, model.prompt_limit)
    assert lengths == [min(READ_CHUNK, n - i) for i in range(0, n, READ_CHUNK)] + [1, 1]
    assert set(scored) == {(1, 16)}  # (B, C): one position a call, never (B, T, C)


@pytest.mark.parametrize("arch, settings", [LSTM, TRANSFORMER])
def test_next_logits_are_the_last_position_of_forward(arch, settings):
    model, idx = model_of(arch, settings), prompt_ids(12)
    logits, _, state = model(idx)
    last, state2 = model.next_logits(idx)
    torch.testing.assert_close(last, logits[:, -1])
    step, _, _ = model(idx[:, :1], state=state)
    torch.testing.assert_close(model.next_logits(idx[:, :1], state2)[0], step[:, -1])


@pytest.mark.parametrize("arch, settings", [LSTM, TRANSFORMER])
@pytest.mark.parametrize("prompt", ["", "aaa bbb, ccc.\nddd", "eee"])
def test_streamed_text_is_the_text_of_the_whole_answer(arch, settings, prompt):
    model = model_of(arch, settings)
    whole = complete(model, VOCAB, prompt, 60, 1.0, generator=torch.Generator().manual_seed(3))
    pieces = []
    assert complete(model, VOCAB, prompt, 60, 1.0, generator=torch.Generator().manual_seed(3),
                    write=pieces.append) is None
    assert "".join(pieces) == whole and len(pieces) >= 60  # a piece a token


def test_the_cli_prints_each_token_as_it_is_drawn(tmp_path, capsys, monkeypatch):
    model = model_of(*LSTM)
    path = tmp_path / "lstm.pt"
    save_checkpoint(path, model, model.config, "rnn", VOCAB)
    writes = []
    monkeypatch.setattr(sys.stdout, "write", lambda s: writes.append(s) or len(s))
    assert main(["generate", "--checkpoint", str(path), "--prompt", "aaa bbb", "--words", "30"]) == 0
    want = complete(model, VOCAB, "aaa bbb", 30, 1.0, generator=torch.Generator().manual_seed(0))
    assert "".join(writes) == want + "\n" and len(writes) >= 30


def test_a_long_prompt_is_echoed_as_read(tmp_path):
    model = model_of(*TRANSFORMER)  # reads 16 tokens
    text = complete(model, VOCAB, prompt_text(40), 5, 0)
    assert text.startswith(" ".join(prompt_text(40).split()[-16:]).capitalize())


class LovesUnk(LanguageModel):
    def forward(self, idx, targets=None, state=None):
        logits = torch.zeros(idx.size(0), idx.size(1), len(VOCAB))
        logits[..., 0] = 10.0  # <unk> (id 0) holds almost all the mass
        logits[..., 2] = -100.0  # and <eos> (which would end the answer) none
        return logits, None, state


def test_streaming_never_writes_unk():
    pieces = []
    complete(LovesUnk(), VOCAB, "aaa", 200, 1.0, generator=torch.Generator().manual_seed(0),
             write=pieces.append)
    assert len(pieces) == 201 and "<unk>" not in "".join(pieces)


# --- peak memory of `genmodels generate -i`, in a fresh process each --------------------------

PEAK = """import resource, sys
from genmodels.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)  # KiB on Linux
sys.exit(code)
"""


def peak_kib(checkpoint, prompt: str, words: int) -> int:
    """Peak resident memory (KiB) of ``genmodels generate -i`` answering one prompt line."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, "generate", "--checkpoint", str(checkpoint), "-i",
         "--words", str(words)],
        input=prompt + "\n", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "", "PYTHONPATH": ":".join(sys.path)}, check=True,
    )
    return int(done.stderr.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("arch, settings", [(LSTM[0], {**LSTM[1], "cutoffs": []}),
                                            (TRANSFORMER[0], {**TRANSFORMER[1], "cutoffs": []})])
def test_peak_memory_is_flat_in_prompt_length_and_words(tmp_path, arch, settings):
    """A 50k-token prompt and 20k words cost what 1k tokens and 10 words do, within 10 and
    5 MB (seen: +2 and +1). Before: +190 MB (LSTM; every prompt position's logits, 50k x
    1,004 floats) and +12 GB (Transformer; attention over the whole prompt) for the
    prompt, +4 to +8 MB for the words (a tensor a token, kept in a list)."""
    vocab = [t for t in VOCAB if t != "<eos>"]  # so that every answer runs its --words
    model = model_of(arch, settings, vocab)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, model.config, arch, vocab)
    base = peak_kib(path, prompt_text(1_000), 10)
    long_prompt = peak_kib(path, prompt_text(50_000), 10)
    many_words = peak_kib(path, prompt_text(1_000), 20_000)
    assert long_prompt - base < 10_000, (base, long_prompt)
    assert many_words - base < 5_000, (base, many_words)
    # under 1.5 GB, each generate process (RUSAGE_CHILDREN would also count the dvc runs
    # that other tests of the session started)
    assert max(base, long_prompt, many_words) < 1_500_000
