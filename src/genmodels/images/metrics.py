"""Sample-quality metrics in a classifier's feature space.

FID and KID are torchmetrics' (``FrechetInceptionDistance`` and
``KernelInceptionDistance`` accept any ``nn.Module`` as the feature extractor
and then download nothing; ours hands them the classifier's features).
Precision/recall (Kynkaanniemi et al. 2019), the class-histogram entropy and
nearest-neighbour novelty are written here: small, and torchmetrics has none of them.
"""

from __future__ import annotations

import math
import warnings

import torch

from genmodels.images.data import batches


@torch.no_grad()
def extract(classifier, images: torch.Tensor, batch_size: int = 1000):
    """Features (N, F) and class probabilities (N, K) of ``images``, from the classifier's
    penultimate layer (Inception's pool3 in FID) and its softmax."""
    classifier.eval()
    feats, probs = [], []
    for idx in batches(images, batch_size):
        f = classifier.features(images[idx])
        feats.append(f)
        probs.append(torch.softmax(classifier.out(f), dim=1))
    return torch.cat(feats), torch.cat(probs)


class Precomputed(torch.nn.Module):
    """torchmetrics' custom feature extractor, fed features we extracted already.

    FID and KID would each run their extractor over every image again; handing
    them the classifier's features through this identity puts every image
    through the classifier once per evaluation.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features  # torchmetrics sizes its FID state from it

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return feats


class FeatureDistances:
    """FID and KID of feature sets (N, F) against one fixed reference set.

    Built once per reference set (its statistics kept); ``__call__`` resets only
    the fake side.
    """

    def __init__(self, real: torch.Tensor, kid_subsets: int, kid_subset_size: int):
        # (imported here: torchmetrics takes 2.3 s to import, and extract() does not need it)
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        extractor = Precomputed(real.shape[1])
        self.fid = FrechetInceptionDistance(extractor, reset_real_features=False)
        with warnings.catch_warnings():  # "will save all extracted features": we know
            warnings.simplefilter("ignore", UserWarning)
            self.kid = KernelInceptionDistance(extractor, subsets=kid_subsets,
                                               subset_size=min(kid_subset_size, len(real)),
                                               reset_real_features=False)
        self.fid.update(real, real=True)
        self.kid.update(real, real=True)

    @torch.no_grad()
    def __call__(self, fake: torch.Tensor, seed: int = 0) -> dict[str, float]:
        self.fid.reset()
        self.kid.reset()
        self.kid.subset_size = min(self.kid.subset_size, len(fake))
        self.fid.update(fake, real=False)
        self.kid.update(fake, real=False)
        torch.manual_seed(seed)  # KID draws its subsets with torch's global RNG
        kid_mean, kid_std = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid_mean),
                "kid_std": float(kid_std)}


def kth_nn_radius(feats: torch.Tensor, k: int, chunk: int = 1000) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row, (N,)."""
    if len(feats) <= k:
        raise ValueError(f"need more than k={k} feature vectors, got {len(feats)}")
    out = []
    for start in range(0, len(feats), chunk):
        d = torch.cdist(feats[start:start + chunk], feats)  # (chunk, N)
        out.append(d.kthvalue(k + 1, dim=1).values)        # k + 1: the row itself is at 0
    return torch.cat(out)


def _covered(queries, refs, radii, chunk: int = 1000) -> torch.Tensor:
    """For each query: does it fall inside some reference's k-NN ball? (Q,) bool."""
    out = []
    for start in range(0, len(queries), chunk):
        d = torch.cdist(queries[start:start + chunk], refs)  # (chunk, R)
        out.append((d <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(out)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict[str, float]:
    """Improved precision and recall, Kynkaanniemi et al. 2019 (arXiv 1904.06991), eq. 1-3.

    The manifold of a set is the union of balls around each point reaching its
    k-th nearest neighbour. Precision: share of fakes inside the real manifold;
    recall: share of reals inside the fake manifold.
    """
    precision = _covered(fake, real, kth_nn_radius(real, k)).float().mean()
    recall = _covered(real, fake, kth_nn_radius(fake, k)).float().mean()
    return {"precision": float(precision), "recall": float(recall)}


def class_entropy(probs: torch.Tensor) -> float:
    """Entropy (nats) of the histogram of predicted classes; log(K) when all are equally used."""
    counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).double()
    p = counts / counts.sum()
    return float(-(p[p > 0] * p[p > 0].log()).sum())


def nearest_distance(queries: torch.Tensor, refs: torch.Tensor, chunk: int = 1000):
    """Distance of each query to its nearest reference, (Q,)."""
    out = []
    for start in range(0, len(queries), chunk):
        out.append(torch.cdist(queries[start:start + chunk], refs).min(dim=1).values)
    return torch.cat(out)


def novelty(sample_feats, test_feats, train_feats) -> dict[str, float]:
    """How far samples lie from their nearest training image, against held-out images.

    Test images are new by construction, so their nearest-training distances are
    the yardstick: a model that copies its training set has samples much
    closer (ratio << 1, and many below the test set's 5th percentile).
    """
    d_sample = nearest_distance(sample_feats, train_feats)
    d_test = nearest_distance(test_feats, train_feats)
    p5 = torch.quantile(d_test, 0.05)
    return {
        "sample_nn_median": float(d_sample.median()),
        "test_nn_median": float(d_test.median()),
        "ratio": float(d_sample.median() / d_test.median()),
        "frac_below_test_p5": float((d_sample < p5).float().mean()),
    }


def bits_per_dim(nats_per_image: float, dims: int) -> float:
    return nats_per_image / (dims * math.log(2))
