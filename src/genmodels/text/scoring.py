"""Scoring a token stream: the held-out metrics of every language model.

One function, used by validation during training and by the test evaluation
(``evaluate.py``), so the two measure the same thing: the mean next-token loss and its
perplexity, top-1 and top-5 accuracy, the perplexity on known-word targets and the share
of ``<unk>`` targets, with the state carried from window to window.
"""

from __future__ import annotations

import itertools

import torch
from tqdm.auto import tqdm

from genmodels.distributed import SINGLE, Dist, reduce_sum
from genmodels.finite import perplexity
from genmodels.text.data import n_windows, windows
from genmodels.text.model import LanguageModel


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
    total_loss, known_loss, top1, top5, count, known, state = 0.0, 0.0, 0, 0, 0, 0, None
    n = n_windows(data, bptt) if not limit_batches else min(limit_batches, n_windows(data, bptt))
    for x, y in tqdm(itertools.islice(windows(data, bptt), n), total=n, desc=desc, leave=False,
                     disable=not info.is_main):
        logits, _, state = model(x, None, state)  # (B, T, V)
        nll = -torch.log_softmax(logits.float(), -1).gather(-1, y[..., None])[..., 0]  # (B, T)
        is_known = y != unk_id
        total_loss += nll.sum().item()
        known_loss += nll[is_known].sum().item()
        best5 = logits.topk(5, dim=-1).indices  # (B, T, 5)
        top1 += (best5[..., 0] == y).sum().item()
        top5 += (best5 == y[..., None]).any(-1).sum().item()
        count += y.numel()
        known += is_known.sum().item()
    sums = reduce_sum({"loss": total_loss, "known_loss": known_loss, "top1": top1, "top5": top5,
                       "count": count, "known": known}, info)
    mean = sums["loss"] / sums["count"]
    return {"loss": mean, "ppl": perplexity(mean), "acc": sums["top1"] / sums["count"],
            "top5": sums["top5"] / sums["count"],
            "ppl_known": perplexity(sums["known_loss"] / max(1, sums["known"])),
            "unk_share": 1 - sums["known"] / sums["count"]}
