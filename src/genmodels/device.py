"""Pick the compute device automatically: CUDA, then Apple's MPS, else the CPU."""

from __future__ import annotations

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """``"auto"`` picks ``cuda``, ``mps`` or ``cpu``; anything else is taken as given."""
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNGs and return a CPU generator seeded the same way."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
