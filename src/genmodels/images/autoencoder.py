"""Convolutional autoencoder and variational autoencoder, sharing one encoder/decoder.

The nets are the workshop's: two stride-2 convolutions (32 -> 64 channels, ReLU),
a dense layer to the latent code, and the mirrored transposed convolutions back
to pixel logits. Every size comes from the config and the data's image shape.

One contract for the family (see also ``vaegan.py``):
    encode(x) -> code (AE) or (mu, logvar) (VAE)
    decode(z) -> pixel logits (B, C, H, W)
    forward(x) -> dict of outputs
    loss(x, out) -> dict of named terms, "loss" is the one to minimise (nats per image)
    z_from_noise(eps) -> latent codes for standard-normal noise (the prior: N(0, I), or
        the ``CodePrior`` mixture fitted to the training codes, code_prior.py)
    sample(n, generator) -> images in [0, 1]
    train_step(x, optimizers) -> dict of floats; make_optimizers() -> list
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
import torch
import torch.nn as nn
import torch.nn.functional as F

from genmodels import speed
from genmodels.config import config
from genmodels.images.code_prior import CodePrior
from genmodels.precision import Precision

PositiveInt = Annotated[int, pydantic.Field(gt=0)]
# conv widths: at least one conv (an empty list builds a net the checkpoint code cannot mirror)
Channels = Annotated[tuple[PositiveInt, ...], pydantic.Field(min_length=1)]
PositiveFloat = Annotated[float, pydantic.Field(gt=0)]
# Where samples come from (code_prior.py): 0, the model's own N(0, I); K > 0, a K-component
# Gaussian mixture fitted after training to the codes of prior_images training images (one
# posterior draw each). None: the family's own, 0, or 1 for the AE, which has no prior.
PriorComponents = Annotated[int, pydantic.Field(ge=0)] | None


@config
class AutoencoderConfig:
    """``train_image.<name>`` for the ``ae`` and ``vae`` families."""

    family: Literal["ae", "vae"]
    latent_dim: PositiveInt          # 2 for the pictures; 16 or 32 work too
    channels: Channels  # conv widths, each conv halves the image side
    hidden_dim: Annotated[int, pydantic.Field(ge=0)]  # dense layer before the code; 0: none
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    seed: int
    limit_batches: Annotated[int, pydantic.Field(ge=0)] = 0  # > 0: smoke runs only
    precision: Precision = "auto"  # training steps' arithmetic (precision.py)
    prior_components: PriorComponents = None
    prior_images: PositiveInt = 10_000
    # The VAE's weight on its KL term: 1 is the ELBO; < 1 buys sharper reconstructions
    # with codes that fill N(0, I) less well (Higgins et al. 2017's beta, used below 1),
    # which a fitted code prior makes up for (Ghosh et al. 2020, section 4)
    beta: PositiveFloat = 1.0

    def __post_init__(self):
        if self.family == "ae" and self.prior_components == 0:
            raise ValueError("prior_components: the AE has no prior of its own; "
                             "it needs a fitted one (1 or more)")
        if self.family == "ae" and self.beta != 1.0:
            raise ValueError("beta: the AE has no KL term to weigh")


def prior_size(cfg) -> int:
    """The number of fitted mixture components ``cfg`` asks for (0: sample N(0, I))."""
    if cfg.prior_components is not None:
        return cfg.prior_components
    return 1 if cfg.family == "ae" else 0


def conv_out_side(side: int, n_convs: int) -> int:
    """Image side after ``n_convs`` stride-2 convolutions; must divide exactly to mirror."""
    if side % (2**n_convs) != 0:
        raise ValueError(f"image side {side} is not divisible by 2**{n_convs}: "
                         f"use fewer conv channels")
    return side // 2**n_convs


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_dim): stride-2 convs, then dense layers."""

    def __init__(self, image_shape, channels, hidden_dim: int, out_dim: int,
                 batchnorm: bool = False):
        super().__init__()
        c, h, w = image_shape
        layers, c_in = [], c
        for c_out in channels:  # each conv halves the side: 28 -> 14 -> 7
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _norm(c_out, batchnorm),
                       nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        flat = c_in * conv_out_side(h, len(channels)) * conv_out_side(w, len(channels))
        head = [speed.Linear(flat, hidden_dim), nn.ReLU(), speed.Linear(hidden_dim, out_dim)] \
            if hidden_dim else [speed.Linear(flat, out_dim)]
        self.head = nn.Sequential(*head)

    def forward(self, x):
        h = self.convs(x)                  # (B, 64, 7, 7)
        return self.head(speed.flatten(h))       # (B, out_dim)


class ConvDecoder(nn.Module):
    """(B, latent) -> (B, C, H, W) pixel logits; the encoder's mirror image."""

    def __init__(self, image_shape, channels, hidden_dim: int, latent_dim: int,
                 batchnorm: bool = False):
        super().__init__()
        c, h, w = image_shape
        self.start = (channels[-1], conv_out_side(h, len(channels)), conv_out_side(w, len(channels)))
        flat = self.start[0] * self.start[1] * self.start[2]
        head = [speed.Linear(latent_dim, hidden_dim), nn.ReLU(), speed.Linear(hidden_dim, flat)] \
            if hidden_dim else [speed.Linear(latent_dim, flat)]
        self.head = nn.Sequential(*head, nn.ReLU())
        layers = []
        widths = [*reversed(channels), c]  # 64 -> 32 -> 1
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(speed.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1,
                                          output_padding=1))
            if i < len(widths) - 2:  # no normalisation or activation on the logits
                layers += [_norm(c_out, batchnorm), nn.ReLU()]
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z):
        h = self.head(z).view(-1, *self.start)  # (B, 64, 7, 7)
        return self.deconvs(h)                  # (B, 1, 28, 28) logits


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    # Batch norm steadies GAN training (Radford et al. 2016, DCGAN); the plain
    # AE and VAE do without, as in the workshop.
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) per image, in nats, for intensities x in [0, 1] read as Bernoulli means."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per row, in nats.

    Closed form from Kingma & Welling 2014 (arXiv 1312.6114), appendix B:
    -KL = 1/2 * sum(1 + log(sigma^2) - mu^2 - sigma^2).
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


class ImageModel(nn.Module):
    """What the training loop needs: one optimizer, one minimised ``loss`` term.

    Subclasses set ``self.prior``: a ``CodePrior`` to sample from, or None for N(0, I).
    """

    prior: CodePrior | None

    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr, **speed.adam_options(self.parameters()))]

    def train_step(self, x: torch.Tensor, optimizers) -> dict[str, float]:
        (opt,) = optimizers
        terms = self.loss(x, self(x))
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        return {k: v.item() for k, v in terms.items()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images in [0, 1] decoded from the prior, (n, C, H, W)."""
        eps = torch.randn(n, self.config.latent_dim, generator=generator)
        return torch.sigmoid(self.decode(self.z_from_noise(eps.to(self.device))))

    @torch.no_grad()
    def encode_means(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The code (AE) or posterior mean (VAE, VAE-GAN) of every image, (N, latent)."""
        was_training = self.training
        self.eval()
        out = []
        for x in images.split(batch_size):
            code = self.encode(x.to(self.device))
            out.append((code[0] if isinstance(code, tuple) else code).cpu())
        self.train(was_training)
        return torch.cat(out)

    @torch.no_grad()
    def encode_draws(self, images: torch.Tensor, generator: torch.Generator,
                     batch_size: int = 1000) -> torch.Tensor:
        """One code per image: the AE's code, or a draw z ~ q(z|x) (VAE, VAE-GAN), so that
        together they sample the aggregate posterior, the density the prior should match."""
        was_training = self.training
        self.eval()
        out = []
        for x in images.split(batch_size):
            code = self.encode(x.to(self.device))
            if isinstance(code, tuple):
                mu, logvar = code
                eps = torch.randn(mu.shape, generator=generator).to(mu.device)
                code = mu + torch.exp(0.5 * logvar) * eps
            out.append(code.cpu())
        self.train(was_training)
        return torch.cat(out)

    def fit_prior(self, images: torch.Tensor, seed: int) -> None:
        """Fit the code prior, if the model samples from one, to the codes of ``images``."""
        if self.prior is not None:
            codes = self.encode_draws(images, torch.Generator().manual_seed(seed))
            self.prior.fit(codes, seed)

    def z_from_noise(self, eps):
        """Standard-normal noise (B, latent) -> codes drawn from the prior (B, latent)."""
        return eps if self.prior is None else self.prior(eps)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class Autoencoder(ImageModel):
    """Deterministic autoencoder trained on Bernoulli reconstruction alone.

    It is not a generative model: nothing shapes where its codes lie, so there
    is no distribution to sample from. To show it, ``sample`` decodes draws from
    a Gaussian fitted to the training codes (``fit_prior``, one component by
    default); the codes fill an irregular region, and the Gaussian puts mass in
    its holes.
    """

    def __init__(self, cfg: AutoencoderConfig, image_shape=(1, 28, 28)):
        super().__init__()
        self.config = cfg
        self.encoder = ConvEncoder(image_shape, cfg.channels, cfg.hidden_dim, cfg.latent_dim)
        self.decoder = ConvDecoder(image_shape, cfg.channels, cfg.hidden_dim, cfg.latent_dim)
        self.prior = CodePrior(cfg.latent_dim, prior_size(cfg))  # N(0, I) until fitted
        speed.channels_last(self)  # oneDNN's convolutions run in NHWC (speed.py)

    def encode(self, x):
        return self.encoder(x)  # (B, latent)

    def decode(self, z):
        return self.decoder(z)  # (B, C, H, W) logits

    def forward(self, x):
        z = self.encode(x)
        return {"z": z, "logits": self.decode(z)}

    def loss(self, x, out):
        recon = bernoulli_nll(out["logits"], x).mean()
        return {"loss": recon, "recon": recon}



class VAE(ImageModel):
    """Variational autoencoder (Kingma & Welling 2014) with a Gaussian encoder.

    loss = Bernoulli reconstruction + beta * KL(q(z|x) || N(0, I)), both in nats
    per image: with beta = 1, the negative ELBO.
    """

    def __init__(self, cfg: AutoencoderConfig, image_shape=(1, 28, 28)):
        super().__init__()
        self.config = cfg
        self.encoder = ConvEncoder(image_shape, cfg.channels, cfg.hidden_dim, 2 * cfg.latent_dim)
        self.decoder = ConvDecoder(image_shape, cfg.channels, cfg.hidden_dim, cfg.latent_dim)
        k = prior_size(cfg)
        self.prior = CodePrior(cfg.latent_dim, k) if k else None
        speed.channels_last(self)  # oneDNN's convolutions run in NHWC (speed.py)

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, latent) each
        return mu, logvar

    def decode(self, z):
        return self.decoder(z)

    def reparameterize(self, mu, logvar):
        # z = mu + sigma * eps keeps the draw differentiable in mu and sigma.
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return {"mu": mu, "logvar": logvar, "z": z, "logits": self.decode(z)}

    def loss(self, x, out):
        recon = bernoulli_nll(out["logits"], x).mean()
        kl = gaussian_kl(out["mu"], out["logvar"]).mean()
        return {"loss": recon + self.config.beta * kl, "recon": recon, "kl": kl}
