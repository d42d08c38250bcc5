"""A small decoder-only Transformer (Vaswani et al. 2017; GPT-style pre-norm blocks
as in nanoGPT) with rotary positions and a key/value cache that is also its state.

Positions are rotary (RoPE, Su et al. 2021): a query and a key are rotated by
their absolute positions, so their dot product depends only on the distance
between them. A cache of past keys can therefore be cut to its last ``context``
entries without recomputing anything, which gives three things at once:

- generation costs one step per new token for ever, with a fixed window;
- like the recurrent models, the Transformer carries its state (the cache,
  detached) from one training window to the next: the segment-level memory of
  Transformer-XL (Dai et al. 2019), so every position sees up to ``context``
  earlier tokens even at the start of a window;
- running a sequence at once or token by token gives the same logits.

The state is ``(pos, [(k, v) per layer])``: ``pos`` is the absolute position of
the next token, ``k`` and ``v`` are ``(B, nh, <=context, hs)``.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from genmodels import speed
from genmodels.config import config
from genmodels.text.model import LanguageModel
from genmodels.text.softmax import OutputLayer, output


@config
class TransformerConfig:
    n_embd: Annotated[int, Field(gt=0)] = 256
    n_head: Annotated[int, Field(gt=0)] = 4
    n_layer: Annotated[int, Field(gt=0)] = 2
    context: Annotated[int, Field(gt=0)] = 128  # past tokens kept in the cache
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    tie_weights: bool = True  # Press & Wolf 2017
    # Training only: each row keeps a random share of the carried cache (see ``memory_mask``),
    # so the model also learns to predict from a short history, as generation starts with none
    random_memory: bool = True
    # A learned key/value every query attends to, before the real ones (see ``SelfAttention``),
    # so that a run of one token repeated from a cold start is not read as that token once
    sink: bool = False
    cutoffs: tuple[int, ...] = ()  # adaptive softmax clusters (ids sorted by frequency); () = full
    vocab_size: Annotated[int, Field(gt=0)] = 1  # set from the data, not from params

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError("rotary positions need an even head size (n_embd / n_head)")


def rotary(pos: torch.Tensor, head_size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE's angles ``pos * 10000^(-2i/hs)`` (Su et al. 2021, eq. 34) for ``pos`` (T,), the
    absolute positions, as (cos, sin), each (T, hs/2). Computed once per call and shared
    by every layer's queries and keys (at one token a step this table cost as much as
    the attention)."""
    half = head_size // 2
    # float64 angles: positions grow without bound while a state is carried
    freqs = 10000.0 ** (-torch.arange(half, dtype=torch.float64, device=pos.device) / half)
    angle = pos.to(torch.float64)[:, None] * freqs[None, :]  # (T, hs/2)
    return angle.cos().to(dtype), angle.sin().to(dtype)


def rotate(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate the feature pairs (i, i + hs/2) of ``x`` (B, nh, T, hs) by ``rotary``'s angles."""
    cos, sin = rope
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def memory_mask(B: int, T: int, P: int, device) -> torch.Tensor:
    """Attention mask (B, 1, T, P + T), True = attend, in which row b keeps only the last
    ``keep_b`` of the P cached keys, ``keep_b`` uniform in 0..P, and the causal window.

    Why: carried from window to window, the cache is always full in training, so without
    this every training position sees at least P earlier tokens. Generation starts with
    an empty cache, a context the model never met: its first predictions after a prompt
    were mostly <nl> and punctuation (test perplexity 1,207 at the first token of a cold
    start against 56 with a warm cache), and the samples fed on themselves. Dropping a
    random part of the memory in training (a "memory dropout", in the spirit of the
    random-length segments of Transformer-XL, Dai et al. 2019) shows every history
    length from 0 to P + T; evaluation and generation keep the whole cache.
    """
    keep = torch.randint(0, P + 1, (B, 1, 1, 1), device=device)  # (B, 1, 1, 1)
    col = torch.arange(P + T, device=device)  # key index: 0..P-1 cached, P.. this window
    row = torch.arange(T, device=device)[:, None]  # (T, 1) query index
    cached = (col < P) & (col >= P - keep)  # (B, 1, 1, P + T)
    causal = (col >= P) & (col <= P + row)  # (T, P + T)
    return cached | causal


class SelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head = config.n_head
        self.context = config.context
        self.qkv = speed.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = speed.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout
        self.resid_drop = speed.Dropout(config.dropout)
        hs = config.n_embd // config.n_head
        # The sink (Xiao et al. 2024, "Efficient Streaming Language Models with Attention
        # Sinks", a learned sink; also Sun et al. 2024): one key and value per head, not
        # rotated, so every query meets it at no distance. Why: with rotary positions only,
        # attention cannot tell "<nl>" from "<nl> <nl> <nl>" at the start of a stream (each
        # query averages identical values, so every layer's output is the same at every
        # position). From a cold start the model gave <nl> the same 45% after 1 or 12 line
        # breaks, and unprompted samples at T = 0.5 opened with a dozen blank lines. With a
        # sink in the average, the share each real key gets shrinks as the run grows.
        self.sink = nn.Parameter(torch.zeros(2, config.n_head, 1, hs)) if config.sink else None

    def forward(self, x, rope, cache=None, mask=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        q, k = rotate(q, rope), rotate(k, rope)  # (B, nh, T, hs)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)  # (B, nh, P + T, hs)
            v = torch.cat([cache[1], v], dim=2)
        P = k.size(2) - T
        if mask is None:
            # query i (absolute P + i) sees the P cached keys and keys 0..i of this window
            mask = None if T == 1 else torch.ones(T, P + T, dtype=torch.bool, device=x.device).tril(P)
        new_cache = (k[:, :, -self.context :], v[:, :, -self.context :])  # the sink is not cached
        if self.sink is not None:  # key/value 0 is the sink: (B, nh, 1 + P + T, hs)
            k = torch.cat([self.sink[0].expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([self.sink[1].expand(B, -1, -1, -1), v], dim=2)
            if mask is not None:  # every query attends to it
                mask = torch.cat([mask.new_ones(*mask.shape[:-1], 1), mask], dim=-1)
        y = speed.scaled_dot_product_attention(  # F.scaled_dot_product_attention, faster dropout
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y)), new_cache


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            speed.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            speed.Linear(4 * config.n_embd, config.n_embd),
            speed.Dropout(config.dropout),
        )

    def forward(self, x, rope, cache=None, mask=None):
        a, cache = self.attn(self.ln1(x), rope, cache, mask)
        x = x + a
        return x + self.mlp(self.ln2(x)), cache


class TransformerLM(LanguageModel):
    """``forward(idx, targets=None, state=None) -> (logits, loss, state)``."""

    def __init__(self, config: TransformerConfig, vocab: list[str] | None = None):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = speed.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = OutputLayer(config.n_embd, config.vocab_size, config.cutoffs, bias=False)
        self.apply(self._init_weights)
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        self.head.reset_clusters()
        for name, p in self.named_parameters():  # GPT-2: scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))
        if config.tie_weights:
            self.head.weight = self.embed.weight

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)

    @property
    def prompt_limit(self) -> int:
        """Prompt tokens read: the cache's size. A new token attends to the last ``context``
        keys only; what lay further back could reach it only through the keys of deeper
        layers (Transformer-XL's reach of n_layer x context), faintly, and at the cost of
        reading all of it."""
        return self.config.context

    def forward(self, idx, targets=None, state=None):
        h, state = self.hidden(idx, state)
        logits, loss = output(self.head, h, targets, self.training)  # (B, T, V)
        return logits, loss, state

    def next_logits(self, idx, state=None):
        """(B, V) logits after ``idx`` (B, T): the output layer on the last position only."""
        h, state = self.hidden(idx, state)
        return self.head.full_logits(h[:, -1]), state

    def hidden(self, idx, state=None):
        """(B, T) ids -> the inputs of the output layer (B, T, C), and the new state."""
        B, T = idx.shape
        start, caches = state if state is not None else (0, [None] * len(self.blocks))
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.drop(self.embed(idx))  # (B, T, C)
        rope = rotary(pos, self.config.n_embd // self.config.n_head, x.dtype)
        mask = None
        if self.training and self.config.random_memory and caches[0] is not None:
            mask = memory_mask(B, T, caches[0][0].size(2), idx.device)
        new_caches = []
        for block, cache in zip(self.blocks, caches, strict=True):
            x, cache = block(x, rope, cache, mask)
            new_caches.append(cache)
        return self.ln_f(x), (start + T, new_caches)

    @staticmethod
    def detach_state(state):
        if state is None:
            return None
        pos, caches = state
        return pos, [(k.detach(), v.detach()) for k, v in caches]
