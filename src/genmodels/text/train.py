"""One training loop for every language model (RNN, LSTM, GRU, Transformer).

Next-token loss at every position of contiguous BPTT windows; the state (hidden
state or key/value cache) is carried from one window to the next and detached,
so gradients stop at the window edge (truncated BPTT); gradients are clipped;
AdamW with linear warm-up then cosine decay; validation after every epoch, and
early stopping that keeps the best checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field
from tqdm.auto import tqdm

from genmodels.config import config
from genmodels.device import pick_device, seed_everything
from genmodels.text.data import (
    batchify,
    load_split,
    load_vocab,
    n_windows,
    replace_rare,
    windows,
)
from genmodels.text.generate import LanguageModel
from genmodels.text.registry import build_model, save_checkpoint

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
    max_batches: Annotated[int, Field(ge=0)] = 0  # per epoch and per evaluation; 0 = all (smoke runs)
    seed: int = 0
    device: str = "cpu"


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


@torch.no_grad()
def evaluate_stream(
    model: LanguageModel, data: torch.Tensor, bptt: int, max_batches: int = 0, desc: str = "eval"
) -> dict[str, float]:
    """Mean next-token loss, perplexity, top-1 and top-5 accuracy over a batchified (B, L) stream,
    the state carried across windows."""
    model.eval()
    total_loss, top1, top5, count, state = 0.0, 0, 0, 0, None
    n = n_windows(data, bptt) if not max_batches else min(max_batches, n_windows(data, bptt))
    for i, (x, y) in enumerate(tqdm(windows(data, bptt), total=n, desc=desc, leave=False)):
        if max_batches and i >= max_batches:
            break
        logits, loss, state = model(x, y, state)  # (B, T, V)
        total_loss += loss.item() * y.numel()
        best5 = logits.topk(5, dim=-1).indices  # (B, T, 5)
        top1 += (best5[..., 0] == y).sum().item()
        top5 += (best5 == y[..., None]).any(-1).sum().item()
        count += y.numel()
    mean = total_loss / count
    return {"loss": mean, "ppl": math.exp(mean), "acc": top1 / count, "top5": top5 / count}


def train_epoch(model, opt, data, s: TrainSettings, step: int, total: int, desc: str):
    """One pass over the (B, L) training stream; returns (metrics, step)."""
    model.train()
    state, total_loss, correct, count = None, 0.0, 0, 0
    n = n_windows(data, s.bptt) if not s.max_batches else min(s.max_batches, n_windows(data, s.bptt))
    t0 = time.perf_counter()
    bar = tqdm(windows(data, s.bptt), total=n, desc=desc, leave=False)
    for i, (x, y) in enumerate(bar):
        if s.max_batches and i >= s.max_batches:
            break
        for group in opt.param_groups:
            group["lr"] = get_lr(step, total, s)
        state = model.detach_state(state)  # truncated BPTT: keep the values, drop the graph
        logits, loss, state = model(x, y, state)  # (B, T, V), or None for an adaptive softmax
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip)
        opt.step()
        step += 1
        total_loss += loss.item() * y.numel()
        if logits is not None:
            correct += (logits.argmax(-1) == y).sum().item()
        else:
            correct = None  # not computed on the adaptive softmax's training path
        count += y.numel()
        if i % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - t0
    mean = total_loss / count
    metrics = {"loss": mean, "ppl": math.exp(mean), "tokens_per_s": count / seconds}
    if correct is not None:
        metrics["acc"] = correct / count
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
    return torch.optim.AdamW(groups, lr=s.lr)


def train(
    cfg: TrainTextConfig,
    data_dir: str | Path,
    model_out: str | Path,
    run=None,
    name: str = "train_text",
    newline: str = "line",
) -> dict[str, float]:
    """Train one model on the prepared corpus in ``data_dir``; save the best checkpoint
    to ``model_out``; log per-epoch metrics to ``run`` (a tracking Run) if given.
    ``newline`` (how the corpus was tokenized) is kept in the checkpoint for the
    detokenizer. Returns the best validation metrics."""
    s = cfg.train
    gen = seed_everything(s.seed)
    device = pick_device(s.device)
    vocab = load_vocab(data_dir)
    train_ids = load_split(data_dir, "train")
    counts = torch.bincount(train_ids, minlength=len(vocab))  # (V,) training counts
    train_data = batchify(train_ids, s.batch_size).to(device)  # (B, L)
    val_data = batchify(load_split(data_dir, "val"), s.eval_batch_size).to(device)
    model_cfg, model = build_model(cfg.arch, cfg.model, list(vocab.itos), f"{name}.model")
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("%s: %s, %.2fM trainable parameters, vocab %d", name, cfg.arch, n_params / 1e6, len(vocab))
    opt = make_optimizer(model, s)
    per_epoch = n_windows(train_data, s.bptt)
    if s.max_batches:
        per_epoch = min(per_epoch, s.max_batches)
    total, step = s.epochs * per_epoch, 0
    best, best_epoch = None, -1
    for epoch in range(1, s.epochs + 1):
        if s.unk_alpha:
            ids = replace_rare(train_ids, counts, s.unk_alpha, vocab.unk_id, gen)
            train_data = batchify(ids, s.batch_size).to(device)
        tr, step = train_epoch(model, opt, train_data, s, step, total, f"{name} epoch {epoch}")
        va = evaluate_stream(model, val_data, s.bptt, s.max_batches, desc="val")
        metrics = {**{f"train/{k}": v for k, v in tr.items()},
                   **{f"val/{k}": v for k, v in va.items()},
                   "lr": opt.param_groups[0]["lr"]}
        log.info("%s epoch %d: train ppl %.1f, val ppl %.1f, %.0f tok/s", name, epoch,
                 tr["ppl"], va["ppl"], tr["tokens_per_s"])
        if run is not None:
            run.log(metrics, step=epoch)
        if best is None or va["loss"] < best["loss"]:
            best, best_epoch = va, epoch
            save_checkpoint(model_out, model, model_cfg, cfg.arch, list(vocab.itos),
                            epoch=epoch, val_loss=va["loss"], newline=newline,
                            run_id=getattr(run, "run_id", None))
        elif epoch - best_epoch >= s.patience:
            log.info("%s: no better val loss for %d epochs, stopping", name, s.patience)
            break
    if getattr(run, "run_id", None):  # the best model as an MLflow model: next-token log-probs
        from genmodels.export import NextTokenLogProbs, log_model, text_example
        from genmodels.text.registry import load_checkpoint

        best_model = load_checkpoint(model_out)[0]
        log_model(NextTokenLogProbs(best_model), text_example(len(vocab), length=s.bptt))
    summary = {"best/epoch": best_epoch, "best/val_loss": best["loss"], "best/val_ppl": best["ppl"],
               "params": n_params}
    if run is not None:
        run.log(summary)
    return summary
