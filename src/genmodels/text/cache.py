"""Cache models: scoring a test stream with what the stream itself said a moment ago.

Text repeats itself: a play's speakers, a story's names and places come back within a
few hundred words. A cache adds that memory to a language model at test time, with no
training, and the literature scores both kinds of model with one:

- Neural cache (Grave et al. 2017, "Improving Neural Language Models with a Continuous
  Cache", eq. 2 and 5): the model's last ``size`` hidden states h_i are keys, the word
  that followed each is its value, and

      p_cache(w | h_t) ∝ sum_{i in [t-size, t), x_{i+1} = w} exp(theta * h_t . h_i)
      p(w) = (1 - lam) * p_model(w | h_t) + lam * p_cache(w | h_t)

- Unigram cache, for the Kneser-Ney baseline (Kuhn & De Mori 1990, "A cache-based
  natural language model for speech recognition"): p_cache(w) is w's share of the last
  ``size`` words, mixed in the same way.

Both see the same history: the earlier tokens of the same column of the batchified test
stream (``data.batchify``), never a later one. ``size``, ``theta`` and ``lam`` are chosen
on the validation split for each model (``tune``) and then applied to the test split.
Only the probability of each target is needed for perplexity, so nothing here builds a
distribution over the vocabulary.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, deque
from collections.abc import Sequence

import torch

# Rows of queries scored against their band of keys at once: (CHUNK, size + CHUNK) scores.
CHUNK = 512


def neural_caches(h: torch.Tensor, targets: torch.Tensor, sizes: Sequence[int],
                  thetas: Sequence[float]) -> dict[tuple[int, float], torch.Tensor]:
    """p_cache(target_t) (B, L) for every (size, theta), from hidden states h (B, L, C) and
    targets (B, L): the softmax over the ``size`` previous positions of theta * h_t . h_i,
    summed over those whose target was the same word; 0 where nothing in the cache matches
    (and at t = 0). The dot products are computed once for the whole grid."""
    B, L, _ = h.shape
    out = {(s, t): torch.zeros(B, L, dtype=torch.float64) for s in sizes for t in thetas}
    for a in range(0, L, CHUNK):
        b = min(L, a + CHUNK)
        lo = max(0, a - max(sizes))
        dist = torch.arange(a, b)[:, None] - torch.arange(lo, b)[None, :]  # (b-a, b-lo): t - i
        dots = h[:, a:b] @ h[:, lo:b].transpose(1, 2)  # (B, b-a, b-lo)
        same = targets[:, a:b, None] == targets[:, None, lo:b]  # (B, b-a, b-lo)
        for size in sizes:
            k = max(0, a - size) - lo  # the first key this size can reach
            outside = (dist[:, k:] <= 0) | (dist[:, k:] > size)  # keep strictly earlier, within size
            for theta in thetas:
                weights = torch.softmax((theta * dots[..., k:]).masked_fill(outside, -math.inf), -1)
                out[size, theta][:, a:b] = (weights.nan_to_num(0.0) * same[..., k:]).sum(-1).double()
    return out


def neural_cache(h: torch.Tensor, targets: torch.Tensor, theta: float, size: int) -> torch.Tensor:
    """p_cache(target_t) (B, L) for one ``size`` and ``theta``: see ``neural_caches``."""
    return neural_caches(h, targets, (size,), (theta,))[size, theta]


def unigram_cache(targets: torch.Tensor, size: int) -> torch.Tensor:
    """p_cache(target_t) (B, L): the share of the ``size`` previous targets of the same
    column that equal target_t (0 at t = 0)."""
    out = torch.zeros(targets.shape, dtype=torch.float64)
    for b, row in enumerate(targets.tolist()):
        window, counts = deque(), Counter()
        for t, w in enumerate(row):
            out[b, t] = counts[w] / len(window) if window else 0.0
            window.append(w)
            counts[w] += 1
            if len(window) > size:
                counts[window.popleft()] -= 1
    return out


def mixed_prob(p_model: torch.Tensor, p_cache: torch.Tensor, lam: float) -> torch.Tensor:
    """(1 - lam) p_model + lam p_cache, elementwise."""
    return (1 - lam) * p_model + lam * p_cache


def mixed_nll(p_model: torch.Tensor, p_cache: torch.Tensor, lam: float) -> torch.Tensor:
    """-log((1 - lam) p_model + lam p_cache), elementwise."""
    return -torch.log(mixed_prob(p_model, p_cache, lam))


def tune(p_model: torch.Tensor, caches: dict[tuple, torch.Tensor], lambdas: Sequence[float]) -> tuple:
    """The (cache key, lam) of lowest mean mixed NLL: ``caches`` maps each candidate key
    (e.g. (size, theta)) to its p_cache on the validation split."""
    best = min(((key, lam) for key, lam in itertools.product(caches, lambdas)),
               key=lambda kl: mixed_nll(p_model, caches[kl[0]], kl[1]).mean().item())
    return best[0], best[1]


def cache_metrics(p: torch.Tensor, targets: torch.Tensor, unk_id: int = 0) -> dict[str, float]:
    """Perplexity on all targets and on known-word targets, from each target's probability
    ``p`` (e.g. ``mixed_prob``'s), both (B, L)."""
    nll = -torch.log(p)
    known = targets != unk_id
    return {"ppl": math.exp(nll.mean().item()), "ppl_known": math.exp(nll[known].mean().item())}
