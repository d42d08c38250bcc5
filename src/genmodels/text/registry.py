"""``arch`` name -> (config class, model class). A new architecture registers here."""

from __future__ import annotations

from typing import Any

from genmodels.checkpoints import CheckpointError, model_mismatch, read_checkpoint
from genmodels.config import ParamsError, as_dict, from_dict
from genmodels.text.model import LanguageModel
from genmodels.text.rnn import RNNLM, RNNConfig
from genmodels.text.transformer import TransformerConfig, TransformerLM

ARCHS: dict[str, tuple[type, type[LanguageModel]]] = {
    "rnn": (RNNConfig, RNNLM),  # cell: rnn | lstm | gru
    "transformer": (TransformerConfig, TransformerLM),
}


def model_config(arch: str, settings: dict[str, Any], vocab_size: int, where: str = "model"):
    """Validate ``settings`` for ``arch`` (vocab_size comes from the data); errors name
    ``<where>.<key>``. The training stage calls it with a placeholder vocab_size before it
    reads the corpus, so that a bad model config fails before any work."""
    if arch not in ARCHS:
        key = f"{where.rsplit('.', 1)[0]}.arch" if "." in where else "arch"
        raise ParamsError(f"invalid params: {key}: unknown arch {arch!r} "
                          f"(expected one of {', '.join(sorted(ARCHS))})")
    return from_dict(ARCHS[arch][0], {**settings, "vocab_size": vocab_size}, where)


def build_model(
    arch: str, settings: dict[str, Any], vocab: list[str], where: str = "model"
) -> tuple[Any, LanguageModel]:
    """Validate ``settings`` for ``arch`` (vocab_size comes from the data) and build the model."""
    cfg = model_config(arch, settings, len(vocab), where)
    return cfg, ARCHS[arch][1](cfg, vocab)


def save_checkpoint(path, model: LanguageModel, cfg: Any, arch: str, vocab: list[str], **extra):
    from genmodels.io import torch_save

    torch_save(
        {"state_dict": model.state_dict(), "config": as_dict(cfg), "arch": arch,
         "vocab": list(vocab), **extra},
        path,
    )


def load_checkpoint(path) -> tuple[LanguageModel, list[str], dict]:
    """(model in eval mode, vocabulary itos, the checkpoint dict) from a saved checkpoint;
    :class:`~genmodels.checkpoints.CheckpointError` (one line) for anything else, including
    a checkpoint of another kind and one with non-finite weights."""
    ckpt = read_checkpoint(path, "text")
    if ckpt["arch"] not in ARCHS:
        raise CheckpointError(f"{path}: a text-model checkpoint of unknown arch {ckpt['arch']!r}; "
                              f"expected one of {', '.join(sorted(ARCHS))}")
    config_cls, model_cls = ARCHS[ckpt["arch"]]
    try:
        cfg = from_dict(config_cls, ckpt["config"], f"{path}:config")
        if cfg.__dict__.get("embeddings"):
            # the vectors are in the state_dict; do not need the file again
            cfg = from_dict(config_cls, {**ckpt["config"], "embeddings": ""}, f"{path}:config")
        model = model_cls(cfg, ckpt["vocab"])
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError, TypeError, KeyError) as err:
        raise model_mismatch(path, err, "a text-model checkpoint") from None
    model.eval()
    return model, ckpt["vocab"], ckpt
