"""The arithmetic of training steps: fp32, or bf16 autocast where the hardware has it.

bf16 autocast (Micikevicius et al. 2018, "Mixed Precision Training", arXiv 1710.03740):
matrix products and convolutions in bf16; weights, optimizer state, softmax and losses
in fp32. bf16 keeps fp32's exponent range, so no loss scaling. Each trainee's config
has ``precision: auto | fp32 | bf16``; evaluation stays fp32 on the CPU.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]


def bf16_hardware(device: torch.device) -> bool:
    """CUDA, or a CPU with bf16 products in hardware (AVX512-BF16 or AMX). Elsewhere bf16
    is emulated and slower than fp32."""
    if device.type == "cuda":
        return True
    cpu = torch.cpu
    return device.type == "cpu" and any(
        getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def uses_bf16(precision: Precision, device: torch.device) -> bool:
    """Whether training steps run in bf16 autocast: ``auto`` takes it where the hardware
    does bf16 products (README, "Precision", has what it changed for each model).

    ``bf16`` on a CPU without bf16 products is refused: emulated, the VAE-GAN's step ran
    10.7x slower than fp32 on an AVX2-only AMD EPYC (2,140 against 200 ms), and oneDNN has
    no LSTM kernel for it there ("could not create a primitive descriptor")."""
    if precision == "bf16" and device.type == "cpu" and not bf16_hardware(device):
        raise ValueError("precision: bf16 needs a CPU with bf16 products (AVX512-BF16 or AMX), "
                         "which this one lacks; use auto or fp32")
    if precision != "auto":
        return precision == "bf16"
    return bf16_hardware(device)


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` if ``bf16``, else nothing. ``speed.py``'s fp32 kernels
    (its ``linear``, ``Conv2d`` and ``ConvTranspose2d``) step aside under it."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
