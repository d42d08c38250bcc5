"""Judge a trained image model on the test set.

Reconstruction (MSE and Bernoulli BCE per image; for VAE and VAE-GAN the
negative ELBO in nats per image and bits per dimension), then ``n_samples``
draws from the prior compared with the test set in the classifier's feature
space (FID, KID, precision/recall, class entropy), the same comparison for
training images (the floor a perfect model would reach), and novelty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pydantic
import torch

from genmodels.config import config
from genmodels.device import seed_everything
from genmodels.images import metrics as M
from genmodels.images.autoencoder import Autoencoder, bernoulli_nll, gaussian_kl
from genmodels.images.classifier import load_classifier
from genmodels.images.data import batches, load_classes, load_split
from genmodels.images.real_features import load_real_features
from genmodels.images.registry import load_checkpoint
from genmodels.images.sampling import draw_samples
from genmodels.tracking import model_run

PositiveInt = Annotated[int, pydantic.Field(gt=0)]


@config
class EvaluateConfig:
    """``evaluate_image`` in params.yaml (shared by every model)."""

    n_samples: PositiveInt       # prior samples; also the size of the training-set floor
    k: PositiveInt               # neighbours for precision/recall (Kynkaanniemi et al.: 3)
    kid_subsets: PositiveInt
    kid_subset_size: PositiveInt
    batch_size: PositiveInt
    seed: int
    # > 0: the first images of the test and training splits only (smoke runs)
    limit_images: Annotated[int, pydantic.Field(ge=0)] = 0

    def __post_init__(self):
        if 0 < self.limit_images < self.n_samples:
            raise ValueError(f"limit_images ({self.limit_images}) must be 0 or at least "
                             f"n_samples ({self.n_samples}): the floor takes n_samples "
                             "training images")


@torch.no_grad()
def reconstruction_metrics(model, images: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Per-image means over ``images``; the VAE's ELBO uses one posterior draw per image."""
    sums: dict[str, float] = {}
    for idx in batches(images, batch_size):
        x = images[idx]
        code = model.encode(x)
        mean = code[0] if isinstance(code, tuple) else code
        logits = model.decode(mean)  # reconstruction from the code / posterior mean
        terms = {
            "recon_mse": (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1),
            "recon_bce": bernoulli_nll(logits, x),
        }
        if not isinstance(model, Autoencoder):
            mu, logvar = code
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            terms["nelbo"] = bernoulli_nll(model.decode(z), x) + gaussian_kl(mu, logvar)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.sum().item()
    out = {k: v / len(images) for k, v in sums.items()}
    if "nelbo" in out:
        out["bits_per_dim"] = M.bits_per_dim(out["nelbo"], images[0].numel())
    return out


def sample_metrics(dist: M.FeatureDistances, feats, probs, real_feats, k: int,
                   seed: int) -> dict[str, float]:
    """FID, KID, precision/recall against the reference set, class entropy and confidence
    (the classifier's mean top-class probability: "these are garments"), of one set."""
    out = dist(feats, seed) | M.precision_recall(real_feats, feats, k)
    out["class_entropy"] = M.class_entropy(probs)
    out["confidence"] = probs.max(1).values.mean().item()
    return out


def class_shares(probs: torch.Tensor, classes: list[str]) -> dict[str, float]:
    """The share of images the classifier assigns to each class (its argmax): "of every
    class" as numbers. Fashion-MNIST's test images are 0.1 of each class; the classifier's
    shares of them are near that, off by its confusions (shirt / T-shirt / pullover)."""
    counts = torch.bincount(probs.argmax(1), minlength=len(classes)).double()
    return {name: (c / len(probs)).item() for name, c in zip(classes, counts, strict=True)}


def evaluate(cfg: EvaluateConfig, model_path: str | Path, classifier_path: str | Path,
             data_dir: str | Path, metrics: str | Path, features: str | Path,
             stage: str = "evaluate_image") -> dict:
    """``features``: the classifier's features of the real images (``real_features.py``)."""
    gen = seed_everything(cfg.seed)
    model, ckpt = load_checkpoint(model_path)
    classifier = load_classifier(classifier_path)
    test_x, _ = load_split(data_dir, "test")
    n_train = len(load_split(data_dir, "train")[1])
    real = load_real_features(features, classifier_path, {"test": len(test_x), "train": n_train})
    (test_feats, test_probs), (train_feats, train_probs) = real["test"], real["train"]
    if cfg.limit_images:
        test_x, test_feats, test_probs = (t[: cfg.limit_images] for t in (test_x, test_feats, test_probs))
        train_feats, train_probs = train_feats[: cfg.limit_images], train_probs[: cfg.limit_images]

    results = {f"test/{k}": v for k, v in
               reconstruction_metrics(model, test_x, cfg.batch_size).items()}

    # Every image passes through the classifier once (the real ones in evaluate_classifier);
    # FID, KID, precision/recall, class entropy and novelty all work on these features.
    bs = cfg.batch_size
    fake_feats, fake_probs = M.extract(classifier, draw_samples(model, cfg.n_samples, bs, gen), bs)
    # The floor: as many training images as samples, the score a perfect model would reach.
    # Its own generator: the same floor images for every model, whatever its sampling drew.
    floor = torch.randperm(len(train_feats), generator=torch.Generator().manual_seed(cfg.seed))
    floor = floor[: cfg.n_samples]
    k = min(cfg.k, len(test_x) - 1, cfg.n_samples - 1)
    dist = M.FeatureDistances(test_feats, cfg.kid_subsets, cfg.kid_subset_size)
    sample_m = sample_metrics(dist, fake_feats, fake_probs, test_feats, k, cfg.seed)
    floor_m = sample_metrics(dist, train_feats[floor], train_probs[floor], test_feats, k, cfg.seed)
    results |= {f"samples/{k_}": v for k_, v in sample_m.items()}
    results |= {f"floor/{k_}": v for k_, v in floor_m.items()}
    # Confidence on samples against the same on test images (the "at least 90%")
    results["reference/confidence"] = test_probs.max(1).values.mean().item()
    results["samples/confidence_vs_test"] = results["samples/confidence"] / results[
        "reference/confidence"]
    classes = load_classes(data_dir) if (Path(data_dir) / "meta.json").is_file() else [
        str(i) for i in range(test_probs.size(1))]
    # ("T-shirt/top" -> "T-shirt-top": a "/" would nest the metrics JSON one level deeper)
    results |= {f"classes/{c.replace('/', '-')}": v
                for c, v in class_shares(fake_probs, classes).items()}
    results |= {f"reference/classes/{c.replace('/', '-')}": v  # what the classifier says of
                for c, v in class_shares(test_probs, classes).items()}  # real test images
    results |= {f"novelty/{k_}": v for k_, v in
                M.novelty(fake_feats, test_feats, train_feats).items()}

    with model_run(model_path, stage, metrics) as run:
        run.log(results)
    return results
