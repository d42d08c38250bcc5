"""Token streams from the prepare_text stage, cut into contiguous BPTT windows.

``batchify`` lays the stream out as B parallel columns, as pytorch/examples'
word_language_model does; window ``i`` then takes rows i .. i+bptt of every
column, so a column's windows follow one another in the text and the state
carried from one window is the right context for the next::

    a g m s        window 0: input [[a b], [g h], ...]  targets [[b c], [h i], ...]
    b h n t        window 1: input [[c d], [i j], ...]  targets [[d e], [j k], ...]
    c i o u
    ...            (stream "a b c d e f g h ..." with B = 4 columns)
"""

from __future__ import annotations

from pathlib import Path

import torch

from genmodels.data.text import Vocab


def load_split(folder: str | Path, split: str) -> torch.Tensor:
    """The token ids (N,) int64 of ``train``/``val``/``test`` in a prepared corpus folder."""
    path = Path(folder) / f"{split}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare_text stage first")
    ids = torch.load(path, weights_only=True)["ids"]
    if ids.dtype != torch.long or ids.dim() != 1:
        raise ValueError(f"{path}: expected a 1-D int64 tensor, got {ids.dtype} {tuple(ids.shape)}")
    return ids


def load_vocab(folder: str | Path) -> Vocab:
    path = Path(folder) / "vocab.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare_text stage first")
    return Vocab.load(path)


def require_tokens(folder: str | Path, split: str, ids: torch.Tensor, need: int, window: str) -> None:
    """Refuse a split shorter than one window: ``ValueError`` naming the corpus and the counts."""
    if ids.numel() < need:
        raise ValueError(f"corpus {folder}: the {split} split has {ids.numel()} tokens, fewer than "
                         f"one {window} ({need}); use a longer corpus or smaller batches")


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N,) -> (B, N // B): B contiguous columns, the remainder dropped."""
    n = ids.numel() // batch_size
    if n < 2:
        raise ValueError(f"{ids.numel()} tokens are too few for batch_size {batch_size}")
    return ids[: n * batch_size].view(batch_size, n)  # (B, L)


def replace_rare(ids: torch.Tensor, counts: torch.Tensor, alpha: float, unk_id: int,
                 generator: torch.Generator) -> torch.Tensor:
    """A copy of ``ids`` (N,) in which each occurrence of a word seen ``c`` times in
    training becomes ``<unk>`` with probability ``alpha / (alpha + c)``.

    Word dropout to ``<unk>`` (Kiperwasser & Goldberg 2016, section 6): when every
    training word is in the vocabulary, ``<unk>`` never occurs in training, and a
    model learns to give it no mass, yet held-out text is full of new words. Rare
    words stand in for them, as in Good-Turing estimation: the share of tokens seen
    once estimates the chance that the next token is new. ``counts`` (V,) are the
    training counts of every id; ``alpha`` 0 returns ``ids`` unchanged.
    """
    if alpha == 0:
        return ids
    p = alpha / (alpha + counts[ids].double())  # (N,)
    drop = torch.rand(ids.shape, generator=generator, dtype=torch.float64) < p
    return torch.where(drop, torch.full_like(ids, unk_id), ids)


def windows(data: torch.Tensor, bptt: int):
    """Yield (x, y), each (B, <=bptt), over a batchified (B, L) stream; y is x shifted by one."""
    for i in range(0, data.size(1) - 1, bptt):
        t = min(bptt, data.size(1) - 1 - i)
        yield data[:, i : i + t], data[:, i + 1 : i + 1 + t]


def n_windows(data: torch.Tensor, bptt: int) -> int:
    return -(-(data.size(1) - 1) // bptt)
