"""Sample metrics: known answers on small synthetic feature sets."""

import math

import pytest
import torch

from genmodels.images import metrics as M
from genmodels.images.classifier import Classifier, ClassifierConfig


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    cfg = ClassifierConfig(channels=(4, 8), feature_dim=16, dropout=0.0, epochs=1,
                           batch_size=8, lr=1e-3, seed=0)
    return Classifier(cfg).eval()


@pytest.fixture
def images():
    return torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_fid_and_kid_of_a_set_against_itself_are_zero(classifier, images):
    feats, _ = M.extract(classifier, images, batch_size=128)
    dist = M.FeatureDistances(feats, kid_subsets=5, kid_subset_size=100)
    same = dist(feats)
    assert abs(same["fid"]) < 1e-3
    assert abs(same["kid"]) < 1e-3
    other = dist(M.extract(classifier, images.flip(-1) * 0.5)[0])
    assert other["fid"] > 1e-4 and other["fid"] > 100 * abs(same["fid"])


def test_precision_and_recall_are_one_for_identical_sets():
    feats = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    assert M.precision_recall(feats, feats.clone(), k=3) == {"precision": 1.0, "recall": 1.0}


def test_precision_falls_for_far_fakes_and_recall_for_collapsed_ones():
    real = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    far = M.precision_recall(real, real + 100.0, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    collapsed = M.precision_recall(real, real[:1].repeat(400, 1) + 1e-3 * real, k=3)
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.1


def test_kth_nn_radius_excludes_the_point_itself():
    pts = torch.tensor([[0.0], [1.0], [3.0]])
    assert torch.equal(M.kth_nn_radius(pts, 1), torch.tensor([1.0, 1.0, 2.0]))


def test_class_entropy_is_log_k_for_uniform_use_and_zero_for_one_class():
    uniform = torch.eye(10).repeat(5, 1)
    assert math.isclose(M.class_entropy(uniform), math.log(10), rel_tol=1e-9)
    assert M.class_entropy(torch.eye(10)[[3] * 50]) == 0.0


def test_novelty_flags_copies_of_the_training_set():
    train = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    test = torch.randn(200, 8, generator=torch.Generator().manual_seed(1))
    copies = M.novelty(train[:200].clone(), test, train)
    assert copies["sample_nn_median"] == 0.0 and copies["frac_below_test_p5"] == 1.0
    fresh = M.novelty(torch.randn(200, 8, generator=torch.Generator().manual_seed(2)), test, train)
    assert 0.8 < fresh["ratio"] < 1.25


def test_features_and_probabilities_have_the_expected_shapes(classifier, images):
    feats, probs = M.extract(classifier, images, batch_size=64)
    assert feats.shape == (300, 16) and probs.shape == (300, 10)
    assert torch.allclose(probs.sum(1), torch.ones(300))


def test_bits_per_dim():
    assert math.isclose(M.bits_per_dim(784 * math.log(2), 784), 1.0)
