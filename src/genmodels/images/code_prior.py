"""The prior that samples are drawn from: a Gaussian mixture fitted to the latent codes.

A VAE's encoder does not fill its N(0, I) prior: the codes of real images (the
aggregate posterior) leave holes and sit off-centre, and prior draws that land
there decode to shapes no image has. Ex-post density estimation fits a density
to the training codes once training is done and samples from it instead
(Ghosh et al. 2020, "From Variational to Deterministic Autoencoders", arXiv
1903.12436, section 4; the two-stage VAE of Dai & Wipf 2019, arXiv 1903.05789,
fits a second VAE for the same reason). Here the density is a K-component
full-covariance Gaussian mixture, fitted by scikit-learn's EM; with K = 1 it
is the closed-form Gaussian the autoencoder has always used.

The mixture maps standard-normal noise to codes (``z_from_noise``), so every
path that decodes noise (fixed-noise grids, evaluation, the exported
generator) samples the mixture without knowing it is one.
"""

from __future__ import annotations

import torch
from torch import nn


class CodePrior(nn.Module):
    """p(z) = sum_k w_k N(z; m_k, L_k L_k^T); until fitted, one component N(0, I).

    Buffers, so the fitted mixture travels in the model's state_dict.
    """

    def __init__(self, latent_dim: int, components: int):
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, latent_dim))
        self.register_buffer("chols", torch.eye(latent_dim).repeat(components, 1, 1))

    @property
    def components(self) -> int:
        return len(self.weights)

    @torch.no_grad()
    def fit(self, codes: torch.Tensor, seed: int) -> None:
        """Fit to training codes (N, latent)."""
        if self.components == 1:  # closed form: mean and covariance
            mean = codes.mean(0)
            cov = torch.cov(codes.T.double()).reshape(len(mean), len(mean))
            cov += 1e-6 * torch.eye(len(mean), dtype=cov.dtype)  # keep it positive definite
            self.means[0].copy_(mean)
            self.chols[0].copy_(torch.linalg.cholesky(cov).float())
            return
        from sklearn.mixture import GaussianMixture  # EM with k-means init, seeded

        if self.components > len(codes):
            raise ValueError(f"prior_components={self.components} exceeds the {len(codes)} codes")
        gm = GaussianMixture(self.components, covariance_type="full", random_state=seed)
        gm.fit(codes.double().numpy())
        self.weights.copy_(torch.from_numpy(gm.weights_))
        self.means.copy_(torch.from_numpy(gm.means_))
        self.chols.copy_(torch.linalg.cholesky(torch.from_numpy(gm.covariances_)))

    def forward(self, eps: torch.Tensor) -> torch.Tensor:
        """Standard-normal noise (B, latent) -> codes (B, latent) distributed as the mixture."""
        if self.components == 1:
            return self.means[0] + eps @ self.chols[0].T
        # eps[:, 0] picks the component by inverse transform and, rescaled within it, is
        # again standard normal and independent of the pick: u = Phi(eps0) is uniform; the
        # component c holds u in [lo_c, lo_c + w_c), where (u - lo_c) / w_c is uniform.
        w = self.weights.double()
        hi = torch.cumsum(w, 0)
        u = torch.special.ndtr(eps[:, 0].double())
        c = (u[:, None] >= hi[None, :-1]).sum(1)  # (B,) component index
        v = ((u - (hi - w)[c]) / w[c]).clamp(1e-12, 1 - 1e-12)
        e = torch.cat([torch.special.ndtri(v).to(eps.dtype)[:, None], eps[:, 1:]], 1)
        return self.means[c] + (self.chols[c] @ e[:, :, None])[:, :, 0]  # m_c + L_c e
