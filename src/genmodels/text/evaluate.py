"""Score a trained language model on the held-out test split, beside two count
baselines on the same vocabulary and the same targets, and measure its samples.

Next-word metrics: perplexity, top-1 and top-5 accuracy, for the model, an add-one
unigram and interpolated Kneser-Ney (``ngram_order``). Sample metrics, from
``samples`` unprompted samples: distinct-1 and distinct-2 (distinct n-grams over
all n-grams, all samples pooled; Li et al. 2016), repetition (the share of a
sample's 4-grams that repeat an earlier 4-gram of the same sample, averaged;
"seq-rep-4" of Welleck et al. 2020), novelty (the share of generated 4-grams
absent from the training text) and mean length in tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field

from genmodels.config import config
from genmodels.data.text import EOS, NL
from genmodels.device import seed_everything
from genmodels.text.data import batchify, load_split
from genmodels.text.ngram import KneserNey, Unigram, score_stream
from genmodels.text.registry import load_checkpoint
from genmodels.text.train import evaluate_stream

log = logging.getLogger(__name__)


@config
class EvaluateTextConfig:
    batch_size: Annotated[int, Field(gt=0)] = 10  # parallel columns of the test stream
    bptt: Annotated[int, Field(gt=0)] = 35
    ngram_order: Annotated[int, Field(gt=0)] = 3
    samples: Annotated[int, Field(gt=0)] = 20
    sample_tokens: Annotated[int, Field(gt=0)] = 100
    temperature: Annotated[float, Field(ge=0)] = 1.0
    top_k: Annotated[int, Field(ge=0)] = 0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    seed: int = 0
    max_tokens: Annotated[int, Field(ge=0)] = 0  # score only the first test tokens; 0 = all


def ngrams(seq: Sequence, n: int) -> list[tuple]:
    return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]


def cut_at_eos(ids: list[int], eos_id: int | None) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id is not None and eos_id in ids else ids


def sample_metrics(samples: list[list[int]], train_ids: Sequence[int]) -> dict[str, float]:
    """distinct-1/2, repetition and novelty of 4-grams, mean length, over token-id samples."""
    out = {}
    for n in (1, 2):
        grams = [g for s in samples for g in ngrams(s, n)]
        out[f"distinct_{n}"] = len(set(grams)) / max(1, len(grams))
    reps = []
    for s in samples:
        grams = ngrams(s, 4)
        if grams:
            reps.append(1 - len(set(grams)) / len(grams))
    out["repetition_4"] = sum(reps) / max(1, len(reps))
    seen = set(ngrams(list(train_ids), 4))
    generated = [g for s in samples for g in ngrams(s, 4)]
    out["novelty_4"] = sum(g not in seen for g in generated) / max(1, len(generated))
    out["mean_length"] = sum(len(s) for s in samples) / max(1, len(samples))
    return out


def draw_samples(model, itos: list[str], cfg: EvaluateTextConfig) -> list[list[int]]:
    """``cfg.samples`` unprompted samples (each starts after a ``<nl>``), cut at ``<eos>``."""
    stoi = {t: i for i, t in enumerate(itos)}
    gen = seed_everything(cfg.seed)
    start = torch.full((cfg.samples, 1), stoi[NL], dtype=torch.long)  # (N, 1)
    out = model.generate(start, cfg.sample_tokens, cfg.temperature, cfg.top_k, cfg.top_p, gen)
    return [cut_at_eos(row[1:], stoi.get(EOS)) for row in out.tolist()]


def evaluate(cfg: EvaluateTextConfig, model_path: str | Path, data_dir: str | Path) -> tuple[dict, list]:
    """All metrics as a flat ``{"test/ppl": ...}`` dict, and the samples (token lists)."""
    model, itos, _ = load_checkpoint(model_path)
    train_ids = load_split(data_dir, "train")
    test_ids = load_split(data_dir, "test")
    if cfg.max_tokens:
        test_ids = test_ids[: cfg.max_tokens]
    test = batchify(test_ids, cfg.batch_size)  # (B, L)
    metrics = {f"test/{k}": v for k, v in evaluate_stream(model, test, cfg.bptt, desc="test").items()}
    baselines = {
        "unigram": Unigram(len(itos)).fit(train_ids.tolist()),
        "kneser_ney": KneserNey(len(itos), cfg.ngram_order).fit(train_ids.tolist()),
    }
    for name, baseline in baselines.items():
        for k, v in score_stream(baseline, test, desc=name).items():
            metrics[f"{name}/{k}"] = v
    # relative perplexity gain over Kneser-Ney: 0.15 means 15% lower perplexity
    metrics["test/gain_over_kn"] = 1 - metrics["test/ppl"] / metrics["kneser_ney/ppl"]
    samples = draw_samples(model, itos, cfg)
    metrics.update({f"samples/{k}": v for k, v in sample_metrics(samples, train_ids.tolist()).items()})
    return metrics, [[itos[i] for i in s] for s in samples]
