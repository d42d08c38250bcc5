"""Family name -> (config class, model class); checkpoints in and out.

A variant in ``params.yaml`` (``train_image.vae16``) names its ``family``; the
family picks the config class that validates the rest of the section and the
model class built from it. Adding a variant needs params only; adding a family
needs one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genmodels.checkpoints import model_mismatch, read_checkpoint
from genmodels.config import ParamsError, as_dict, from_dict, read_params
from genmodels.images.autoencoder import VAE, Autoencoder, AutoencoderConfig, ImageModel
from genmodels.images.vaegan import VAEGAN, VAEGANConfig
from genmodels.io import torch_save

FAMILIES: dict[str, tuple[type, type[ImageModel]]] = {
    "ae": (AutoencoderConfig, Autoencoder),
    "vae": (AutoencoderConfig, VAE),
    "vaegan": (VAEGANConfig, VAEGAN),
}


def config_from_dict(data: Any, where: str):
    """Validate one variant's settings; errors name ``<where>.<key>``."""
    if not isinstance(data, Mapping):
        raise ParamsError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    family = data.get("family")
    if family not in FAMILIES:
        raise ParamsError(f"invalid params: {where}.family: unknown family {family!r} "
                          f"(expected one of {', '.join(FAMILIES)})")
    return from_dict(FAMILIES[family][0], data, where)


def load_variant(params_path: str | Path, name: str):
    """The validated config of ``train_image.<name>`` in ``params_path``."""
    section = read_params(params_path).get("train_image", {})
    if name not in section:
        raise ParamsError(f"{params_path}: missing section train_image.{name}")
    return config_from_dict(section[name], f"train_image.{name}")


def build_model(cfg, image_shape=(1, 28, 28)) -> ImageModel:
    return FAMILIES[cfg.family][1](cfg, tuple(image_shape))


def save_checkpoint(model: ImageModel, image_shape, path: str | Path, **extra) -> None:
    """state_dict + config + family + image shape; never a pickled module."""
    torch_save({"state_dict": model.state_dict(), "config": as_dict(model.config),
                "family": model.config.family, "image_shape": list(image_shape), **extra}, path)


def load_checkpoint(path: str | Path) -> tuple[ImageModel, dict]:
    """Rebuild the model from a checkpoint; returns (model in eval mode, checkpoint dict).
    :class:`~genmodels.checkpoints.CheckpointError` (one line) for anything else, including
    a checkpoint of another kind and one with non-finite weights."""
    ckpt = read_checkpoint(path, "image")
    try:
        cfg = config_from_dict(ckpt["config"], f"checkpoint {path}")
        model = build_model(cfg, ckpt["image_shape"])
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError, TypeError, KeyError) as err:
        raise model_mismatch(path, err, "an image-model checkpoint") from None
    return model.eval(), ckpt
