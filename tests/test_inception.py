"""The Inception feature extractor of the opt-in Inception-FID (images/inception.py): the
pixel preprocessing the papers use, and self-consistency on a few images."""

import pytest
import torch

from genmodels.images.inception import HIGH, LOW, SIZE, InceptionFeatures, preprocess
from genmodels.images.metrics import FeatureDistances


def test_preprocessing_is_grey_to_rgb_upsampled_in_the_networks_range():
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x[0] = 0.0  # black
    x[1] = 1.0  # white
    y = preprocess(x)
    assert y.shape == (3, 3, SIZE, SIZE)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])  # grey repeated
    assert torch.allclose(y[0], torch.full_like(y[0], LOW))  # black -> -1
    assert torch.allclose(y[1], torch.full_like(y[1], HIGH))  # white -> 255/128 - 1
    assert y.min() >= LOW and y.max() <= HIGH + 1e-6
    # 8-bit quantisation first: on 8-bit pixels, a change below half a grey level does not
    # reach the network
    q = (x[2:] * 255).round() / 255
    jitter = (torch.rand(q.shape, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.8 / 255
    assert torch.equal(preprocess((q + jitter).clamp(0, 1)), preprocess(q))
    # bilinear: a constant image stays constant
    flat = preprocess(torch.full((1, 1, 28, 28), 0.5))
    assert torch.allclose(flat, flat[0, 0, 0, 0].expand_as(flat))


@pytest.fixture(scope="module")
def extract():
    torch.set_num_threads(2)
    return InceptionFeatures("cpu", batch_size=4)


def images(n: int, seed: int) -> torch.Tensor:
    """Smooth blobs, grey in [0, 1]: (n, 1, 28, 28)."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, 1, 1, generator=g) * 16 + 6
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    d2 = (yy - centre[:, :1]) ** 2 + (xx - centre[:, 1:]) ** 2
    return torch.exp(-d2 / 40)  # (n, 1, 28, 28)


def test_features_are_2048_wide_and_do_not_depend_on_the_batch(extract):
    x = images(6, 0)
    whole = extract(x)
    assert whole.shape == (6, 2048) and torch.isfinite(whole).all()
    alone = torch.cat([extract(x[i:i + 1]) for i in (4, 5)])
    torch.testing.assert_close(alone, whole[4:], atol=1e-3, rtol=1e-3)


@pytest.mark.slow  # three Frechet distances of 2048-d features: about a minute on 2 cores
def test_fid_tells_like_from_unlike(extract):
    """Blobs against other blobs score far closer than blobs against uniform noise."""
    a, b = extract(images(12, 1)).double(), extract(images(12, 2)).double()
    noise = extract(torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(3))).double()
    dist = FeatureDistances(a, kid_subsets=5, kid_subset_size=12)
    same, other = dist(b)["fid"], dist(noise)["fid"]
    assert same < other / 3, (same, other)
    assert dist(a)["fid"] == pytest.approx(0.0, abs=1e-3)  # a set against itself
