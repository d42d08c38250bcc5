"""The output layer: a full softmax, or a two-level adaptive softmax, both able to
share their weights with the input embedding (Press & Wolf 2017).

The adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for
GPUs") exploits Zipf's law. Ids are sorted by frequency (the vocabulary is), and
``cutoffs`` cut them into a head of frequent words plus tail clusters. The head
softmax scores the head words and one entry per cluster; a word in cluster i has

    log P(w | h) = log P_head(cluster i | h) + log P_i(w | h)

so most tokens in a batch only pay for the head, and the rare ones pay for their
cluster too. Unlike Grave et al. the clusters keep the full width (no projection),
so every word's output vector is its embedding row and tying stays exact.

``full_logits`` gives (B, T, V) log-probabilities (usable as logits) for
evaluation and sampling; ``loss`` is the training path that never builds them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genmodels import speed


class OutputLayer(nn.Module):
    def __init__(self, n_in: int, vocab_size: int, cutoffs: tuple[int, ...] = (), bias: bool = True):
        super().__init__()
        cutoffs = tuple(c for c in cutoffs if c < vocab_size)
        if list(cutoffs) != sorted(set(cutoffs)) or (cutoffs and cutoffs[0] <= 0):
            raise ValueError(f"cutoffs must be increasing positive ids, got {cutoffs}")
        self.vocab_size = vocab_size
        self.edges = (0, *cutoffs, vocab_size)  # cluster c holds ids edges[c] .. edges[c+1]-1
        self.weight = nn.Parameter(torch.empty(vocab_size, n_in))  # one row per word; may be tied
        self.bias = nn.Parameter(torch.zeros(vocab_size)) if bias else None
        self.cluster = speed.Linear(n_in, len(cutoffs)) if cutoffs else None  # head entries for tails
        nn.init.uniform_(self.weight, -0.1, 0.1)
        self.reset_clusters()

    @torch.no_grad()
    def reset_clusters(self) -> None:
        """Start near the uniform distribution over words: a cluster's head entry gets
        zero weights and the log of its size as bias."""
        if self.cluster is not None:
            sizes = torch.tensor([hi - lo for lo, hi in zip(self.edges[1:], self.edges[2:], strict=False)])
            nn.init.zeros_(self.cluster.weight)
            self.cluster.bias.copy_(sizes.float().log())

    @property
    def adaptive(self) -> bool:
        return self.cluster is not None

    def _scores(self, h: torch.Tensor, c: int) -> torch.Tensor:
        lo, hi = self.edges[c], self.edges[c + 1]
        b = self.bias[lo:hi] if self.bias is not None else None
        return speed.linear(h, self.weight[lo:hi], b)

    def full_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(..., n_in) -> (..., V): logits (full softmax) or log-probabilities (adaptive)."""
        if not self.adaptive:
            return F.linear(h, self.weight, self.bias)
        head = torch.log_softmax(torch.cat([self._scores(h, 0), self.cluster(h)], -1), -1)
        n0 = self.edges[1]
        parts = [head[..., :n0]]
        for c in range(1, len(self.edges) - 1):
            parts.append(head[..., n0 + c - 1 : n0 + c] + torch.log_softmax(self._scores(h, c), -1))
        return torch.cat(parts, -1)

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy; h (N, n_in), targets (N,)."""
        if not self.adaptive:
            return F.cross_entropy(F.linear(h, self.weight, self.bias), targets)
        n0 = self.edges[1]
        # One split of the (tied) weight for all clusters: its backward writes one (V, C)
        # gradient, where a slice per cluster would each zero-fill and add a (V, C) tensor.
        sizes = [hi - lo for lo, hi in zip(self.edges, self.edges[1:], strict=False)]
        weights = self.weight.split(sizes)
        biases = self.bias.split(sizes) if self.bias is not None else [None] * len(sizes)
        head = torch.log_softmax(torch.cat([speed.linear(h, weights[0], biases[0]), self.cluster(h)], -1),
                                 -1)  # (N, n0 + k)
        in_head = targets < n0
        # head words: their own entry; tail words: their cluster's entry, plus the below
        col = torch.where(in_head, targets, n0 - 1 + torch.bucketize(targets, torch.tensor(
            self.edges[1:-1], device=targets.device), right=True))
        nll = -head.gather(1, col[:, None]).squeeze(1)  # (N,)
        for c in range(1, len(self.edges) - 1):
            lo, hi = self.edges[c], self.edges[c + 1]
            rows = ((targets >= lo) & (targets < hi)).nonzero().squeeze(1)
            if rows.numel():
                logp = torch.log_softmax(speed.linear(h[rows], weights[c], biases[c]), -1)  # (n_c, hi - lo)
                nll = nll.index_add(0, rows, -logp.gather(1, (targets[rows] - lo)[:, None]).squeeze(1))
        return nll.mean()


def output(head: OutputLayer, h: torch.Tensor, targets: torch.Tensor | None, training: bool):
    """(logits, loss) from the last hidden states h (B, T, C), the models' shared tail.

    Training an adaptive softmax takes the cheap path and returns logits None;
    otherwise logits are (B, T, V).
    """
    if targets is not None and training and head.adaptive:
        return None, head.loss(h.reshape(-1, h.size(-1)), targets.reshape(-1))
    logits = head.full_logits(h)  # (B, T, V)
    loss = None
    if targets is not None:
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    return logits, loss
