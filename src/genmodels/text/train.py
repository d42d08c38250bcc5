"""One training loop for every language model (RNN, LSTM, GRU, Transformer).

Next-token loss at every position of contiguous BPTT windows; the state (hidden
state or key/value cache) is carried from one window to the next and detached,
so gradients stop at the window edge (truncated BPTT); gradients are clipped;
AdamW with linear warm-up then cosine decay; validation after every epoch, and
early stopping that keeps the best checkpoint.

Under torchrun each rank trains on its share of the B columns of the stream
(``distributed.py``); a resume checkpoint every ``checkpoint_every`` steps lets
a killed run go on from where it stopped (``resume.py``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field
from tqdm.auto import tqdm

from genmodels import distributed, speed
from genmodels.config import Device, config
from genmodels.device import seed_everything
from genmodels.distributed import SINGLE, Dist, autocast, reduce_sum, shard
from genmodels.finite import FiniteGuard, perplexity
from genmodels.resume import Resume, rng_state, set_rng_state, to_device
from genmodels.text.data import (
    batchify,
    load_split,
    load_vocab,
    n_windows,
    replace_rare,
    require_tokens,
    windows,
)
from genmodels.text.registry import build_model, save_checkpoint
from genmodels.text.scoring import evaluate_stream

log = logging.getLogger(__name__)


@config
class TrainSettings:
    epochs: Annotated[int, Field(gt=0)] = 6
    batch_size: Annotated[int, Field(gt=0)] = 32
    bptt: Annotated[int, Field(gt=0)] = 35  # window length, tokens
    lr: Annotated[float, Field(gt=0)] = 3e-3
    min_lr: Annotated[float, Field(ge=0)] = 3e-4  # end of the cosine decay
    warmup: Annotated[int, Field(ge=0)] = 100  # steps of linear warm-up
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    clip: Annotated[float, Field(gt=0)] = 0.5  # max gradient norm
    patience: Annotated[int, Field(gt=0)] = 2  # epochs without a better val loss before stopping
    eval_batch_size: Annotated[int, Field(gt=0)] = 10
    # Word dropout to <unk>: a word seen c times becomes <unk> with chance unk_alpha / (unk_alpha + c),
    # drawn anew each epoch, so the model learns how likely a new word is (0 = off)
    unk_alpha: Annotated[float, Field(ge=0)] = 0.0
    limit_batches: Annotated[int, Field(ge=0)] = 0  # per epoch and per evaluation; 0 = all (smoke runs)
    seed: int = 0
    device: Device = "auto"  # cuda, then mps, else cpu

    def __post_init__(self):
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")


@config
class TrainTextConfig:
    """One ``train_text.<name>`` entry: which corpus, which architecture, its sizes, the recipe."""

    corpus: str
    arch: str
    model: dict[str, Any]
    train: TrainSettings


def get_lr(step: int, total: int, s: TrainSettings) -> float:
    """Linear warm-up for ``s.warmup`` steps, then cosine decay from ``lr`` to ``min_lr``."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = min(1.0, (step - s.warmup) / max(1, total - s.warmup))
    return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + math.cos(math.pi * progress))


@dataclass
class EpochProgress:
    """How far one rank is through an epoch: what a resume checkpoint keeps of it."""

    window: int = 0  # BPTT windows trained
    carry: Any = None  # hidden state or key/value cache, detached, carried into the next window
    loss_sum: float = 0.0  # token losses
    correct: int | None = 0  # top-1 hits; None on an adaptive softmax (not computed)
    count: int = 0  # tokens


def train_epoch(model, opt, data, s: TrainSettings, step: int, total: int, desc: str,
                info: Dist = SINGLE, progress: EpochProgress | None = None, on_step=None):
    """One pass over the (B, L) training stream (this rank's columns), from ``progress`` on
    (a resumed epoch); ``on_step(step, progress)`` runs after every step. Returns (metrics, step)."""
    inner = getattr(model, "module", model)  # the model inside DistributedDataParallel
    model.train()
    p = progress or EpochProgress()
    n = n_windows(data, s.bptt) if not s.limit_batches else min(s.limit_batches, n_windows(data, s.bptt))
    device, before, t0 = data.device, p.count, time.perf_counter()
    bar = tqdm(itertools.islice(windows(data, s.bptt), p.window, n), total=n, initial=p.window,
               desc=desc, leave=False, disable=not info.is_main)
    guard = FiniteGuard(desc)  # a NaN or infinite loss or gradient norm stops the run
    for x, y in bar:
        for group in opt.param_groups:
            group["lr"] = get_lr(step, total, s)
        with autocast(device):
            logits, loss, state = model(x, y, p.carry)  # (B, T, V), or None for an adaptive softmax
        p.carry = inner.detach_state(state)  # truncated BPTT: keep the values, drop the graph
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip)
        opt.step()
        guard.check(loss, norm, step + 1)
        step += 1
        p.window += 1
        p.loss_sum += loss.item() * y.numel()
        if logits is not None and p.correct is not None:
            p.correct += (logits.argmax(-1) == y).sum().item()
        else:
            p.correct = None  # not computed on the adaptive softmax's training path
        p.count += y.numel()
        if p.window % 20 == 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if on_step is not None:
            on_step(step, p)
    seconds = time.perf_counter() - t0
    sums = reduce_sum({"loss": p.loss_sum, "count": p.count, "new": p.count - before,
                       "correct": p.correct or 0}, info)
    mean = sums["loss"] / sums["count"]
    metrics = {"loss": mean, "ppl": perplexity(mean), "tokens_per_s": sums["new"] / seconds}
    if p.correct is not None:
        metrics["acc"] = sums["correct"] / sums["count"]
    return metrics, step


def make_optimizer(model: torch.nn.Module, s: TrainSettings) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and (tied) embeddings, as in nanoGPT."""
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 and "embed" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": s.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=s.lr, **speed.adam_options(model.parameters()))


def save_resume(resume: Resume, model, opt, run, step: int, progress: EpochProgress,
                **position) -> None:
    """A resume checkpoint, when one is due at ``step``: the shared state, and this rank's RNG
    and progress through the epoch."""
    if resume.due(step):
        resume.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                     "run": run.state_dict() if run is not None else {}, **position},
                    {"rng": rng_state(), "progress": dict(vars(progress))})


def train(
    cfg: TrainTextConfig,
    data_dir: str | Path,
    model_out: str | Path,
    run=None,
    name: str = "train_text",
    newline: str = "line",
    resume: Resume | None = None,
) -> dict[str, float]:
    """Train one model on the prepared corpus in ``data_dir``; save the best checkpoint
    to ``model_out``; log per-epoch metrics to ``run`` (a tracking Run) if given.
    ``newline`` (how the corpus was tokenized) is kept in the checkpoint for the
    detokenizer. Under torchrun each rank trains on its share of the B columns
    (DistributedDataParallel); with ``resume`` a killed run continues from its last
    resume checkpoint. Returns the best validation metrics."""
    s = cfg.train
    info, device = distributed.init(s.device)
    resume = resume or Resume()
    if s.batch_size % info.world_size or s.eval_batch_size < info.world_size:
        raise ValueError(f"{name}: batch_size {s.batch_size} must be a multiple of the "
                         f"{info.world_size} ranks, and eval_batch_size at least that many")
    gen = seed_everything(s.seed)  # the data generator (word dropout): the same on every rank
    vocab = load_vocab(data_dir)
    train_ids, val_ids = load_split(data_dir, "train"), load_split(data_dir, "val")
    require_tokens(data_dir, "train", train_ids, s.batch_size * (s.bptt + 1),
                   f"training window: batch_size {s.batch_size} x (bptt {s.bptt} + 1)")
    require_tokens(data_dir, "val", val_ids, s.eval_batch_size * 2,
                   f"validation window: eval_batch_size {s.eval_batch_size} x 2")
    counts = torch.bincount(train_ids, minlength=len(vocab))  # (V,) training counts
    val_data = shard(batchify(val_ids, s.eval_batch_size), info).to(device)
    model_cfg, model = build_model(cfg.arch, cfg.model, list(vocab.itos), f"{name}.model")
    model.to(device)
    ddp = distributed.wrap(model, info, device)
    distributed.seed_noise(s.seed, info)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if info.is_main:
        log.info("%s: %s, %.2fM trainable parameters, vocab %d, %d rank(s) on %s", name, cfg.arch,
                 n_params / 1e6, len(vocab), info.world_size, device)
    opt = make_optimizer(model, s)
    per_epoch = n_windows(batchify(train_ids, s.batch_size), s.bptt)
    if s.limit_batches:
        per_epoch = min(per_epoch, s.limit_batches)
    total = s.epochs * per_epoch

    at = resume.state or {"epoch": 1, "step": 0, "best": None}  # where a killed run stopped
    if resume.state:
        model.load_state_dict(at["model"])
        opt.load_state_dict(at["optimizer"])
        set_rng_state(resume.local["rng"])
        if run is not None:
            run.load_state_dict(at["run"])
    step, best = at["step"], at["best"]  # best: epoch, val metrics and weights of the best epoch
    for epoch in range(at["epoch"], s.epochs + 1):
        resumed = resume.state is not None and epoch == at["epoch"]
        epoch_gen = at["epoch_gen"] if resumed else gen.get_state()  # this epoch's word dropout
        gen.set_state(epoch_gen)
        ids = replace_rare(train_ids, counts, s.unk_alpha, vocab.unk_id, gen)  # (N,), every rank
        train_data = shard(batchify(ids, s.batch_size), info).to(device)  # (B / ranks, L)
        progress = EpochProgress(**to_device(resume.local["progress"], device)) if resumed else None
        on_step = functools.partial(save_resume, resume, model, opt, run, epoch=epoch,
                                    epoch_gen=epoch_gen, best=best)
        tr, step = train_epoch(ddp, opt, train_data, s, step, total, f"{name} epoch {epoch}",
                               info, progress, on_step)
        with autocast(device):
            va = evaluate_stream(model, val_data, s.bptt, s.limit_batches, desc="val", info=info)
        metrics = {**{f"train/{k}": v for k, v in tr.items()},
                   **{f"val/{k}": v for k, v in va.items()},
                   "lr": opt.param_groups[0]["lr"]}
        if info.is_main:
            log.info("%s epoch %d: train ppl %.1f, val ppl %.1f, %.0f tok/s", name, epoch,
                     tr["ppl"], va["ppl"], tr["tokens_per_s"])
        if run is not None:
            run.log(metrics, step=epoch)
        if best is None or va["loss"] < best["val"]["loss"]:
            best = {"epoch": epoch, "val": va,
                    "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        elif epoch - best["epoch"] >= s.patience:
            if info.is_main:
                log.info("%s: no better val loss for %d epochs, stopping", name, s.patience)
            break
    run_id = getattr(run, "run_id", None)
    if info.is_main:  # the best epoch's weights: the checkpoint, and an MLflow model if tracked
        model.load_state_dict(best["state_dict"])
        save_checkpoint(model_out, model, model_cfg, cfg.arch, list(vocab.itos),
                        epoch=best["epoch"], val_loss=best["val"]["loss"], newline=newline,
                        unk_alpha=s.unk_alpha)  # no run id: the same bytes for the same model
        if run_id:  # next-token log-probs, of a model fresh from the checkpoint
            from genmodels.tracking import tag_checkpoint

            tag_checkpoint(run_id, model_out)  # how evaluate and render find this run
            from genmodels.export import NextTokenLogProbs, log_model, text_example
            from genmodels.model_registry import register
            from genmodels.text.registry import load_checkpoint

            best_model = load_checkpoint(model_out)[0]
            logged = log_model(NextTokenLogProbs(best_model), text_example(len(vocab), length=s.bptt))
            register(name, "text", logged.model_uri, model_out)  # genmodels-<name>@candidate
    summary = {"best/epoch": best["epoch"], "best/val_loss": best["val"]["loss"],
               "best/val_ppl": best["val"]["ppl"], "params": n_params}
    if run is not None:
        run.log(summary)
    resume.finish()
    return summary
