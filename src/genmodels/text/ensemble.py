"""Two or more trained language models of one corpus as one: a mixture of their probabilities.

Linear interpolation of language models (Jelinek & Mercer 1980):

    p(w_t | history) = sum_m lambda_m p_m(w_t | history),   lambda_m >= 0, sum_m lambda_m = 1

with the weights that maximise the likelihood of the validation split, found by EM
(Dempster et al. 1977; what SRILM's ``compute-best-mix`` does):

    lambda_m <- mean_t [ lambda_m p_m,t / sum_k lambda_k p_k,t ]

The members' errors differ (an LSTM and a Transformer read their history differently),
so the mixture scores below the better member; Merity et al. (2018) and Grave et al.
(2017) report such ensembles beside their single models. Mixing needs no training and
no forward pass: ``evaluate_text`` saves each target's probability under the model and
its fair Kneser-Ney baseline, with and without their caches (``scores`` files), and the
mixture is read off those. The same mixture of the cached models is scored against
Kneser-Ney with its unigram cache, as ``evaluate_text`` compares a single cached model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from genmodels.checkpoints import CheckpointError, describe
from genmodels.config import config
from genmodels.text.cache import cache_metrics
from genmodels.text.sampling import UNK_ID


@config
class EnsembleTextConfig:
    members: tuple[str, ...]  # two or more train_text entries of one corpus

    def __post_init__(self):
        if len(self.members) < 2:
            raise ValueError(f"members: a mixture needs two or more models, got {len(self.members)}")
        twice = sorted({m for m in self.members if self.members.count(m) > 1})
        if twice:
            raise ValueError(f"members must be different models, got {', '.join(map(repr, twice))} twice")


def mixture_weights(p: torch.Tensor, iters: int = 500, tol: float = 1e-12) -> torch.Tensor:
    """The weights (M,) of the mixture of M models that maximise the mean log-likelihood of
    the targets, from each model's probability of each target ``p`` (M, N), by EM from
    equal weights. The likelihood is concave in the weights, so EM finds the optimum."""
    w = torch.full((p.shape[0],), 1.0 / p.shape[0], dtype=torch.float64)
    p = p.double()
    for _ in range(iters):
        joint = w[:, None] * p  # (M, N)
        new = (joint / joint.sum(0, keepdim=True)).mean(1)  # each model's mean responsibility
        if (new - w).abs().max().item() < tol:
            return new
        w = new
    return w


def mixture(p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_m w_m p_m: (M, ...) probabilities and (M,) weights -> (...)."""
    return torch.tensordot(w, p.double(), dims=1)


SCORES_KEYS = frozenset({"format", "name", "targets", "model", "kneser_ney"})


def read_scores(path: str | Path, name: str) -> dict:
    """``evaluate_text``'s scores file of the model ``name`` (tensors and plain containers,
    read with ``weights_only=True``); a one-line :class:`CheckpointError` if it is not one,
    or another model's."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        scores = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - truncated, random bytes, a pickle of other objects
        raise CheckpointError(f"{path}: unreadable, not a scores file from evaluate_text") from None
    if not isinstance(scores, Mapping) or not SCORES_KEYS <= set(scores):
        raise CheckpointError(f"{path}: {describe(scores)}; expected per-token probabilities "
                              "(from evaluate_text)")
    if scores["name"] != name:
        raise CheckpointError(f"{path}: the scores of {scores['name']!r}, not of {name!r}")
    return scores


def check_same_terms(scores: Mapping[str, dict]) -> None:
    """The members must have scored the same targets against the same Kneser-Ney baseline:
    the same corpus, splits and batching, and the same ``<unk>`` treatment in training."""
    (a, first), *others = scores.items()
    for b, other in others:
        for split in ("val", "test"):
            if not torch.equal(first["targets"][split], other["targets"][split]):
                raise ValueError(f"{a} and {b} were scored on different {split} text: an ensemble "
                                 "needs models of one corpus, evaluated alike")
        if not torch.allclose(first["kneser_ney"]["test"], other["kneser_ney"]["test"]):
            raise ValueError(f"{a} and {b} are compared with different Kneser-Ney baselines "
                             "(their train.unk_alpha differ), so their mixture has no fair one")


def ensemble_metrics(scores: Mapping[str, dict]) -> dict[str, float]:
    """Metrics of the mixture of the models in ``scores`` (name -> scores file), weights
    from the validation split: test perplexity, on known-word targets, and the gain over
    the fair Kneser-Ney; the same for the mixture of the cached models against Kneser-Ney
    with its unigram cache, when every member has a cache."""
    check_same_terms(scores)
    names = list(scores)
    first = scores[names[0]]
    targets = first["targets"]

    def ppl(p: torch.Tensor, split: str = "test") -> float:
        return cache_metrics(p, targets[split], UNK_ID)["ppl"]

    out: dict[str, float] = {}
    kinds = [("model", "test", ppl(first["kneser_ney"]["test"]))]
    if all("model_cached" in s for s in scores.values()):
        kinds.append(("model_cached", "cache", ppl(first["kneser_ney_cached"]["test"])))
    for key, prefix, kn_ppl in kinds:
        val, test = (torch.stack([scores[n][key][split] for n in names]) for split in ("val", "test"))
        w = mixture_weights(val.flatten(1))  # (M,) from validation only
        m = cache_metrics(mixture(test, w), targets["test"], UNK_ID)
        out.update({f"{prefix}/weight/{n}": w[i].item() for i, n in enumerate(names)})
        out.update({f"{prefix}/val_ppl": ppl(mixture(val, w), "val"),
                    f"{prefix}/ppl": m["ppl"], f"{prefix}/ppl_known": m["ppl_known"],
                    f"{prefix}/kn_ppl": kn_ppl, f"{prefix}/gain_over_kn": 1 - m["ppl"] / kn_ppl})
        for i, n in enumerate(names):  # each member alone, read off the same files
            out[f"{prefix}/member_ppl/{n}"] = ppl(test[i])
    return out
