"""Score a trained language model on the held-out test split, beside two count
baselines trained on equal terms, and measure its samples beside real text.

Next-word metrics: perplexity, top-1 and top-5 accuracy, perplexity on the targets
that are not ``<unk>`` (``ppl_known``) and the share that are (``unk_share``), for
the model, an add-one unigram and interpolated Kneser-Ney (``ngram_order``). The
baselines see the same vocabulary, the same test targets and the same word dropout
to ``<unk>`` in training as the model (``fair_baselines``).

Sample metrics, from ``samples`` unprompted samples at each of ``temperatures``, and
the same for as many passages of held-out test text of the same length: the share of
``<nl>``, punctuation and ``<unk>`` tokens; distinct-1 and distinct-2 (distinct
n-grams over all n-grams, all samples pooled; Li et al. 2016); repetition (the share
of a sample's 4-grams that repeat an earlier 4-gram of the same sample, averaged;
"seq-rep-4" of Welleck et al. 2020); novelty (the share of 4-grams absent from the
training text) and mean length in tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field

from genmodels.config import config
from genmodels.data.text import EOS, NL, PUNCTUATION, UNK
from genmodels.device import seed_everything
from genmodels.text.cache import (
    cache_metrics,
    mixed_prob,
    neural_cache,
    neural_caches,
    tune,
    unigram_cache,
)
from genmodels.text.data import batchify, load_split, replace_rare
from genmodels.text.ngram import KneserNey, Unigram, score_stream, target_probs
from genmodels.text.registry import load_checkpoint
from genmodels.text.sampling import UNK_ID
from genmodels.text.scoring import StreamScore, model_outputs

log = logging.getLogger(__name__)


@config
class EvaluateTextConfig:
    batch_size: Annotated[int, Field(gt=0)] = 10  # parallel columns of the test stream
    bptt: Annotated[int, Field(gt=0)] = 35
    ngram_order: Annotated[int, Field(gt=0)] = 3
    samples: Annotated[int, Field(gt=0)] = 20  # per temperature, and held-out passages
    sample_tokens: Annotated[int, Field(gt=0)] = 100
    temperatures: tuple[Annotated[float, Field(ge=0)], ...] = (0.5, 1.0)
    top_k: Annotated[int, Field(ge=0)] = 0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    seed: int = 0
    max_tokens: Annotated[int, Field(ge=0)] = 0  # score only the first test tokens; 0 = all
    # Cache models (cache.py), tuned on the validation split; params.yaml sets the grids,
    # sizes () = no cache.
    cache_sizes: tuple[Annotated[int, Field(gt=0)], ...] = ()
    cache_thetas: tuple[Annotated[float, Field(gt=0)], ...] = ()
    cache_lambdas: tuple[Annotated[float, Field(gt=0, lt=1)], ...] = ()

    def __post_init__(self):
        if self.cache_sizes and not (self.cache_thetas and self.cache_lambdas):
            raise ValueError("cache_sizes is set: cache_thetas and cache_lambdas need a value each")


def ngrams(seq: Sequence, n: int) -> list[tuple]:
    return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]


def cut_at_eos(ids: list[int], eos_id: int | None) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id is not None and eos_id in ids else ids


def temperature_tag(t: float) -> str:
    """0.5 -> "t0_5": a metric-name part without a dot (DVC flattens names with dots)."""
    return "t" + f"{t:g}".replace(".", "_")


def sample_metrics(samples: list[list[int]], train_ids: Sequence[int], itos: Sequence[str],
                   seen: set | None = None) -> dict[str, float]:
    """Statistics of token-id passages: the share of tokens that are ``<nl>``, punctuation
    and ``<unk>``; distinct-1/2; repetition and novelty of 4-grams; mean length. Computed
    alike on samples and on held-out text, so a degenerate sampler shows up as a number."""
    out = {}
    tokens = [itos[i] for s in samples for i in s]
    n = max(1, len(tokens))
    out["nl_share"] = sum(t == NL for t in tokens) / n
    out["punct_share"] = sum(t in PUNCTUATION for t in tokens) / n
    out["unk_share"] = sum(t == UNK for t in tokens) / n
    for k in (1, 2):
        grams = [g for s in samples for g in ngrams(s, k)]
        out[f"distinct_{k}"] = len(set(grams)) / max(1, len(grams))
    reps = []
    for s in samples:
        grams = ngrams(s, 4)
        if grams:
            reps.append(1 - len(set(grams)) / len(grams))
    out["repetition_4"] = sum(reps) / max(1, len(reps))
    seen = seen if seen is not None else set(ngrams(list(train_ids), 4))
    generated = [g for s in samples for g in ngrams(s, 4)]
    out["novelty_4"] = sum(g not in seen for g in generated) / max(1, len(generated))
    out["mean_length"] = sum(len(s) for s in samples) / max(1, len(samples))
    return out


def draw_samples(model, itos: list[str], cfg: EvaluateTextConfig, temperature: float) -> list[list[int]]:
    """``cfg.samples`` unprompted samples (each starts after a ``<nl>``), cut at ``<eos>``."""
    stoi = {t: i for i, t in enumerate(itos)}
    gen = seed_everything(cfg.seed)
    start = torch.full((cfg.samples, 1), stoi[NL], dtype=torch.long)  # (N, 1)
    out = model.generate(start, cfg.sample_tokens, temperature, cfg.top_k, cfg.top_p, gen)
    return [cut_at_eos(row[1:], stoi.get(EOS)) for row in out.tolist()]


def heldout_passages(test_ids: Sequence[int], itos: Sequence[str], n: int, length: int) -> list[list[int]]:
    """``n`` passages of ``length`` test tokens, spread evenly over the test text, each
    starting just after a ``<nl>`` as an unprompted sample does, cut at ``<eos>``: the
    reference the sample statistics are read against."""
    ids = list(test_ids)
    nl = itos.index(NL)
    eos = itos.index(EOS) if EOS in itos else None
    starts = [i + 1 for i, t in enumerate(ids[:-1]) if t == nl and i + 1 + length <= len(ids)] or [0]
    picks = [starts[round(k * (len(starts) - 1) / max(1, n - 1))] for k in range(n)]
    return [cut_at_eos(ids[s : s + length], eos) for s in picks]


def fair_baselines(train_ids: torch.Tensor, vocab_size: int, order: int, unk_alpha: float,
                   seed: int) -> dict:
    """The unigram and Kneser-Ney baselines, trained on the training text with the same word
    dropout to ``<unk>`` the neural model had (``unk_alpha``, one seeded draw).

    Why: a count model that never saw ``<unk>`` gives it only its smoothing mass, so each of
    Shakespeare's ~2,000 out-of-vocabulary test tokens cost the old baseline about 15 nats,
    and the neural models' gain over it was inflated (219.7 vs 101.2 perplexity)."""
    counts = torch.bincount(train_ids, minlength=vocab_size)  # (V,)
    gen = torch.Generator().manual_seed(seed)
    ids = replace_rare(train_ids, counts, unk_alpha, UNK_ID, gen).tolist()
    return {"unigram": Unigram(vocab_size).fit(ids), "kneser_ney": KneserNey(vocab_size, order).fit(ids)}


def split_outputs(cfg: EvaluateTextConfig, model, kneser_ney: KneserNey, val_ids: torch.Tensor,
                  test: tuple) -> dict[str, tuple]:
    """Per split ("val", "test"): the model's last hidden states (B, L-1, C), each target's
    probability under the model and under Kneser-Ney (B, L-1), and the targets (B, L-1).
    ``test`` is those four already (``evaluate``'s one pass over the test split)."""
    val = batchify(val_ids, cfg.batch_size)
    h, p_model = model_outputs(model, val, cfg.bptt, desc="val")
    return {"val": (h, p_model, val[:, 1:], target_probs(kneser_ney, val)), "test": test}


def cache_scores(cfg: EvaluateTextConfig, splits: dict[str, tuple]) -> tuple[dict[str, float], dict]:
    """Test perplexity of the model with a neural cache and of Kneser-Ney with a unigram
    cache (``cache.py``), each cache's size, theta and weight chosen on the validation split;
    ``cache/gain_over_kn`` compares the two: each model with the cache of its kind. Also each
    target's probability under both cached models, per split (for ``ensemble.py``)."""
    # p_cache of every target per split: on val the whole grid first, for the choice
    h, p_model, y, p_kn = splits["val"]
    grid = neural_caches(h, y, cfg.cache_sizes, cfg.cache_thetas)  # {(size, theta): (B, L)}
    kn_grid = {(s,): unigram_cache(y, s) for s in cfg.cache_sizes}
    (size, theta), lam = tune(p_model, grid, cfg.cache_lambdas)
    (kn_size,), kn_lam = tune(p_kn, kn_grid, cfg.cache_lambdas)
    h, _, y, _ = splits["test"]
    p_neural = {"val": grid[size, theta], "test": neural_cache(h, y, theta, size)}
    p_unigram = {"val": kn_grid[kn_size,], "test": unigram_cache(y, kn_size)}
    probs: dict = {"model_cached": {}, "kneser_ney_cached": {}}
    for name, (_, p_model, _, p_kn) in splits.items():
        probs["model_cached"][name] = mixed_prob(p_model, p_neural[name], lam)
        probs["kneser_ney_cached"][name] = mixed_prob(p_kn, p_unigram[name], kn_lam)
    y = splits["test"][2]
    neural = cache_metrics(probs["model_cached"]["test"], y, UNK_ID)
    counts = cache_metrics(probs["kneser_ney_cached"]["test"], y, UNK_ID)
    metrics = {"cache/ppl": neural["ppl"], "cache/ppl_known": neural["ppl_known"],
               "cache/kn_ppl": counts["ppl"], "cache/kn_ppl_known": counts["ppl_known"],
               "cache/gain_over_kn": 1 - neural["ppl"] / counts["ppl"],
               "cache/size": size, "cache/theta": theta, "cache/lambda": lam,
               "cache/kn_size": kn_size, "cache/kn_lambda": kn_lam}
    return metrics, probs


def evaluate(cfg: EvaluateTextConfig, model_path: str | Path, data_dir: str | Path,
             name: str = "") -> tuple[dict, dict, dict]:
    """All metrics as a flat ``{"test/ppl": ...}`` dict, the samples (token lists) per
    temperature tag, and the scores: each validation and test target's probability under
    the model and Kneser-Ney, with and without their caches (what ``ensemble.py`` mixes)."""
    model, itos, ckpt = load_checkpoint(model_path)
    train_ids = load_split(data_dir, "train")
    test_ids = load_split(data_dir, "test")
    if cfg.max_tokens:
        test_ids = test_ids[: cfg.max_tokens]
    test = batchify(test_ids, cfg.batch_size)  # (B, L)
    # One pass over the test split gives the metrics and what the caches and the ensemble
    # need (hidden states, each target's probability), for the model and for Kneser-Ney.
    score = StreamScore()
    h, p_model = model_outputs(model, test, cfg.bptt, score, desc="test")
    metrics = {f"test/{k}": v for k, v in score.result().items()}
    baselines = fair_baselines(train_ids, len(itos), cfg.ngram_order, ckpt.get("unk_alpha", 0.0), cfg.seed)
    p_kn = torch.zeros(test.shape[0], test.shape[1] - 1, dtype=torch.float64)
    for kind, baseline in baselines.items():
        probs = p_kn if kind == "kneser_ney" else None
        for k, v in score_stream(baseline, test, desc=kind, probs=probs).items():
            metrics[f"{kind}/{k}"] = v
    # relative perplexity gain over Kneser-Ney: 0.15 means 15% lower perplexity
    metrics["test/gain_over_kn"] = 1 - metrics["test/ppl"] / metrics["kneser_ney/ppl"]
    splits = split_outputs(cfg, model, baselines["kneser_ney"], load_split(data_dir, "val"),
                           (h, p_model, test[:, 1:], p_kn))
    del h, p_model
    scores = {"format": 1, "name": name,
              "targets": {k: y for k, (_, _, y, _) in splits.items()},
              "model": {k: p for k, (_, p, _, _) in splits.items()},
              "kneser_ney": {k: p for k, (_, _, _, p) in splits.items()}}
    if cfg.cache_sizes:
        cached, probs = cache_scores(cfg, splits)
        metrics.update(cached)
        scores.update(probs)
    del splits  # the hidden states: up to tens of MB
    seen = set(ngrams(train_ids.tolist(), 4))
    heldout = sample_metrics(heldout_passages(test_ids.tolist(), itos, cfg.samples, cfg.sample_tokens),
                             train_ids, itos, seen)
    metrics.update({f"heldout/{k}": v for k, v in heldout.items()})
    reference = heldout["nl_share"] + heldout["punct_share"]
    samples = {}
    for t in cfg.temperatures:
        tag = temperature_tag(t)
        samples[tag] = draw_samples(model, itos, cfg, t)
        stats = sample_metrics(samples[tag], train_ids, itos, seen)
        # > 1: more line breaks and punctuation than real text (the old Transformer: 3.0 at T 0.5)
        stats["nl_punct_ratio"] = (stats["nl_share"] + stats["punct_share"]) / max(reference, 1e-9)
        metrics.update({f"samples/{tag}/{k}": v for k, v in stats.items()})
    return metrics, {tag: [[itos[i] for i in s] for s in ss] for tag, ss in samples.items()}, scores
