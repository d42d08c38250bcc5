"""The language-model contract, written once for every model.

Every model here shares one contract, ``forward(idx, targets=None, state=None) ->
(logits, loss, state)``, where ``state`` is what a model carries from one call to
the next: the hidden state of a recurrent model, the key/value cache of the
Transformer. So generation feeds the prompt once and then costs one step per new
token, never a re-run of the history. :class:`LanguageModel` holds the generation
loop (``stream``, ``generate``); the draw itself is in ``sampling.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from genmodels.text.sampling import (
    READ_CHUNK,
    UNK_ID,
    check_prompt,
    check_sampling,
    cut_prompt,
    never_sample,
    sample_next,
    threads,
)


class LanguageModel(nn.Module):
    """Base class: subclasses define ``forward`` and ``detach_state``, and may define
    ``next_logits`` (cheaper) and ``prompt_limit``."""

    # Prompt tokens a model reads (more are cut, with a warning). A recurrent model could
    # read any length, but what it keeps of a token fades within a few dozen steps
    # (Khandelwal et al. 2018 measured an LSTM LM using ~200 tokens of context, word order
    # only within ~50), and every token costs a step: 1024 keeps all the model uses and
    # bounds the time. The Transformer reads as far back as its cache (``context``).
    prompt_limit: int = 1024

    def next_logits(self, idx: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """Logits (B, V) for the token after ``idx`` (B, T), and the new state. Models that
        can apply their output layer to the last position alone override this."""
        logits, _, state = self(idx, state=state)
        return logits[:, -1], state

    @torch.inference_mode()  # (on a generator: in force while it runs, not between tokens)
    def stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        banned: tuple[int, ...] = (UNK_ID,),
    ):
        """Yield ``max_new_tokens`` new ids (B,), one at a time, continuing ``idx`` (B, T).

        The prompt is cut to its last :attr:`prompt_limit` tokens (``cut_prompt``) and read
        :data:`READ_CHUNK` tokens a call with the state carried, only the last position
        going through the output layer; each new token is then one call on a (B, 1) input.
        Torch runs on one thread until the last token is drawn (or the generator closed).
        Ids in ``banned`` (``<unk>``) are never generated (``never_sample``). Nothing grows
        with the prompt or with the number of tokens.
        """
        check_sampling(temperature, top_k, top_p)
        check_prompt(idx)
        was_training = self.training
        self.eval()
        try:
            idx, state = cut_prompt(idx, self.prompt_limit), None
            # One thread, the prompt included: reading 1024 tokens through nn.LSTM took 2.6 s
            # of CPU on two threads of a busy machine, 0.03 s on one (see ``threads``).
            with threads(1):
                for chunk in idx.split(READ_CHUNK, dim=1):
                    logits, state = self.next_logits(chunk, state)  # (B, V)
                for i in range(max_new_tokens):  # then one small step a token
                    nxt = sample_next(never_sample(logits, banned), temperature, top_k, top_p,
                                      generator)  # (B,)
                    yield nxt
                    if i + 1 < max_new_tokens:
                        logits, state = self.next_logits(nxt[:, None], state)  # (B, V)
        finally:
            self.train(was_training)

    @torch.inference_mode()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        banned: tuple[int, ...] = (UNK_ID,),
    ) -> torch.Tensor:
        """Continue each row of ``idx`` (B, T), T >= 1, by ``max_new_tokens`` tokens: the
        prompt as read (its last :attr:`prompt_limit` tokens at most, T' of them) and the new
        tokens, (B, T' + max_new_tokens). See :meth:`stream`."""
        check_prompt(idx)
        idx = cut_prompt(idx, self.prompt_limit)
        out = idx.new_empty(idx.size(0), idx.size(1) + max_new_tokens)  # filled as drawn
        out[:, : idx.size(1)] = idx
        new = self.stream(idx, max_new_tokens, temperature, top_k, top_p, generator, banned)
        for i, nxt in enumerate(new):
            out[:, idx.size(1) + i] = nxt
        return out
