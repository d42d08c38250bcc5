"""``arch`` name -> (config class, model class). A new architecture registers here."""

from __future__ import annotations

from typing import Any

from genmodels.config import as_dict, from_dict
from genmodels.text.generate import LanguageModel
from genmodels.text.rnn import RNNLM, RNNConfig
from genmodels.text.transformer import TransformerConfig, TransformerLM

ARCHS: dict[str, tuple[type, type[LanguageModel]]] = {
    "rnn": (RNNConfig, RNNLM),  # cell: rnn | lstm | gru
    "transformer": (TransformerConfig, TransformerLM),
}


def build_model(
    arch: str, settings: dict[str, Any], vocab: list[str], where: str = "model"
) -> tuple[Any, LanguageModel]:
    """Validate ``settings`` for ``arch`` (vocab_size comes from the data) and build the model."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHS))}")
    config_cls, model_cls = ARCHS[arch]
    cfg = from_dict(config_cls, {**settings, "vocab_size": len(vocab)}, where)
    return cfg, model_cls(cfg, vocab)


def save_checkpoint(path, model: LanguageModel, cfg: Any, arch: str, vocab: list[str], **extra):
    from genmodels.io import torch_save

    torch_save(
        {"state_dict": model.state_dict(), "config": as_dict(cfg), "arch": arch,
         "vocab": list(vocab), **extra},
        path,
    )


def load_checkpoint(path) -> tuple[LanguageModel, list[str], dict]:
    """(model in eval mode, vocabulary itos, the checkpoint dict) from a saved checkpoint."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    config_cls, model_cls = ARCHS[ckpt["arch"]]
    cfg = from_dict(config_cls, ckpt["config"], f"{path}:config")
    if cfg.__dict__.get("embeddings"):
        # the vectors are in the state_dict; do not need the file again
        cfg = from_dict(config_cls, {**ckpt["config"], "embeddings": ""}, f"{path}:config")
    model = model_cls(cfg, ckpt["vocab"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt["vocab"], ckpt
