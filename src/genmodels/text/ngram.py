"""Count-based baselines on the neural models' vocabulary: add-one unigram and
interpolated Kneser-Ney n-grams.

Interpolated Kneser-Ney (Kneser & Ney 1995; the interpolated form and the
discount estimate are Chen & Goodman 1998, eqs. 17 and 26), for a history h of
n-1 words and its suffix h' of n-2 words:

    P(w | h) = max(c(h w) - D, 0) / c(h)  +  D * N1+(h .) / c(h) * P(w | h')

At the highest order c is the plain count; at lower orders it is the
continuation count N1+(. h w), the number of distinct words seen before ``h w``.
The order-1 distribution is interpolated with the uniform 1/V, so every word of
the vocabulary has a probability, and a history never seen falls through to the
next order down. The discount per order is D = n1 / (n1 + 2 n2), with n1, n2 the
numbers of n-grams counted once and twice (kept within [0.1, 0.9]).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


class Unigram:
    """Add-one unigram: P(w) = (c(w) + 1) / (N + V)."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.probs = np.full(vocab_size, 1.0 / vocab_size)

    def fit(self, ids: Sequence[int]) -> Unigram:
        counts = np.bincount(np.asarray(ids), minlength=self.vocab_size).astype(np.float64)
        self.probs = (counts + 1) / (counts.sum() + self.vocab_size)
        return self

    def distribution(self, history: Sequence[int]) -> np.ndarray:
        return self.probs


class KneserNey:
    """Interpolated Kneser-Ney of order ``order`` (>= 1) over ids ``0 .. vocab_size-1``."""

    def __init__(self, vocab_size: int, order: int = 3):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.vocab_size, self.order = vocab_size, order
        # per order k (1..n): history tuple (k-1 ids) -> (words, discounted numerators / c(h), lambda)
        self.tables: list[dict] = []

    def fit(self, ids: Sequence[int]) -> KneserNey:
        ids = [int(i) for i in ids]
        n = self.order
        grams = [Counter(zip(*(ids[i:] for i in range(k)), strict=False)) for k in range(1, n + 1)]
        counts: list[Counter] = [Counter() for _ in range(n)]
        counts[n - 1] = grams[n - 1]  # highest order: plain counts
        for k in range(n - 1):  # lower orders: continuation counts N1+(. g)
            for g in grams[k + 1]:
                counts[k][g[1:]] += 1
        self.tables = []
        for k, cnt in enumerate(counts):
            n1 = sum(1 for c in cnt.values() if c == 1)
            n2 = sum(1 for c in cnt.values() if c == 2)
            d = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.5  # Chen & Goodman 1998, eq. 26
            d = min(max(d, 0.1), 0.9)  # tiny corpora: keep some mass for the lower order
            by_history: dict[tuple, list] = defaultdict(list)
            for g, c in cnt.items():
                by_history[g[:k]].append((g[k], c))
            table = {}
            for h, items in by_history.items():
                words = np.array([w for w, _ in items], dtype=np.int64)
                c = np.array([c for _, c in items], dtype=np.float64)
                total = c.sum()
                table[h] = (words, np.maximum(c - d, 0.0) / total, d * len(items) / total)
            self.tables.append(table)
        return self

    def distribution(self, history: Sequence[int]) -> np.ndarray:
        """P(. | history) over the whole vocabulary, shape (V,); sums to 1."""
        if not self.tables:
            raise RuntimeError("fit the model first")
        history = tuple(int(i) for i in history)
        p = np.full(self.vocab_size, 1.0 / self.vocab_size)  # order 0: uniform
        for k, table in enumerate(self.tables):  # k = history length of this order
            if k > len(history):
                break
            entry = table.get(history[len(history) - k :] if k else ())
            if entry is None:  # unseen history: keep the lower-order estimate
                continue
            words, mass, lam = entry
            p = lam * p
            p[words] += mass
        return p


def by_history(model, data: torch.Tensor) -> dict[tuple, list[tuple[int, int, int]]]:
    """The targets of a batchified (B, L) stream grouped by their history: history tuple
    (the ``order - 1`` previous ids of the same column, fewer at its start) -> [(row, t,
    target id)] for every column's tokens after its first. Why: a test stream holds each
    history about twice (Sherlock's 55,050 trigram targets have 23,249 histories), and
    building P(. | h) over the vocabulary is what a count model's scoring costs."""
    order = getattr(model, "order", 1)
    groups: dict[tuple, list] = defaultdict(list)
    for b, row in enumerate(data.tolist()):
        for t in range(1, len(row)):
            groups[tuple(row[max(0, t - order + 1) : t])].append((b, t, row[t]))
    return groups


def score_stream(model, data: torch.Tensor, desc: str = "n-gram", unk_id: int = 0,
                 probs: torch.Tensor | None = None) -> dict[str, float]:
    """Loss, perplexity, top-1 and top-5 accuracy of a count model on a batchified (B, L)
    stream, scoring the same targets as the neural evaluation (every column's tokens
    after its first, with history from the same column); also the perplexity on targets
    that are not ``<unk>`` (``ppl_known``) and the share that are (``unk_share``).
    Losses are summed exactly (``math.fsum``), so the order of the targets does not matter.
    ``probs`` (B, L-1) float64, if given, receives each target's probability, as
    ``target_probs`` gives it, from the same pass."""
    losses, known_losses, top1, top5 = [], [], 0, 0
    for history, targets in tqdm(by_history(model, data).items(), desc=desc, leave=False, mininterval=1):
        p = model.distribution(history)
        best5 = np.argpartition(-p, 5)[:5]
        best = best5[np.argmax(p[best5])]
        for b, t, y in targets:
            if probs is not None:
                probs[b, t - 1] = float(p[y])
            loss = -math.log(p[y])
            losses.append(loss)
            if y != unk_id:
                known_losses.append(loss)
            top1 += int(best == y)
            top5 += int(y in best5)
    count, known = len(losses), len(known_losses)
    mean = math.fsum(losses) / count
    return {"loss": mean, "ppl": math.exp(mean), "acc": top1 / count, "top5": top5 / count,
            "ppl_known": math.exp(math.fsum(known_losses) / max(1, known)), "unk_share": 1 - known / count}


def target_probs(model, data: torch.Tensor) -> torch.Tensor:
    """P(target) of a count model for every target of a batchified (B, L) stream, (B, L-1)
    float64: the targets ``score_stream`` scores, with the same history."""
    out = torch.zeros(data.shape[0], data.shape[1] - 1, dtype=torch.float64)
    for history, targets in by_history(model, data).items():
        p = model.distribution(history)
        for b, t, y in targets:
            out[b, t - 1] = float(p[y])
    return out
