"""The fitted code prior (code_prior.py): a Gaussian mixture that standard-normal noise maps to."""

import pytest
import torch

from genmodels.config import ParamsError
from genmodels.images.code_prior import CodePrior
from genmodels.images.registry import build_model, config_from_dict

TWO_BLOBS = torch.cat([torch.randn(3000, 2, generator=torch.Generator().manual_seed(0)) * 0.3
                       + torch.tensor([4.0, 0.0]),
                       torch.randn(1000, 2, generator=torch.Generator().manual_seed(1)) * 0.3
                       + torch.tensor([-4.0, 2.0])])  # weights 0.75 and 0.25


def test_noise_maps_to_the_mixture_in_its_proportions():
    prior = CodePrior(2, 2)
    prior.fit(TWO_BLOBS, seed=0)
    z = prior(torch.randn(40000, 2, generator=torch.Generator().manual_seed(2)))
    right = z[:, 0] > 0
    assert right.float().mean().item() == pytest.approx(0.75, abs=0.01)
    # within each component the draw is still that component's Gaussian: the rescaled
    # first coordinate of the noise is standard normal again, not squeezed by the pick
    for part, blob in ((z[right], TWO_BLOBS[:3000]), (z[~right], TWO_BLOBS[3000:])):
        assert torch.allclose(part.mean(0), blob.mean(0), atol=0.02)
        assert torch.allclose(part.std(0), blob.std(0), rtol=0.03)


def test_one_component_is_the_closed_form_gaussian():
    prior = CodePrior(2, 1)
    prior.fit(TWO_BLOBS, seed=0)
    eps = torch.randn(5, 2)
    chol = torch.linalg.cholesky(torch.cov(TWO_BLOBS.T.double())).float()
    assert torch.allclose(prior(eps), TWO_BLOBS.mean(0) + eps @ chol.T, atol=1e-5)


def test_the_same_codes_and_seed_give_the_same_mixture():
    a, b = CodePrior(2, 3), CodePrior(2, 3)
    a.fit(TWO_BLOBS, seed=0)
    b.fit(TWO_BLOBS, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.buffers(), b.buffers(), strict=True))


def test_a_vae_samples_the_mixture_fitted_to_its_posterior_draws():
    cfg = config_from_dict(dict(family="vae", latent_dim=2, channels=[4], hidden_dim=0, epochs=1,
                                batch_size=8, lr=1e-3, seed=0, prior_components=2,
                                prior_images=64), "train_image.vae")
    model = build_model(cfg).eval()
    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    model.fit_prior(images, seed=0)
    # the same fit by hand: one posterior draw per image (seeded), then EM
    expected = CodePrior(2, 2)
    expected.fit(model.encode_draws(images, torch.Generator().manual_seed(0)), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.prior.buffers(), expected.buffers(),
                                                 strict=True))
    assert not torch.equal(expected.means, torch.zeros(2, 2))  # fitted, not the initial N(0, I)
    eps = torch.randn(5, 2)
    assert torch.equal(model.z_from_noise(eps), expected(eps))
    assert model.sample(4, torch.Generator().manual_seed(0)).shape == (4, 1, 28, 28)


def test_an_ae_without_a_fitted_prior_is_refused():
    data = dict(family="ae", latent_dim=2, channels=[4], hidden_dim=0, epochs=1, batch_size=8,
                lr=1e-3, seed=0, prior_components=0)
    with pytest.raises(ParamsError, match="prior_components"):
        config_from_dict(data, "train_image.ae")


def test_more_components_than_codes_is_named():
    with pytest.raises(ValueError, match="prior_components=5 exceeds the 3 codes"):
        CodePrior(2, 5).fit(torch.randn(3, 2), seed=0)
