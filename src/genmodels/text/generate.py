"""Generation from text: a prompt in, readable text out (``complete``), and its speed.

The models' generation loop is ``LanguageModel.stream`` (``model.py``); the draw is in
``sampling.py``.
"""

from __future__ import annotations

import logging
import math
import time

import torch

from genmodels.text.model import LanguageModel
from genmodels.text.sampling import cut_prompt

log = logging.getLogger(__name__)


def tokens_per_second(
    model: LanguageModel, n_tokens: int = 2000, temperature: float = 1.0, repeats: int = 3,
    seed: int = 0, batch: int = 1,
) -> float:
    """Generation speed, one step per token, best of ``repeats``: ``batch`` streams side by
    side (B = 1: a single stream; B > 1: N samples drawn at once, as evaluate_text does)."""
    gen = torch.Generator().manual_seed(seed)
    start = torch.zeros(batch, 1, dtype=torch.long)
    model.generate(start, 20, temperature, generator=gen)  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.generate(start, n_tokens, temperature, generator=gen)
        best = min(best, time.perf_counter() - t0)
    return batch * n_tokens / best


def encode_prompt(prompt: str, stoi: dict[str, int], newline: str = "line",
                  limit: int | None = None) -> list[int]:
    """Prompt text -> ids, its last ``limit`` tokens if given (``cut_prompt``). Words outside
    the vocabulary become ``<unk>`` with a warning naming them; an empty prompt is
    unprompted generation (it starts after a ``<nl>``)."""
    return encode_tokens(prompt_tokens(prompt, newline, limit), stoi)


def prompt_tokens(prompt: str, newline: str = "line", limit: int | None = None) -> list[str]:
    """The prompt's tokens as typed (lowercased), its last ``limit`` if given."""
    from genmodels.data.text import tokenize

    tokens = tokenize(prompt, newline)
    return tokens if limit is None else cut_prompt(tokens, limit)


def encode_tokens(tokens: list[str], stoi: dict[str, int]) -> list[int]:
    """Tokens -> ids: see :func:`encode_prompt`."""
    from genmodels.data.text import NL, UNK

    unknown = list(dict.fromkeys(t for t in tokens if t not in stoi))
    if unknown:
        log.warning("prompt words not in the vocabulary, read as %s: %s", UNK, ", ".join(unknown))
    return [stoi.get(t, stoi[UNK]) for t in tokens] or [stoi[NL]]


def complete(
    model: LanguageModel,
    itos: list[str],
    prompt: str,
    n_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    newline: str = "line",
    write=None,
    casing: dict[str, str] | None = None,
) -> str | None:
    """Prompt text in, prompt plus ``n_tokens`` generated tokens out, as readable text
    (it stops early at ``<eos>``). A prompt longer than the model's ``prompt_limit`` is cut
    to its last tokens, with a warning, and only the part read is given back.

    With ``write`` (e.g. ``sys.stdout.write``) the text goes there piece by piece, each
    token's as soon as it is drawn (``Detokenizer``; a quote waits for the next token),
    nothing is kept, and the return is None; the pieces joined are the string returned
    without it. ``casing`` (the
    checkpoint's) gives names their capitals. The prompt is echoed as typed: a word outside
    the vocabulary reads as ``<unk>`` to the model (with a warning) but is shown as written.
    """
    from genmodels.data.text import EOS
    from genmodels.text.detokenize import Detokenizer

    stoi = {t: i for i, t in enumerate(itos)}
    tokens = prompt_tokens(prompt, newline, model.prompt_limit)
    ids = encode_tokens(tokens, stoi)
    detok, pieces = Detokenizer(newline, casing), []
    put = write or pieces.append
    if tokens:  # echoed as typed: a word outside the vocabulary is read as <unk>, not shown so
        put("".join(detok.feed(t) for t in tokens))
    new = model.stream(torch.tensor([ids]), n_tokens, temperature, top_k, top_p, generator)
    for nxt in new:
        token = itos[nxt.item()]
        if token == EOS:
            break
        put(detok.feed(token))
    if held := detok.flush():  # a quote held back to see whether it opens or closes
        put(held)
    new.close()  # (at <eos>: restores the thread count and training mode now)
    return None if write else "".join(pieces)

