"""Pretrained word vectors from a GloVe-format text file (``word v1 v2 ... vd`` a line)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def load_glove(path: str | Path, itos: list[str], dim: int, seed: int = 0) -> torch.Tensor:
    """An embedding matrix (V, dim) for vocabulary ``itos``.

    Words the file lacks get small random vectors (seeded), and a warning says how many.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    stoi = {w: i for i, w in enumerate(itos)}
    weight = torch.randn(len(itos), dim, generator=torch.Generator().manual_seed(seed)) * 0.1
    found = set()
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            word, *values = line.rstrip("\n").split(" ")
            if len(values) != dim:
                raise ValueError(
                    f"{path}:{n}: expected {dim} numbers after the word (n_embd), got {len(values)}"
                )
            if word in stoi:
                weight[stoi[word]] = torch.tensor([float(v) for v in values])
                found.add(word)
    missing = len(itos) - len(found)
    if missing:
        log.warning("%s: %d of %d vocabulary words have no vector", path, missing, len(itos))
    return weight
