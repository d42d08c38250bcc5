"""VAE-GAN: a VAE whose reconstruction error is measured by a GAN's discriminator.

Larsen, Sonderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a
learned similarity metric" (arXiv 1512.09300). With x~ = Dec(z), z ~ q(z|x), and
x_p = Dec(z_p), z_p ~ N(0, I), and Dis_l the discriminator's hidden features:

    L_prior = KL(q(z|x) || p(z))                             (eq. 3)
    L_llike = -E_q log N(Dis_l(x) | Dis_l(x~), I)            (eq. 5, up to a constant)
    L_GAN   = log D(x) + log(1 - D(x~)) + log(1 - D(x_p))    (eq. 9, both fakes)

    encoder:       minimise beta * L_prior + L_llike          (Alg. 1 has beta = 1)
    decoder:       minimise gamma * L_llike - L_GAN
    discriminator: maximise L_GAN

The decoder's GAN term uses the non-saturating form (-log D(fake)), as
pytorch/examples' DCGAN does. Three optimizers; the step is ``train_step``.
"""

from __future__ import annotations

import copy
from typing import Annotated, Literal

import pydantic
import torch
import torch.nn as nn
import torch.nn.functional as F

from genmodels import speed
from genmodels.config import config
from genmodels.images.autoencoder import (
    Channels,
    ConvDecoder,
    ConvEncoder,
    ImageModel,
    PositiveFloat,
    PositiveInt,
    PriorComponents,
    bernoulli_nll,
    conv_out_side,
    gaussian_kl,
    prior_size,
)
from genmodels.images.code_prior import CodePrior
from genmodels.precision import Precision


@config
class VAEGANConfig:
    """``train_image.<name>`` for the ``vaegan`` family."""

    family: Literal["vaegan"]
    latent_dim: PositiveInt            # 128 in the workshop
    channels: Channels  # encoder/decoder conv widths
    hidden_dim: Annotated[int, pydantic.Field(ge=0)]
    disc_channels: Channels  # discriminator conv widths; the last is Dis_l
    gamma: PositiveFloat               # weight of L_llike against L_GAN for the decoder
    beta: PositiveFloat                # weight of L_prior in the encoder loss (1: Larsen et al.)
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    beta1: Annotated[float, pydantic.Field(ge=0, lt=1)]  # Adam's beta1 (0.5 for GANs, DCGAN)
    seed: int
    # Target of the discriminator on real images: < 1 is one-sided label smoothing
    # (Salimans et al. 2016, arXiv 1606.03498), which keeps it from overpowering the decoder.
    real_label: Annotated[float, pydantic.Field(gt=0.5, le=1)] = 1.0
    # GAN practice after Larsen et al.: spectral normalisation of the discriminator's layers
    # (Miyato et al. 2018, arXiv 1802.05957; it then has no batch norm), the two time-scale
    # update rule (Heusel et al. 2017, arXiv 1706.08500: the discriminator's lr is
    # dis_lr_scale x lr), and an exponential moving average of the decoder's weights for
    # sampling and evaluation (Yazici et al. 2019, arXiv 1806.04498; 0 = off)
    spectral_norm: bool = False
    dis_lr_scale: PositiveFloat = 1.0
    ema: Annotated[float, pydantic.Field(ge=0, lt=1)] = 0.0
    limit_batches: Annotated[int, pydantic.Field(ge=0)] = 0
    precision: Precision = "auto"  # training steps' arithmetic (precision.py)
    prior_components: PriorComponents = None  # see autoencoder.py
    prior_images: PositiveInt = 10_000


class Discriminator(nn.Module):
    """(B, C, H, W) -> hidden features Dis_l (B, F) and a real/fake logit (B,)."""

    def __init__(self, image_shape, channels, spectral_norm: bool = False):
        super().__init__()
        c, h, w = image_shape
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers, c_in = [], c
        for i, c_out in enumerate(channels):  # DCGAN: batch norm on all but the first conv
            norm = nn.BatchNorm2d(c_out) if i > 0 and not spectral_norm else nn.Identity()
            layers += [sn(speed.Conv2d(c_in, c_out, 3, stride=2, padding=1)),  # faster dx
                       norm, nn.LeakyReLU(0.2)]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        flat = c_in * conv_out_side(h, len(channels)) * conv_out_side(w, len(channels))
        self.out = sn(speed.Linear(flat, 1))

    def features(self, x):
        return speed.flatten(self.convs(x))  # (B, 64 * 7 * 7)

    def forward(self, x):
        f = self.features(x)
        return f, self.out(f).squeeze(1)  # (B, F), (B,)


class VAEGAN(ImageModel):
    def __init__(self, cfg: VAEGANConfig, image_shape=(1, 28, 28)):
        super().__init__()
        self.config = cfg
        self.encoder = ConvEncoder(image_shape, cfg.channels, cfg.hidden_dim, 2 * cfg.latent_dim,
                                   batchnorm=True)
        self.decoder = ConvDecoder(image_shape, cfg.channels, cfg.hidden_dim, cfg.latent_dim,
                                   batchnorm=True)
        self.discriminator = Discriminator(image_shape, cfg.disc_channels, cfg.spectral_norm)
        # The decoder's moving average: what samples and evaluation use (see VAEGANConfig.ema)
        self.decoder_ema = copy.deepcopy(self.decoder).requires_grad_(False) if cfg.ema else None
        k = prior_size(cfg)
        self.prior = CodePrior(cfg.latent_dim, k) if k else None
        speed.channels_last(self)  # oneDNN's convolutions run in NHWC (speed.py)

    @torch.no_grad()
    def update_ema(self) -> None:
        """decoder_ema <- ema * decoder_ema + (1 - ema) * decoder; buffers (batch-norm
        statistics) copied."""
        if self.decoder_ema is None:
            return
        for avg, p in zip(self.decoder_ema.parameters(), self.decoder.parameters(), strict=True):
            avg.lerp_(p, 1 - self.config.ema)
        for avg, b in zip(self.decoder_ema.buffers(), self.decoder.buffers(), strict=True):
            avg.copy_(b)

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, latent) each
        return mu, logvar

    def decode(self, z):
        """(B, latent) -> (B, C, H, W) logits; out of training, by the decoder's average."""
        if self.decoder_ema is not None and not self.training:
            return self.decoder_ema(z)
        return self.decoder(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterization
        return {"mu": mu, "logvar": logvar, "z": z, "logits": self.decode(z)}

    def loss(self, x, out):
        """All named terms on a batch, for validation (no parameter changes)."""
        x_rec = torch.sigmoid(out["logits"])
        x_p = torch.sigmoid(self.decode(torch.randn_like(out["mu"])))
        f_real, d_real = self.discriminator(x)
        f_rec, d_rec = self.discriminator(x_rec)
        _, d_p = self.discriminator(x_p)
        kl = gaussian_kl(out["mu"], out["logvar"]).mean()
        llike = feature_nll(f_rec, f_real).mean()
        gan_dec = _bce(d_rec, 1.0) + _bce(d_p, 1.0)
        disc = _bce(d_real, self.config.real_label) + _bce(d_rec, 0.0) + _bce(d_p, 0.0)
        return {
            "loss": self.config.beta * kl + llike + self.config.gamma * llike + gan_dec,
            "kl": kl,
            "llike": llike,
            "encoder": self.config.beta * kl + llike,
            "decoder": self.config.gamma * llike + gan_dec,
            "discriminator": disc,
            "recon": bernoulli_nll(out["logits"], x).mean(),
        }

    def make_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        betas = (self.config.beta1, 0.999)
        rates = (lr, lr, lr * self.config.dis_lr_scale)  # TTUR: the discriminator's own rate
        return [torch.optim.Adam(net.parameters(), lr=rate, betas=betas,
                                 **speed.adam_options(net.parameters()))
                for net, rate in zip((self.encoder, self.decoder, self.discriminator), rates,
                                     strict=True)]

    def train_step(self, x, optimizers) -> dict[str, float]:
        opt_enc, opt_dec, opt_dis = optimizers
        enc, dec, dis = self.encoder, self.decoder, self.discriminator

        # Forward: reconstructions of the batch and decoded prior samples.
        mu, logvar = self.encode(x)                                   # (B, latent)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        x_rec = torch.sigmoid(dec(z))                                 # (B, 1, 28, 28)
        x_p = torch.sigmoid(dec(torch.randn_like(mu)))                # (B, 1, 28, 28)

        # (1) Discriminator: real vs both fakes; fakes detached so only Dis learns.
        _, d_real = dis(x)
        _, d_rec = dis(x_rec.detach())
        _, d_p = dis(x_p.detach())
        loss_dis = _bce(d_real, self.config.real_label) + _bce(d_rec, 0.0) + _bce(d_p, 0.0)
        opt_dis.zero_grad(set_to_none=True)
        loss_dis.backward()
        opt_dis.step()

        # (2) Encoder and decoder against the updated discriminator. Each gets the
        # gradient of its own loss only (Alg. 1), so take them separately.
        f_real = dis.features(x).detach()
        f_rec, d_rec = dis(x_rec)
        _, d_p = dis(x_p)
        kl = gaussian_kl(mu, logvar).mean()
        llike = feature_nll(f_rec, f_real).mean()
        gan_dec = _bce(d_rec, 1.0) + _bce(d_p, 1.0)  # non-saturating -L_GAN
        loss_enc = self.config.beta * kl + llike
        loss_dec = self.config.gamma * llike + gan_dec
        enc_params, dec_params = list(enc.parameters()), list(dec.parameters())
        grads_enc = torch.autograd.grad(loss_enc, enc_params, retain_graph=True)
        grads_dec = torch.autograd.grad(loss_dec, dec_params)
        for p, g in zip(enc_params, grads_enc, strict=True):
            p.grad = g
        for p, g in zip(dec_params, grads_dec, strict=True):
            p.grad = g
        opt_enc.step()
        opt_dec.step()
        self.update_ema()
        dis.zero_grad(set_to_none=True)  # the enc/dec losses left no grads we want there

        return {
            "loss": (loss_enc + loss_dec).item(),
            "kl": kl.item(),
            "llike": llike.item(),
            "encoder": loss_enc.item(),
            "decoder": loss_dec.item(),
            "discriminator": loss_dis.item(),
        }


def feature_nll(f_rec: torch.Tensor, f_real: torch.Tensor) -> torch.Tensor:
    """-log N(f_real | f_rec, I) per image, without the constant (Larsen et al. eq. 5)."""
    return 0.5 * (f_rec - f_real).pow(2).sum(1)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
