"""The image stages end to end: pure functions on tiny fake data, and `dvc repro` on a copy."""

import json

import mlflow
import pytest
import torch
import yaml

from genmodels.images.classifier import ClassifierConfig, load_classifier
from genmodels.images.data import load_split
from genmodels.images.evaluate import EvaluateConfig, evaluate
from genmodels.images.metrics import extract
from genmodels.images.real_features import load_real_features, save_real_features
from genmodels.images.registry import config_from_dict
from genmodels.images.render import RenderConfig, render
from genmodels.images.train import train
from genmodels.images.train_classifier import train_classifier
from genmodels.tracking import CHECKPOINT_TAG, run_of_checkpoint, sha256

from conftest import write_fake_images

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TINY = dict(channels=[4, 8], hidden_dim=8, epochs=1, batch_size=16, lr=1e-3, seed=0,
            limit_batches=2)
TINY_VARIANTS = {
    "ae": dict(family="ae", latent_dim=2, **TINY),
    "vae": dict(family="vae", latent_dim=2, **TINY),
    "vaegan": dict(family="vaegan", latent_dim=8, disc_channels=[4, 8], gamma=1.0, beta=1.0,
                   real_label=1.0, beta1=0.5, **TINY),
}
TINY_CLASSIFIER = dict(channels=[4, 8], feature_dim=8, dropout=0.0, epochs=1, batch_size=16,
                       lr=1e-3, seed=0, limit_batches=2)
TINY_EVALUATE = dict(n_samples=40, k=3, kid_subsets=2, kid_subset_size=20, batch_size=32,
                     seed=0, limit_images=100)
TINY_RENDER = dict(grid_size=3, grid_extent=3.0, arithmetic_from="Dress",
                   arithmetic_to="Pullover", steps=3, max_scatter=50, seed=0)
FIGURES_2D = {"reconstructions.png", "latent_arithmetic.png", "interpolation.png",
              "loss_curves.png", "latent_scatter.png", "latent_grid.png", "prior_samples.png",
              "test_images.png"}


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One MLflow store for the module: creating a SQLite store takes seconds."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture
def fake_data(tmp_path, monkeypatch, tracking_uri):
    """A prepared-data folder of random images, every class present; cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)
    folder = write_fake_images(tmp_path / "prepared", {"train": 80, "val": 40, "test": 60})
    (folder / "meta.json").write_text(json.dumps({"classes": CLASSES, "mean": 0.5, "std": 0.3}))
    return folder


def test_every_stage_function_runs_on_tiny_data(fake_data, tmp_path):
    clf = tmp_path / "classifier.pt"
    out = train_classifier(ClassifierConfig(**TINY_CLASSIFIER), fake_data, clf,
                           tmp_path / "clf.json", tmp_path / "clf.csv")
    assert 0 <= out["test/accuracy"] <= 1
    features = tmp_path / "features.pt"
    save_real_features(load_classifier(clf), clf, fake_data, features)
    for name, params in TINY_VARIANTS.items():
        cfg = config_from_dict(params, f"train_image.{name}")
        ckpt, plots = tmp_path / f"{name}.pt", tmp_path / f"{name}.csv"
        train(cfg, fake_data, ckpt, tmp_path / f"{name}.json", plots, stage=f"train_image@{name}")
        assert plots.read_text().startswith("step,")
        results = evaluate(EvaluateConfig(**TINY_EVALUATE), ckpt, clf, fake_data,
                           tmp_path / f"eval_{name}.json", features)
        for key in ("test/recon_mse", "test/recon_bce", "samples/fid", "samples/kid",
                    "samples/precision", "samples/recall", "samples/class_entropy",
                    "floor/fid", "novelty/ratio", "samples/confidence", "reference/confidence",
                    "samples/confidence_vs_test"):
            assert key in results, key
        shares = [v for k, v in results.items() if k.startswith("classes/")]
        assert len(shares) == 10 and sum(shares) == pytest.approx(1.0)  # every sample counted
        assert 0.1 <= results["samples/confidence"] <= 1  # a max over 10 classes: >= 1/10
        assert ("test/nelbo" in results) == (name != "ae")
        saved = json.loads((tmp_path / f"eval_{name}.json").read_text())
        assert saved["samples"]["fid"] == pytest.approx(results["samples/fid"])
        figures = render(RenderConfig(**TINY_RENDER), ckpt, fake_data, plots,
                         tmp_path / "figures" / name)
        names = {p.name for p in figures}
        assert names == (FIGURES_2D if cfg.latent_dim == 2 else FIGURES_2D - {
            "latent_scatter.png", "latent_grid.png"})
        # Training, evaluation and figures land in the one MLflow run of the model.
        run = mlflow.get_run(run_of_checkpoint(ckpt))
        assert "val/loss" in run.data.metrics and "samples/fid" in run.data.metrics


def test_real_features_are_the_classifiers_and_refuse_another_classifier(fake_data, tmp_path):
    """evaluate_classifier extracts the real images' features once for every evaluate_image:
    the same numbers as extracting them in the evaluation, and only for that classifier."""
    ckpts = []
    for seed in (0, 1):
        ckpts.append(tmp_path / f"clf{seed}.pt")
        train_classifier(ClassifierConfig(**{**TINY_CLASSIFIER, "seed": seed}), fake_data, ckpts[-1],
                         tmp_path / "clf.json", tmp_path / "clf.csv")
    features = tmp_path / "features.pt"
    save_real_features(load_classifier(ckpts[0]), ckpts[0], fake_data, features)
    real = load_real_features(features, ckpts[0], {"test": 60, "train": 80})
    test_x, _ = load_split(fake_data, "test")
    direct = extract(load_classifier(ckpts[0]), test_x, 1000)
    assert all(torch.equal(a, b) for a, b in zip(real["test"], direct, strict=True))
    with pytest.raises(ValueError, match="another classifier"):
        load_real_features(features, ckpts[1], {"test": 60, "train": 80})
    with pytest.raises(ValueError, match="60 test features for 61 test images"):
        load_real_features(features, ckpts[0], {"test": 61, "train": 80})
    with pytest.raises(FileNotFoundError, match="evaluate_classifier"):
        load_real_features(tmp_path / "missing.pt", ckpts[0], {"test": 60})


def test_training_is_deterministic_for_a_seed(fake_data, tmp_path):
    cfg = config_from_dict(TINY_VARIANTS["vae"], "train_image.vae")
    states = []
    for i in range(2):
        train(cfg, fake_data, tmp_path / f"m{i}.pt", tmp_path / f"m{i}.json",
              tmp_path / f"m{i}.csv")
        states.append(torch.load(tmp_path / f"m{i}.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.e2e
def test_dvc_repro_ran_the_image_stages(tiny_pipeline):
    project = tiny_pipeline  # the whole pipeline ran once with tests/tiny_params.yaml
    params = yaml.safe_load((project / "params.yaml").read_text())
    for name in params["train_image"]:  # the tiny pipeline's variants
        metrics = json.loads((project / "reports/evaluate_image" / f"{name}.json").read_text())
        assert {"test", "samples", "floor", "novelty"} <= set(metrics)
        figures = {p.name for p in (project / "reports/render_image" / name).iterdir()}
        assert {"reconstructions.png", "loss_curves.png"} <= figures
        client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        sha = sha256(project / "data/models/image" / f"{name}.pt")
        run, = client.search_runs(  # the checkpoint names no run: its training run has its hash
            [client.get_experiment_by_name("genmodels").experiment_id],
            f"tags.`{CHECKPOINT_TAG}` = '{sha}'", order_by=["attributes.start_time DESC"],
            max_results=1)
        assert "val/loss" in run.data.metrics and "samples/fid" in run.data.metrics
    assert {"latent_scatter.png", "latent_grid.png"} <= {
        p.name for p in (project / "reports/render_image/vae").iterdir()}


@pytest.mark.parametrize("shape, kwargs", [
    ((64, 1, 28, 28), dict(nrow=8, padding=1)),  # the per-epoch training grid
    ((64, 1, 56, 56), dict(nrow=8, padding=2, pad_value=1.0)),  # the rendered sample grid
    ((10, 3, 5, 7), dict(nrow=4, padding=3, pad_value=0.3)),  # a ragged last row, RGB
    ((1, 1, 6, 6), dict(nrow=8, padding=2)),  # one image: no padding
])
def test_our_png_grid_is_torchvisions_byte_for_byte(tmp_path, shape, kwargs):
    """genmodels.images.grid replaces torchvision's save_image to spare the stages its
    3-second import; the files it writes must not change."""
    from torchvision.utils import save_image

    from genmodels.images.grid import save_grid_png

    images = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    images[0, :, 0, 0] = 1.0  # the ends of the range round to 255 and 0
    images[-1, :, -1, -1] = 0.0
    save_image(images, tmp_path / "theirs.png", **kwargs)
    save_grid_png(images, tmp_path / "ours.png", **kwargs)
    assert (tmp_path / "ours.png").read_bytes() == (tmp_path / "theirs.png").read_bytes()


def test_png_grid_names_a_bad_shape(tmp_path):
    from genmodels.images.grid import save_grid_png

    with pytest.raises(ValueError, match=r"expected \(B, 1 or 3, H, W\) images, got \(2, 28, 28\)"):
        save_grid_png(torch.zeros(2, 28, 28), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_training_and_rendering_do_not_import_torchvision():
    """torchvision's import costs about 3 s per stage process (see grid.py)."""
    import subprocess
    import sys

    code = ("import sys, genmodels.images.train, genmodels.images.render; "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
