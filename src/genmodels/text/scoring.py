"""Scoring a token stream: the held-out metrics of every language model.

One set of sums (``StreamScore``), used by validation during training
(``evaluate_stream``) and by the test evaluation (``model_outputs``, which also keeps the
hidden states and each target's probability for the caches and the ensemble), so the two
measure the same thing: the mean next-token loss and its perplexity, top-1 and top-5
accuracy, the perplexity on known-word targets and the share of ``<unk>`` targets, with
the state carried from window to window.
"""

from __future__ import annotations

import itertools

import torch
from tqdm.auto import tqdm

from genmodels.distributed import SINGLE, Dist, reduce_sum
from genmodels.finite import perplexity
from genmodels.text.data import n_windows, windows
from genmodels.text.model import LanguageModel


def target_logp(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(target) (B, T) from logits (B, T, V) and targets (B, T), in float32."""
    return torch.log_softmax(logits.float(), -1).gather(-1, y[..., None])[..., 0]


class StreamScore:
    """The sums behind ``evaluate_stream``'s metrics, added window by window, so a pass that
    needs more than the metrics (``model_outputs``: the hidden states and each
    target's probability) scores the stream as validation and the test metrics do."""

    def __init__(self, unk_id: int = 0):
        self.unk_id = unk_id
        self.sums = {"loss": 0.0, "known_loss": 0.0, "top1": 0, "top5": 0, "count": 0, "known": 0}

    def add(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Add one window: logits (B, T, V), targets (B, T). Returns log p(target) (B, T)."""
        logp = target_logp(logits, y)  # (B, T)
        nll, is_known, s = -logp, y != self.unk_id, self.sums
        s["loss"] += nll.sum().item()
        s["known_loss"] += nll[is_known].sum().item()
        best5 = logits.topk(5, dim=-1).indices  # (B, T, 5)
        s["top1"] += (best5[..., 0] == y).sum().item()
        s["top5"] += (best5 == y[..., None]).any(-1).sum().item()
        s["count"] += y.numel()
        s["known"] += is_known.sum().item()
        return logp

    def result(self, info: Dist = SINGLE) -> dict[str, float]:
        """The metrics; with several ranks, the sums of all are added first."""
        sums = reduce_sum(self.sums, info)
        mean = sums["loss"] / sums["count"]
        return {"loss": mean, "ppl": perplexity(mean), "acc": sums["top1"] / sums["count"],
                "top5": sums["top5"] / sums["count"],
                "ppl_known": perplexity(sums["known_loss"] / max(1, sums["known"])),
                "unk_share": 1 - sums["known"] / sums["count"]}


@torch.no_grad()
def evaluate_stream(
    model: LanguageModel, data: torch.Tensor, bptt: int, limit_batches: int = 0, desc: str = "eval",
    info: Dist = SINGLE, unk_id: int = 0,
) -> dict[str, float]:
    """Mean next-token loss, perplexity, top-1 and top-5 accuracy over a batchified (B, L) stream,
    the state carried across windows; also the perplexity on targets that are not ``<unk>``
    (``ppl_known``) and the share of targets that are (``unk_share``). With several ranks, each
    passes its own columns and the sums are added."""
    model.eval()
    score, state = StreamScore(unk_id), None
    n = n_windows(data, bptt) if not limit_batches else min(limit_batches, n_windows(data, bptt))
    for x, y in tqdm(itertools.islice(windows(data, bptt), n), total=n, desc=desc, leave=False,
                     disable=not info.is_main):
        logits, _, state = model(x, None, state)  # (B, T, V)
        score.add(logits, y)
    return score.result(info)


@torch.no_grad()
def model_outputs(model, data: torch.Tensor, bptt: int, score: StreamScore | None = None,
                  desc: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """The last hidden states (B, L-1, C) and each target's probability (B, L-1) of a
    language model (``hidden`` + ``head``) over a batchified (B, L) stream, state carried
    from window to window, as ``evaluate_stream`` reads it (in eval mode a model's
    forward is ``head.full_logits(hidden)``). With ``score``, the windows are added to it
    too: the test metrics come from this same pass."""
    model.eval()
    hs, ps, state = [], [], None
    for x, y in tqdm(windows(data, bptt), total=n_windows(data, bptt), desc=desc or "outputs",
                     leave=False):
        h, state = model.hidden(x, state)  # (B, T, C)
        logits = model.head.full_logits(h)  # (B, T, V)
        logp = score.add(logits, y) if score else target_logp(logits, y)  # (B, T)
        hs.append(h.float())
        ps.append(logp.double().exp())
    return torch.cat(hs, 1), torch.cat(ps, 1)
