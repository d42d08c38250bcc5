"""The mixture that ``ensemble_text`` scores, as one model that generates.

    p(w_t | history) = sum_m lambda_m p_m(w_t | history)      (Jelinek & Mercer 1980)

with the weights ``lambda`` that ``ensemble_text`` chose on the validation split. Each
member reads the history with its own state (an LSTM's hidden state, a Transformer's
key/value cache), so one step of the mixture is one step of each member, and the
sampler draws from the mixed distribution as from any model's: temperature, top-k and
top-p apply to the mixture, and ``<unk>`` is never drawn.

    genmodels generate --model mix --corpus sherlock --prompt "holmes"   (``cli.py``)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from genmodels.checkpoints import CheckpointError
from genmodels.text.model import LanguageModel


class MixtureLM(LanguageModel):
    """Two or more trained language models over one vocabulary, mixed with fixed weights.
    For scoring and generation only: nothing here trains it."""

    def __init__(self, members: Sequence[LanguageModel], weights: Sequence[float]):
        super().__init__()
        if len(members) < 2 or len(members) != len(weights):
            raise ValueError(f"a mixture needs two or more models and one weight each, got "
                             f"{len(members)} models and {len(weights)} weights")
        if not all(w > 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
            raise ValueError(f"mixture weights must be positive and sum to 1, got {list(weights)}")
        self.members = nn.ModuleList(members)
        self.register_buffer("log_weights", torch.tensor(weights, dtype=torch.float64).log().float())
        self.prompt_limit = min(m.prompt_limit for m in members)  # what every member reads

    def mix(self, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """log sum_m lambda_m softmax(logits_m): each member's (..., V) logits normalised
        first (in float32: a bf16 member's log-probabilities would lose the rare words),
        then mixed in log space, (..., V)."""
        logp = torch.stack([torch.log_softmax(z.float(), -1) for z in logits])  # (M, ..., V)
        w = self.log_weights.view(-1, *[1] * (logp.dim() - 1))  # (M, 1, ..., 1)
        return torch.logsumexp(logp + w, dim=0)

    def forward(self, idx, targets=None, state=None):
        # idx (B, T); state: one state per member (None: fresh)
        states = state if state is not None else [None] * len(self.members)
        outs = [m(idx, state=s) for m, s in zip(self.members, states, strict=True)]
        if any(logits is None for logits, _, _ in outs):
            raise RuntimeError("a mixture scores with its members in eval mode; it does not train")
        logp = self.mix([logits for logits, _, _ in outs])  # (B, T, V)
        loss = None if targets is None else F.nll_loss(logp.flatten(0, -2), targets.flatten())
        return logp, loss, [s for _, _, s in outs]

    def next_logits(self, idx, state=None):
        """(B, V) log-probabilities of the mixture after ``idx`` (B, T), each member's new state."""
        states = state if state is not None else [None] * len(self.members)
        outs = [m.next_logits(idx, s) for m, s in zip(self.members, states, strict=True)]
        return self.mix([logits for logits, _ in outs]), [s for _, s in outs]

    def detach_state(self, state):
        if state is None:
            return None
        return [m.detach_state(s) for m, s in zip(self.members, state, strict=True)]


def mixture_weights_file(path: str | Path, members: Sequence[str]) -> list[float]:
    """The test-time weights of ``members`` from ``ensemble_text``'s metrics JSON (chosen
    on the validation split, the static models'), in the order of ``members``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file: run `dvc repro ensemble_text` first")
    try:  # the stage logs test/weight/<member>, which the metrics file nests (tracking.nest)
        weights = json.loads(path.read_text())["test"]["weight"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path}: not the metrics of an ensemble_text stage") from None
    if sorted(weights) != sorted(members):
        raise CheckpointError(f"{path}: weights of {', '.join(sorted(weights))}, but params.yaml "
                              f"mixes {', '.join(members)}: run `dvc repro ensemble_text` again")
    return [float(weights[m]) for m in members]


def load_mixture(name: str, params: str | Path, weights_file: str | Path,
                 checkpoint: str) -> tuple[MixtureLM, list[str], dict]:
    """The ``ensemble_text`` entry ``name`` as one model: (model in eval mode, vocabulary,
    the first member's checkpoint dict, for its newline mode and casing). Its members come
    from ``params``, their checkpoints from ``checkpoint.format(name=member)``, the weights
    from the stage's metrics ``weights_file``; members with different vocabularies or
    line-break modes are refused."""
    from genmodels.config import load_section
    from genmodels.text.ensemble import EnsembleTextConfig
    from genmodels.text.registry import load_checkpoint

    cfg = load_section(params, f"ensemble_text.{name}", EnsembleTextConfig)
    weights = mixture_weights_file(weights_file, cfg.members)
    loaded = [load_checkpoint(checkpoint.format(name=m)) for m in cfg.members]
    (_, itos, first), *others = loaded
    for member, (_, vocab, ckpt) in zip(cfg.members[1:], others, strict=True):
        if vocab != itos or ckpt.get("newline", "line") != first.get("newline", "line"):
            raise CheckpointError(f"{member} and {cfg.members[0]} read different vocabularies "
                                  "or line breaks, so they cannot be mixed word by word")
    model = MixtureLM([model for model, _, _ in loaded], weights)
    return model.eval(), itos, first


def ensemble_entries(params: str | Path) -> set[str]:
    """The names of the ``ensemble_text`` entries in ``params`` (none without the file)."""
    from genmodels.config import read_params

    if not Path(params).is_file():
        return set()
    section = read_params(params).get("ensemble_text") or {}
    return set(section) if isinstance(section, dict) else set()
