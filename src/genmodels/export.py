"""Trained models as MLflow models, for ``mlflow.pyfunc.load_model`` and ``mlflow models serve``.

Each family exports the part a user would serve: image models their
generator (latent codes -> images in [0, 1]), language models their
next-token log-probabilities (token ids -> (B, T, V)), the metric classifier
its class probabilities (images -> (N, classes)). MLflow stores them in
its ``pt2`` format (``torch.export``), with a signature and an input example;
no module is pickled.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

MODEL_NAME = "model"


class ImageGenerator(nn.Module):
    """z (N, latent_dim) float32 -> images (N, C, H, W) in [0, 1]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.decode(self.model.z_from_noise(z)))


class NextTokenLogProbs(nn.Module):
    """Token ids (B, T) int64 -> log-probabilities of the next token (B, T, V)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits, _, _ = self.model(idx)
        return torch.log_softmax(logits, dim=-1)


class ClassProbabilities(nn.Module):
    """Images (N, C, H, W) float32 in [0, 1] -> class probabilities (N, n_classes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=-1)


def pixels_example(shape: tuple[int, ...], n: int = 4, seed: int = 0) -> np.ndarray:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)).numpy()


def image_example(latent_dim: int, n: int = 4, seed: int = 0) -> np.ndarray:
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed)).numpy()


def text_example(vocab_size: int, batch: int = 2, length: int = 8, seed: int = 0) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(vocab_size, (batch, length), generator=gen).numpy()


def signature(example: np.ndarray, output: np.ndarray, dynamic_dims: int):
    """Tensor signature whose first ``dynamic_dims`` dims are free (-1): any batch, any length."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(a: np.ndarray) -> TensorSpec:
        return TensorSpec(a.dtype, (-1,) * dynamic_dims + a.shape[dynamic_dims:])

    return ModelSignature(inputs=Schema([spec(example)]), outputs=Schema([spec(output)]))


def log_model(module: nn.Module, example: np.ndarray, dynamic_dims: int = 1,
              name: str = MODEL_NAME):
    """Log ``module`` (eval mode, CPU) to the active MLflow run; returns the model info.

    ``dynamic_dims``: leading dims of input and output that may vary (1: the
    batch, for images; 2: batch and sequence length, for language models).
    """
    import mlflow

    module = module.cpu().eval()
    with torch.no_grad():
        output = module(torch.from_numpy(example)).numpy()
    logging.getLogger("mlflow").setLevel(logging.ERROR)  # quiet its notices about pip inference
    return mlflow.pytorch.log_model(
        module,
        name=name,
        signature=signature(example, output, dynamic_dims),
        input_example=example,
        serialization_format="pt2",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
    )
