"""A logged MLflow model reproduces its checkpoint's output on a fixed input."""

import mlflow
import numpy as np
import pytest
import torch

from genmodels.export import (
    ImageGenerator,
    NextTokenLogProbs,
    image_example,
    log_model,
    text_example,
)
from genmodels.images.registry import build_model as build_image_model
from genmodels.images.registry import config_from_dict
from genmodels.text.registry import build_model as build_text_model


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        yield root


@pytest.mark.parametrize("components", [0, 3])  # N(0, I), or a fitted mixture (code_prior.py)
def test_image_generator_round_trips_through_mlflow(store, components):
    torch.manual_seed(0)
    cfg = config_from_dict({"family": "vae", "latent_dim": 2, "channels": [4, 8],
                            "hidden_dim": 8, "epochs": 1, "batch_size": 4, "lr": 1e-3, "seed": 0,
                            "prior_components": components}, "train_image.tiny")
    model = build_image_model(cfg).eval()
    if components:
        model.prior.fit(torch.randn(200, 2) * 3 + 1, seed=0)
    example = image_example(cfg.latent_dim)
    with mlflow.start_run():
        info = log_model(ImageGenerator(model), example)
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    z = image_example(cfg.latent_dim, n=5, seed=1)  # another batch size than the example
    expected = torch.sigmoid(model.decode(model.z_from_noise(torch.from_numpy(z))))
    expected = expected.detach().numpy()
    assert np.allclose(loaded.predict(z), expected, atol=1e-6)


def test_language_model_round_trips_through_mlflow(store):
    torch.manual_seed(0)
    vocab = ["<unk>", "<nl>", "<eos>", "a", "b", "c"]
    _, model = build_text_model("rnn", {"cell": "lstm", "n_embd": 8, "n_hidden": 8}, vocab)
    model.eval()
    example = text_example(len(vocab), batch=2, length=8)
    with mlflow.start_run():
        info = log_model(NextTokenLogProbs(model), example)
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    idx = text_example(len(vocab), batch=3, length=8, seed=1)
    logits, _, _ = model(torch.from_numpy(idx))
    expected = torch.log_softmax(logits, -1).detach().numpy()
    assert np.allclose(loaded.predict(idx), expected, atol=1e-5)
