"""The language models' part of the training loop (``loop.fit``): RNN, LSTM, GRU, Transformer.

Next-token loss at every position of contiguous BPTT windows; the state (hidden
state or key/value cache) is carried from one window to the next and detached,
so gradients stop at the window edge (truncated BPTT); gradients are clipped;
AdamW with linear warm-up then cosine decay; word dropout to ``<unk>`` drawn
anew each epoch; validation after every epoch, and early stopping that keeps
the best epoch's weights.

Under torchrun each rank trains on its share of the B columns of the stream
(``distributed.py``); ``loop.fit`` writes the resume checkpoints that let a
killed run go on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field

from genmodels import distributed, precision, speed
from genmodels.config import Device, as_dict, config
from genmodels.data.text import Vocab
from genmodels.device import seed_everything
from genmodels.distributed import SINGLE, Dist, reduce_sum, shard
from genmodels.export import NextTokenLogProbs, text_example
from genmodels.finite import perplexity
from genmodels.loop import fit
from genmodels.precision import Precision
from genmodels.resume import Resume, to_device
from genmodels.text.data import (
    batchify,
    load_split,
    load_vocab,
    n_windows,
    replace_rare,
    require_tokens,
    windows,
)
from genmodels.text.registry import build_model, load_checkpoint, save_checkpoint
from genmodels.text.scoring import evaluate_stream
from genmodels.tracking import entry_name

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
    # Arithmetic of the training steps (validation is always fp32): auto = bf16 autocast on
    # CUDA and on CPUs with bf16 in hardware (AVX512-BF16, AMX), fp32 elsewhere
    precision: Precision = "auto"

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
    """One rank's running sums through an epoch: what a resume checkpoint keeps of it."""

    carry: Any = None  # hidden state or key/value cache, detached, carried into the next window
    loss_sum: float = 0.0  # token losses
    correct: int | None = 0  # top-1 hits; None on an adaptive softmax (not computed)
    count: int = 0  # tokens


def window_step(model, opt, x: torch.Tensor, y: torch.Tensor, carry, clip: float, lr: float,
                bf16: bool = False):
    """One optimizer step on a (B, T) window with the state carried in: forward (in bf16
    autocast if ``bf16``), backward, clip, AdamW. Returns (logits or None, loss, gradient
    norm, the state detached)."""
    for group in opt.param_groups:
        group["lr"] = lr
    with precision.autocast(x.device, bf16):
        logits, loss, state = model(x, y, carry)  # (B, T, V), or None for an adaptive softmax
    inner = getattr(model, "module", model)  # the model inside DistributedDataParallel
    carry = inner.detach_state(state)  # truncated BPTT: keep the values, drop the graph
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return logits, loss, norm, carry


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


class TextTrainee:
    """A language model for ``loop.fit``: its model, optimizer and token streams."""

    headline = ("train/ppl", "val/ppl", "train/tokens_per_s")

    def __init__(self, cfg: TrainTextConfig, vocab: Vocab, train_ids: torch.Tensor,
                 val_ids: torch.Tensor, device: torch.device, info: Dist = SINGLE,
                 entry: str = "x", newline: str = "line"):
        s = self.s = cfg.train
        self.cfg, self.vocab, self.device, self.info, self.newline = cfg, vocab, device, info, newline
        self.train_ids = train_ids
        self.counts = torch.bincount(train_ids, minlength=len(vocab))  # (V,) training counts
        self.val_data = shard(batchify(val_ids, s.eval_batch_size), info).to(device)
        self.model_cfg, self.model = build_model(cfg.arch, cfg.model, list(vocab.itos),
                                                 f"train_text.{entry}.model")
        self.model.to(device)
        self.ddp = distributed.wrap(self.model, info, device)
        distributed.seed_noise(s.seed, info)
        self.n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.bf16 = precision.uses_bf16(s.precision, device)
        self.tags = {"precision": "bf16" if self.bf16 else "fp32"}
        if info.is_main:
            log.info("%s: %s, %.2fM trainable parameters, vocab %d, %d rank(s) on %s, %s", entry,
                     cfg.arch, self.n_params / 1e6, len(vocab), info.world_size, device,
                     self.tags["precision"])
        self.opt = make_optimizer(self.model, s)
        per_epoch = n_windows(batchify(train_ids, s.batch_size), s.bptt)
        self.steps_per_epoch = min(per_epoch, s.limit_batches) if s.limit_batches else per_epoch
        self.total = s.epochs * self.steps_per_epoch  # steps of the learning-rate schedule
        self.p, self.before, self.best = EpochProgress(), 0, None

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict()}

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])

    def epoch(self, gen, progress):
        s = self.s
        ids = replace_rare(self.train_ids, self.counts, s.unk_alpha, self.vocab.unk_id, gen)
        data = shard(batchify(ids, s.batch_size), self.info).to(self.device)  # (B / ranks, L)
        self.p = EpochProgress(**to_device(progress, self.device)) if progress else EpochProgress()
        self.before = self.p.count  # tokens trained before a resume: not in this run's speed
        self.ddp.train()
        return windows(data, s.bptt)

    def step(self, batch, step):
        x, y = batch
        p = self.p
        logits, loss, norm, p.carry = window_step(self.ddp, self.opt, x, y, p.carry, self.s.clip,
                                                  get_lr(step, self.total, self.s), self.bf16)
        p.loss_sum += loss.item() * y.numel()
        if logits is not None and p.correct is not None:
            p.correct += (logits.argmax(-1) == y).sum().item()
        else:
            p.correct = None  # not computed on the adaptive softmax's training path
        p.count += y.numel()
        return loss, norm

    def progress(self) -> dict:
        return dict(vars(self.p))

    def end_epoch(self, epoch, seconds, run) -> dict[str, float]:
        p, s = self.p, self.s
        sums = reduce_sum({"loss": p.loss_sum, "count": p.count, "new": p.count - self.before,
                           "correct": p.correct or 0}, self.info)
        mean = sums["loss"] / sums["count"]
        tr = {"loss": mean, "ppl": perplexity(mean), "tokens_per_s": sums["new"] / seconds}
        if p.correct is not None:
            tr["acc"] = sums["correct"] / sums["count"]
        # fp32, whatever the training precision: the val loss picks the best epoch and is
        # compared across runs
        va = evaluate_stream(self.model, self.val_data, s.bptt, s.limit_batches, desc="val",
                             info=self.info)
        return {**{f"train/{k}": v for k, v in tr.items()},
                **{f"val/{k}": v for k, v in va.items()},
                "lr": self.opt.param_groups[0]["lr"]}

    def weights(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def finish(self, best) -> dict[str, float]:
        self.model.load_state_dict(best["weights"])  # the best epoch's
        self.best = best
        return {"best/epoch": best["epoch"], "best/val_loss": best["metrics"]["val/loss"],
                "best/val_ppl": best["metrics"]["val/ppl"], "params": self.n_params}

    def save(self, checkpoint: Path) -> None:
        save_checkpoint(checkpoint, self.model, self.model_cfg, self.cfg.arch,
                        list(self.vocab.itos), epoch=self.best["epoch"],
                        val_loss=self.best["metrics"]["val/loss"], newline=self.newline,
                        unk_alpha=self.s.unk_alpha, casing=self.vocab.casing)

    def export(self, checkpoint: Path):  # next-token log-probs, of a model fresh from the file
        model = load_checkpoint(checkpoint)[0]
        return "text", NextTokenLogProbs(model), text_example(len(self.vocab), length=self.s.bptt)


def train(cfg: TrainTextConfig, data_dir: str | Path, checkpoint: str | Path,
          metrics: str | Path | None = None, plots: str | Path | None = None, *,
          stage: str = "train_text", newline: str = "line",
          resume: Resume | None = None) -> dict[str, float]:
    """Train one model on the prepared corpus in ``data_dir``; save the best epoch's
    checkpoint to ``checkpoint``; track the run as ``stage`` (``train_text@<entry>``).
    ``newline`` (how the corpus was tokenized) is kept in the checkpoint for the
    detokenizer. Under torchrun each rank trains on its share of the B columns
    (DistributedDataParallel); with ``resume`` a killed run continues from its last
    resume checkpoint. Returns the run's latest metrics (``best/...`` among them)."""
    s = cfg.train
    info, device = distributed.init(s.device)
    if s.batch_size % info.world_size or s.eval_batch_size < info.world_size:
        raise ValueError(f"{stage}: batch_size {s.batch_size} must be a multiple of the "
                         f"{info.world_size} ranks, and eval_batch_size at least that many")
    gen = seed_everything(s.seed)  # the data generator (word dropout): the same on every rank
    vocab = load_vocab(data_dir)
    train_ids, val_ids = load_split(data_dir, "train"), load_split(data_dir, "val")
    require_tokens(data_dir, "train", train_ids, s.batch_size * (s.bptt + 1),
                   f"training window: batch_size {s.batch_size} x (bptt {s.bptt} + 1)")
    require_tokens(data_dir, "val", val_ids, s.eval_batch_size * 2,
                   f"validation window: eval_batch_size {s.eval_batch_size} x 2")
    trainee = TextTrainee(cfg, vocab, train_ids, val_ids, device, info,
                          entry=entry_name(stage), newline=newline)
    return fit(trainee, stage=stage, epochs=s.epochs, gen=gen, params=as_dict(cfg),
               checkpoint=checkpoint, metrics=metrics, plots=plots, inputs=[data_dir],
               resume=resume, info=info, select="val/loss", patience=s.patience)
