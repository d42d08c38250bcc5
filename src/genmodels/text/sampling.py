"""Sampling the next token: settings, filters and the draw, shared by every language model.

``sample_next`` turns last-position logits into ids (temperature, top-k, top-p; greedy at
temperature 0); ``never_sample`` keeps ``<unk>`` out of generated text; ``cut_prompt``
bounds what a model reads of a prompt.
"""

from __future__ import annotations

import contextlib
import logging
import math

import torch

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
