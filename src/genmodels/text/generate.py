"""Sampling, written once for every language model.

Every model here shares one contract, ``forward(idx, targets=None, state=None) ->
(logits, loss, state)``, where ``state`` is what a model carries from one call to
the next: the hidden state of a recurrent model, the key/value cache of the
Transformer. So generation feeds the prompt once and then costs one step per new
token, never a re-run of the history.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time

import torch
from torch import nn

log = logging.getLogger(__name__)


def check_sampling(temperature: float, top_k: int = 0, top_p: float = 1.0) -> None:
    """Raise ``ValueError`` for settings that have no meaning (0 = greedy is fine)."""
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise ValueError(f"temperature must be a number, got {temperature!r}")
    if math.isnan(temperature) or math.isinf(temperature) or temperature < 0:
        raise ValueError(f"temperature must be finite and >= 0 (0 = greedy), got {temperature}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p!r}")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the ``top_k`` most likely tokens, then the smallest set whose mass reaches
    ``top_p`` (nucleus sampling, Holtzman et al. 2020); the rest get -inf."""
    if not top_k and top_p >= 1.0:
        return logits
    logits = logits.clone()  # (B, V)
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits.masked_fill_(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens before it already hold top_p of the mass;
        # the most likely token always stays
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits.masked_fill_(drop, -math.inf)
        logits = torch.full_like(logits, -math.inf).scatter(-1, order, sorted_logits)
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next ids ``(B,)`` from last-position logits ``(B, V)``; temperature 0 is greedy.

    Draws from softmax(filtered logits / T) by inverting its cumulative distribution with
    one uniform number per row. (torch.multinomial draws V exponentials per row instead,
    which at V = 11k costs more than an LSTM step.) The cumulative sum is in float64 so
    that rounding over 11k terms cannot shift the mass between tokens.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits / temperature if temperature != 1 else logits, top_k, top_p)
    weights = torch.exp(logits - logits.amax(-1, keepdim=True))  # (B, V) softmax * its sum
    # in place: a second (B, V) float64 buffer per step cost ~1 ms of page faults at B = 20
    cdf = weights.double().cumsum_(-1)  # (B, V)
    total = cdf[:, -1:]  # (B, 1)
    if not bool((total > 0).all()):  # NaN or inf logits (a diverged model)
        raise ValueError("cannot sample: the logits contain NaN or infinity")
    u = torch.rand(logits.size(0), 1, dtype=torch.float64, generator=generator, device=logits.device)
    u = (1 - u) * total  # u was in [0, 1): now uniform in (0, total]
    # the first token whose cdf reaches u; a token of zero weight (filtered out) has
    # cdf equal to its predecessor's, so it is never the first to reach u > 0
    return torch.searchsorted(cdf, u).squeeze(1)


@contextlib.contextmanager
def threads(n: int):
    """Run the block on ``n`` intra-op threads, then restore the count.

    Generation steps run on one: a step is a few dozen small ops (a 256-wide cell, a
    matrix-vector product), so on more threads each op pays a wake-up and a barrier,
    and on a busy CPU a barrier waits for a descheduled thread.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


UNK_ID = 0  # every vocabulary starts with <unk> (genmodels.data.text.Vocab)


def never_sample(logits: torch.Tensor, banned: tuple[int, ...]) -> torch.Tensor:
    """``logits`` (B, V) with the ``banned`` ids at -inf, so no sampler (greedy included) can
    pick them. Generation bans ``<unk>``: the models give it real mass (it stands for every
    word outside the vocabulary, and word dropout teaches them how often one comes), which is
    right for scoring text and wrong for writing it: a reader never wants to see "<unk>".
    Sampling then draws from the model's distribution over the known words, renormalised."""
    if not banned:
        return logits
    logits = logits.clone()
    logits[:, list(banned)] = -math.inf
    return logits


# Prompts are read this many tokens a call, the state carried between calls, so that
# reading costs memory for one chunk whatever the prompt's length.
READ_CHUNK = 256


def cut_prompt(seq, limit: int):
    """The last ``limit`` items of ``seq`` (a list, or a tensor along dim 1), with a one-line
    warning when that drops any."""
    n = seq.size(1) if isinstance(seq, torch.Tensor) else len(seq)
    if n <= limit:
        return seq
    log.warning("prompt of %d tokens cut to its last %d: the model reads no further back", n, limit)
    return seq[:, -limit:] if isinstance(seq, torch.Tensor) else seq[-limit:]


def check_prompt(idx: torch.Tensor) -> None:
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"idx must be (B, T) with T >= 1, got shape {tuple(idx.shape)}")


class LanguageModel(nn.Module):
    """Base class: subclasses define ``forward`` and ``detach_state``, and may define
    ``next_logits`` (cheaper) and ``prompt_limit``."""

    # Prompt tokens a model reads (more are cut, with a warning). A recurrent model could
    # read any length, but what it keeps of a token fades within a few dozen steps
    # (Khandelwal et al. 2018 measured an LSTM LM using ~200 tokens of context, word order
    # only within ~50), and every token costs a step: 1024 keeps all the model uses and
    # bounds the time. The Transformer reads as far back as its cache (``context``).
    prompt_limit: int = 1024

    def next_logits(self, idx: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """Logits (B, V) for the token after ``idx`` (B, T), and the new state. Models that
        can apply their output layer to the last position alone override this."""
        logits, _, state = self(idx, state=state)
        return logits[:, -1], state

    @torch.inference_mode()  # (on a generator: in force while it runs, not between tokens)
    def stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        banned: tuple[int, ...] = (UNK_ID,),
    ):
        """Yield ``max_new_tokens`` new ids (B,), one at a time, continuing ``idx`` (B, T).

        The prompt is cut to its last :attr:`prompt_limit` tokens (``cut_prompt``) and read
        :data:`READ_CHUNK` tokens a call with the state carried, only the last position
        going through the output layer; each new token is then one call on a (B, 1) input.
        Torch runs on one thread until the last token is drawn (or the generator closed).
        Ids in ``banned`` (``<unk>``) are never generated (``never_sample``). Nothing grows
        with the prompt or with the number of tokens.
        """
        check_sampling(temperature, top_k, top_p)
        check_prompt(idx)
        was_training = self.training
        self.eval()
        try:
            idx, state = cut_prompt(idx, self.prompt_limit), None
            # One thread, the prompt included: reading 1024 tokens through nn.LSTM took 2.6 s
            # of CPU on two threads of a busy machine, 0.03 s on one (see ``threads``).
            with threads(1):
                for chunk in idx.split(READ_CHUNK, dim=1):
                    logits, state = self.next_logits(chunk, state)  # (B, V)
                for i in range(max_new_tokens):  # then one small step a token
                    nxt = sample_next(never_sample(logits, banned), temperature, top_k, top_p,
                                      generator)  # (B,)
                    yield nxt
                    if i + 1 < max_new_tokens:
                        logits, state = self.next_logits(nxt[:, None], state)  # (B, V)
        finally:
            self.train(was_training)

    @torch.inference_mode()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        banned: tuple[int, ...] = (UNK_ID,),
    ) -> torch.Tensor:
        """Continue each row of ``idx`` (B, T), T >= 1, by ``max_new_tokens`` tokens: the
        prompt as read (its last :attr:`prompt_limit` tokens at most, T' of them) and the new
        tokens, (B, T' + max_new_tokens). See :meth:`stream`."""
        check_prompt(idx)
        idx = cut_prompt(idx, self.prompt_limit)
        out = idx.new_empty(idx.size(0), idx.size(1) + max_new_tokens)  # filled as drawn
        out[:, : idx.size(1)] = idx
        new = self.stream(idx, max_new_tokens, temperature, top_k, top_p, generator, banned)
        for i, nxt in enumerate(new):
            out[:, idx.size(1) + i] = nxt
        return out


def tokens_per_second(
    model: LanguageModel, n_tokens: int = 2000, temperature: float = 1.0, repeats: int = 3,
    seed: int = 0, batch: int = 1,
) -> float:
    """Generation speed, one step per token, best of ``repeats``: ``batch`` streams side by
    side (B = 1: a single stream; B > 1: N samples drawn at once, as evaluate_text does)."""
    gen = torch.Generator().manual_seed(seed)
    start = torch.zeros(batch, 1, dtype=torch.long)
    model.generate(start, 20, temperature, generator=gen)  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.generate(start, n_tokens, temperature, generator=gen)
        best = min(best, time.perf_counter() - t0)
    return batch * n_tokens / best


def encode_prompt(prompt: str, stoi: dict[str, int], newline: str = "line",
                  limit: int | None = None) -> list[int]:
    """Prompt text -> ids, its last ``limit`` tokens if given (``cut_prompt``). Words outside
    the vocabulary become ``<unk>`` with a warning naming them; an empty prompt is
    unprompted generation (it starts after a ``<nl>``)."""
    from genmodels.data.text import NL, UNK, tokenize

    tokens = tokenize(prompt, newline)
    if limit is not None:
        tokens = cut_prompt(tokens, limit)
    unknown = list(dict.fromkeys(t for t in tokens if t not in stoi))
    if unknown:
        log.warning("prompt words not in the vocabulary, read as %s: %s", UNK, ", ".join(unknown))
    return [stoi.get(t, stoi[UNK]) for t in tokens] or [stoi[NL]]


def complete(
    model: LanguageModel,
    itos: list[str],
    prompt: str,
    n_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    newline: str = "line",
    write=None,
) -> str | None:
    """Prompt text in, prompt plus ``n_tokens`` generated tokens out, as readable text
    (it stops early at ``<eos>``). A prompt longer than the model's ``prompt_limit`` is cut
    to its last tokens, with a warning, and only the part read is given back.

    With ``write`` (e.g. ``sys.stdout.write``) the text goes there piece by piece, each
    token's as soon as it is drawn (``Detokenizer``), nothing is kept, and the return is
    None; the pieces joined are the string returned without it.
    """
    from genmodels.data.text import EOS, NL
    from genmodels.text.detokenize import Detokenizer

    stoi = {t: i for i, t in enumerate(itos)}
    ids = encode_prompt(prompt, stoi, newline, model.prompt_limit)
    detok, pieces = Detokenizer(newline), []
    put = write or pieces.append
    if not (ids == [stoi[NL]] and not tokenize_is_nl(prompt)):  # else: the <nl> of "no prompt"
        put("".join(detok.feed(itos[i]) for i in ids))
    new = model.stream(torch.tensor([ids]), n_tokens, temperature, top_k, top_p, generator)
    for nxt in new:
        token = itos[nxt.item()]
        if token == EOS:
            break
        put(detok.feed(token))
    new.close()  # (at <eos>: restores the thread count and training mode now)
    return None if write else "".join(pieces)


def tokenize_is_nl(prompt: str) -> bool:
    """True when the prompt itself is only line breaks (so its <nl> is real)."""
    return "\n" in prompt and not prompt.strip()
