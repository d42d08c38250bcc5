"""Recurrent word-level language models: tanh RNN, LSTM or GRU, one class.

embedding -> dropout -> stacked recurrent layers -> dropout -> projection to the
vocabulary, as in pytorch/examples' word_language_model, with the regularisers of
AWD-LSTM (Merity et al. 2018, "Regularizing and Optimizing LSTM Language Models"),
each a config switch:

- ``locked_dropout``: variational dropout (Gal & Ghahramani 2016): one mask per
  sequence, the same at every time step, on the embeddings and on the outputs;
- ``embed_dropout``: drop whole words from the embedding matrix (Gal & Ghahramani
  2016, section 4.2), so a word's meaning cannot hinge on its own vector alone;
- ``weight_drop``: DropConnect (Wan et al. 2013) on the hidden-to-hidden matrices,
  one mask per window, which regularises the recurrence itself. The projection may share
its weight matrix with the embedding (Press & Wolf 2017, "Using the Output
Embedding to Improve Language Models"; Inan et al. 2017), which needs
``n_hidden == n_embd``. The embedding may instead be loaded, frozen, from a
GloVe-format text file (``embeddings``, with ``tie_weights: false``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from genmodels import speed
from genmodels.config import config
from genmodels.text.embeddings import load_glove
from genmodels.text.model import LanguageModel
from genmodels.text.softmax import OutputLayer, output

Cell = Literal["rnn", "lstm", "gru"]


@config
class RNNConfig:
    cell: Cell = "lstm"  # rnn = Elman tanh RNN
    n_embd: Annotated[int, Field(gt=0)] = 256
    n_hidden: Annotated[int, Field(gt=0)] = 256
    n_layer: Annotated[int, Field(gt=0)] = 1
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5
    locked_dropout: bool = False  # one dropout mask per sequence (variational), not per token
    embed_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0  # whole words of the embedding
    weight_drop: Annotated[float, Field(ge=0, lt=1)] = 0.0  # DropConnect on hidden-to-hidden
    tie_weights: bool = True
    cutoffs: tuple[int, ...] = ()  # adaptive softmax clusters (ids sorted by frequency); () = full
    embeddings: str = ""  # GloVe-format text file; "" = learn the embedding
    vocab_size: Annotated[int, Field(gt=0)] = 1  # set from the data, not from params

    def __post_init__(self):
        if self.tie_weights and self.embeddings:
            raise ValueError("frozen pretrained embeddings are not tied: set tie_weights: false")
        if self.tie_weights and self.n_hidden != self.n_embd:
            raise ValueError(
                f"tie_weights needs n_hidden == n_embd (got {self.n_hidden} and {self.n_embd})"
            )


class RNNLM(LanguageModel):
    """``forward(idx, targets=None, state=None) -> (logits, loss, state)``."""

    def __init__(self, config: RNNConfig, vocab: list[str] | None = None):
        super().__init__()
        self.config = config
        c = config
        self.drop = speed.Dropout(c.dropout)  # nn.Dropout with a faster mask (speed.py)
        self.embed = nn.Embedding(c.vocab_size, c.n_embd)
        rnn_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[c.cell]
        self.rnn = rnn_cls(
            c.n_embd, c.n_hidden, c.n_layer, batch_first=True,
            dropout=c.dropout if c.n_layer > 1 else 0.0,
        )
        self.head = OutputLayer(c.n_hidden, c.vocab_size, c.cutoffs)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        if c.embeddings:
            if vocab is None:
                raise ValueError("pretrained embeddings need the vocabulary")
            self.embed.weight.data.copy_(load_glove(c.embeddings, vocab, c.n_embd))
            self.embed.weight.requires_grad_(False)
        if c.tie_weights:
            # Press & Wolf 2017: one matrix both embeds the input word and scores the output word.
            self.head.weight = self.embed.weight

    def forward(self, idx, targets=None, state=None):
        # idx (B, T) token ids; state: the recurrent state carried from the previous window
        h, state = self.hidden(idx, state)  # (B, T, H)
        return output(self.head, h, targets, self.training) + (state,)

    def next_logits(self, idx, state=None):
        """(B, V) logits after ``idx`` (B, T): the output layer on the last position only."""
        h, state = self.hidden(idx, state)
        return self.head.full_logits(h[:, -1]), state

    def hidden(self, idx, state=None):
        """(B, T) ids -> the inputs of the output layer (B, T, H), and the new state."""
        x = self.dropout(self.embedding(idx))  # (B, T, C)
        if idx.size(1) == 1 and not self.training:
            out, state = self.step(x, state)  # generation: one token a call
        elif self.training and self.config.weight_drop:
            out, state = torch.func.functional_call(self.rnn, self.dropped_weights(), (x, state))
        else:
            out, state = self.rnn(x, state)  # (B, T, H)
        return self.dropout(out), state

    def embedding(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, C); in training, ``embed_dropout`` zeroes whole rows (words)
        of the matrix and scales the rest by 1 / (1 - p).

        One keep/drop draw per word of the vocabulary, applied to the looked-up rows only:
        the same law as masking the (V, C) matrix, without the (V, C) products forward and
        backward (22% of the profiled CPU time of an LSTM step at V = 9,199, C = 256; the
        step's throughput rose only 2%, 13.5k -> 13.8k tokens/s on 2 cores)."""
        p = self.config.embed_dropout
        if not (self.training and p):
            return self.embed(idx)
        w = self.embed.weight
        scale = (torch.rand(w.size(0), device=w.device) >= p).to(w.dtype) / (1 - p)  # (V,)
        return self.embed(idx) * scale[idx].unsqueeze(-1)

    def dropout(self, x: torch.Tensor) -> torch.Tensor:
        """``dropout`` on (B, T, C); with ``locked_dropout`` one mask (B, 1, C) for all T steps."""
        p = self.config.dropout
        if not (self.training and p and self.config.locked_dropout):
            return self.drop(x)
        mask = torch.empty(x.size(0), 1, x.size(2), device=x.device, dtype=x.dtype).bernoulli_(1 - p)
        return x * mask / (1 - p)

    def dropped_weights(self) -> dict[str, torch.Tensor]:
        """The hidden-to-hidden matrices with DropConnect, one mask for this window."""
        p = self.config.weight_drop
        return {name: w * (torch.rand_like(w) >= p) * (1.0 / (1.0 - p))  # rand: ~4x bernoulli_'s speed
                for name, w in self.rnn.named_parameters() if name.startswith("weight_hh")}

    def step(self, x, state):
        """``self.rnn`` on one time step x (B, 1, C), through its cells' own functions.

        Same numbers, made for generation's one call per token: on a CPU nn.LSTM runs
        oneDNN, which prepares its weights on every call, ~0.5 ms at 256 units against
        ~0.05 ms for ``torch.lstm_cell`` (GRU and tanh RNN calls cost ~0.01 ms over their
        cells).
        """
        c = self.config
        lstm = c.cell == "lstm"
        if state is None:
            zeros = x.new_zeros(c.n_layer, x.size(0), c.n_hidden)
            state = (zeros, zeros) if lstm else zeros
        cell = {"rnn": torch.rnn_tanh_cell, "lstm": torch.lstm_cell, "gru": torch.gru_cell}[c.cell]
        h, new = x[:, 0], []  # (B, C)
        for layer, weights in enumerate(self.rnn.all_weights):  # [w_ih, w_hh, b_ih, b_hh]
            s = cell(h, (state[0][layer], state[1][layer]) if lstm else state[layer], *weights)
            h = s[0] if lstm else s  # (B, H), the next layer's input
            new.append(s)
        if lstm:
            return h[:, None], (torch.stack([s[0] for s in new]), torch.stack([s[1] for s in new]))
        return h[:, None], torch.stack(new)

    @staticmethod
    def detach_state(state):
        """Cut the graph between BPTT windows, keep the values (``repackage_hidden``)."""
        if state is None:
            return None
        if isinstance(state, torch.Tensor):
            return state.detach()
        return tuple(s.detach() for s in state)
