"""Data-parallel training with PyTorch's own engine (``torchrun`` + DistributedDataParallel).

Every training stage runs unchanged as ``python stages/x.py`` (one process) or
``torchrun --nproc_per_node=N stages/x.py`` (one process per device; several
machines with ``--nnodes``). torchrun sets RANK, WORLD_SIZE and LOCAL_RANK;
:func:`init` reads them and joins the process group (NCCL on CUDA, gloo on the
CPU). Without them every function here is a no-op, so one code path serves both.

The contract that makes N ranks equal one process with the global batch:

- every rank draws the same data order from the same seeded generator and
  takes its contiguous share of each global batch (:func:`shard`);
- gradients are averaged across ranks before each optimizer step: by
  DistributedDataParallel (:func:`wrap`) where the loop calls the model's
  forward, or by :class:`GradientAverager` for the image models, whose
  ``train_step`` runs its own backward passes and optimizers (the VAE-GAN takes
  ``torch.autograd.grad`` for two losses, which DDP does not support);
- metric sums are added across ranks (:func:`reduce_sum`) before they are divided;
- only rank 0 writes files and MLflow runs (``tracking.training_run`` gives the
  others a ``NullRun``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from genmodels.device import pick_device


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the device index on this machine

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()  # one process: the default of every function that takes a Dist


def from_env() -> Dist:
    """torchrun's RANK, WORLD_SIZE, LOCAL_RANK (one process when they are unset)."""
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def init(device: str = "auto") -> tuple[Dist, torch.device]:
    """Join the process group if launched with several ranks (once); pick this rank's device."""
    info = from_env()
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(chosen)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return info, chosen


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[tuple[Dist, torch.device]]:
    """:func:`init` on entry; leave the process group on exit, also after an error."""
    try:
        yield init(device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def seed_noise(seed: int, info: Dist) -> None:
    """Give each rank its own dropout and sampling noise once the model is built.

    The data order and the initial weights come from the shared seed; with the
    same noise seed too, every rank would draw the same dropout masks.
    """
    if info.enabled:
        torch.manual_seed(seed + info.rank)


def wrap(model: nn.Module, info: Dist, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` with several ranks (it broadcasts rank 0's weights)."""
    if not info.enabled:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


class GradientAverager:
    """Average each optimizer's gradients across ranks just before it steps: DDP's all-reduce,
    done at the step, for models whose ``train_step`` runs its own backward passes.

    Each rank's loss is a mean over its own share of the global batch, so the global batch's
    mean gradient is the sum of the ranks' gradients weighted by their shares. Set
    :attr:`share` (this rank's images / the batch's) before each step: shares differ when
    the batch does not split evenly; with even shares this is the plain average.
    """

    def __init__(self, optimizers: Iterable[torch.optim.Optimizer], info: Dist):
        self.share = 1.0 / info.world_size
        if info.enabled:
            for opt in optimizers:
                opt.register_step_pre_hook(self._average)

    def _average(self, opt: torch.optim.Optimizer, args, kwargs) -> None:
        grads = [p.grad for group in opt.param_groups for p in group["params"]
                 if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective, not one per tensor
        flat *= self.share
        dist.all_reduce(flat)
        for g, avg in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(avg.view_as(g))


def broadcast_(tensors: Iterable[torch.Tensor], info: Dist) -> None:
    """Copy rank 0's values into these tensors on every rank (weights at the start; batch-norm
    statistics before an evaluation, so that every rank evaluates rank 0's model)."""
    if info.enabled:
        for t in tensors:
            dist.broadcast(t, src=0)


def shard(batch: torch.Tensor, info: Dist) -> torch.Tensor:
    """This rank's contiguous share of a global batch along dim 0 (indices, images, or the
    columns of a batchified token stream); shares differ by at most one row."""
    if not info.enabled:
        return batch
    return batch.tensor_split(info.world_size)[info.rank]


def reduce_sum(values: Mapping[str, float], info: Dist) -> dict[str, float]:
    """Each value summed over the ranks (float64, so counts stay exact)."""
    if not info.enabled:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return {k: t[i].item() for i, k in enumerate(keys)}


def _comm_device() -> torch.device:
    """NCCL reduces CUDA tensors only; gloo CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_objects(obj: Any, info: Dist) -> list[Any]:
    """Every rank's ``obj``, in rank order (picklable objects: tensors, dicts, lists)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: Dist) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def autocast(device: torch.device):
    """bf16 autocast on CUDA (tensor cores; bf16 keeps fp32's range, so no loss scaling)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
