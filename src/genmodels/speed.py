"""Training speed on the CPU: the same maths on faster kernels.

PyTorch's float32 matmul (``torch.mm``, ``F.linear``) calls MKL's sgemm, and MKL
runs its AVX2 kernels on AMD processors even where they have AVX-512; oneDNN, also
inside PyTorch (it already runs the convolutions and the LSTM), dispatches on the
instruction set and runs AVX-512. On this project's 2-core AMD EPYC a
(1120 x 256) @ (256 x 2000) product takes ~250 GFLOP/s on one core through
oneDNN against ~110 through MKL (``python -m genmodels.bench`` measures both).
So:

- ``Linear`` / ``linear``: ``F.linear`` with forward and backward on oneDNN
  (``torch.ops.mkldnn._linear_pointwise``, the kernel inductor uses), in float32,
  only where it pays: CPU, a gradient is wanted (training) and at least
  ``MIN_ROWS`` rows. Inference keeps ``F.linear``: for one generated token the
  per-call weight reorder would cost more than the product.
- ``Dropout``: ``bernoulli_`` draws ~120 M numbers/s on this CPU, ``rand`` ~500 M/s;
  the same inverted dropout from ``rand_like(x) >= p``.
- ``scaled_dot_product_attention``: the attention's dropout with the same mask.
- ``channels_last``, ``flatten``, ``ConvTranspose2d``: the convolutions in oneDNN's NHWC
  order, and a transposed convolution to 1 channel as a 1x1 convolution plus col2im.
- ``adam_options``: the fused Adam/AdamW kernel (``fused=True``), one pass over
  each parameter instead of ~10 elementwise ops (14 ms -> 1.5 ms a step for the
  LSTM's 3.4 M parameters).

Set ``GENMODELS_ONEDNN=0`` to fall back to ``F.linear`` (and ``onednn(False)``
does it in code: the benchmark counts FLOPs on the plain ops). Under bf16 autocast
(``precision.py``) ``linear``, ``Conv2d`` and ``ConvTranspose2d`` give way to PyTorch's
own bf16 kernels: the oneDNN linear and ``Conv2d``'s backward are fp32-only, and the
fold would add the overlapping contributions in bf16 (one 20-epoch VAE-GAN trained
that way: classifier FID 190; two with PyTorch's kernel: 111 and 122). In float32
results are the same maths; only the order of the sums differs, so losses agree to
~1e-6 relative, and a run is still deterministic for a given thread count.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.nn.functional as F
from torch import nn

MIN_ROWS = 16  # below this the weight reorder per call costs more than oneDNN gains

_enabled = os.environ.get("GENMODELS_ONEDNN", "1") != "0"


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@contextlib.contextmanager
def onednn(enabled: bool):
    """Switch the oneDNN linear on or off inside a ``with`` block."""
    global _enabled
    before, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = before


def _mm(a: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ b_t (N, K)^T -> (M, N) on oneDNN; any strides."""
    return torch.ops.mkldnn._linear_pointwise(a, b_t, None, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        # x (M, K), weight (N, K), bias (N,) or None
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")  # (M, N)

    @staticmethod
    def backward(ctx, dy):  # dy (M, N)
        x, weight = ctx.saved_tensors
        # a strided dy (a slice of the adaptive softmax's concatenated scores) sends oneDNN
        # to a reference reorder: 17 s instead of 5 ms for (1120, 2000) x (1120, 192)
        dy = dy.contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = _mm(dy, weight.t())  # (M, N) @ (N, K)
        if ctx.needs_input_grad[1]:
            # dW = dy^T x (N, K). oneDNN is fastest with its left operand contiguous: copy
            # the smaller of dy^T (M x N) and the result (N x K, transposed on the way out)
            if x.size(0) > 2 * x.size(1):
                dw = _mm(x.t(), dy.t()).t()  # ((K, M) @ (M, N))^T
            else:
                dw = _mm(dy.t().contiguous(), x.t())  # (N, M) @ (M, K)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy.sum(0)
        return dx, dw, db


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``; on oneDNN when training float32 on the CPU with >= MIN_ROWS rows."""
    rows = x.numel() // x.size(-1) if x.dim() else 0
    if (
        _enabled
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and torch.is_grad_enabled()
        and (x.requires_grad or weight.requires_grad)
        and rows >= MIN_ROWS
        and onednn_available()
        and not torch.compiler.is_compiling()  # inductor takes only constant weights here
        and not torch.is_autocast_enabled("cpu")  # bf16 autocast: F.linear's bf16 kernels
    ):
        y = _OneDNNLinear.apply(x.reshape(rows, x.size(-1)).contiguous(), weight.contiguous(), bias)
        return y.view(*x.shape[:-1], weight.size(0))
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state_dict) whose training product runs on oneDNN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


class Dropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with ``rand`` (~4x faster than ``bernoulli_`` on CPU).

    Same inverted dropout: an element is zeroed with probability p, the rest scaled
    by 1 / (1 - p). The mask stream differs from ``nn.Dropout``'s, not its law.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        if self.p == 1:
            return x * 0.0
        keep = torch.rand_like(x) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None,
                                 dropout_p: float = 0.0) -> torch.Tensor:
    """``F.scaled_dot_product_attention``; training on the CPU with dropout, the same maths
    (softmax(q k^T / sqrt(d)) v, Vaswani et al. 2017) with ``Dropout``'s faster mask.

    With dropout, PyTorch's CPU attention falls back to its math path and ``bernoulli_``
    (2 x 32 x 4 x 35 x 99 draws a step: 7% of the Transformer's step on one core).
    q (B, nh, T, hs), k and v (B, nh, S, hs), attn_mask (T, S) bool, True = attend.
    """
    if dropout_p == 0 or q.device.type != "cpu" or not torch.is_grad_enabled():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    att = (q @ k.transpose(-2, -1)) * (q.size(-1) ** -0.5)  # (B, nh, T, S)
    if attn_mask is not None:
        att = att.masked_fill(~attn_mask, float("-inf"))
    att = torch.softmax(att, dim=-1)
    keep = torch.rand_like(att) >= dropout_p
    return (att * keep * (1.0 / (1.0 - dropout_p))) @ v  # (B, nh, T, hs)


def channels_last(module: nn.Module) -> nn.Module:
    """``module`` with its 4-D weights in channels-last (NHWC) order, returned.

    oneDNN's convolutions work in NHWC; on NCHW weights every convolution reorders
    its input and output, and the backward of a strided 3x3 convolution falls to a
    slow path: (128, 32, 14, 14) -> (128, 64, 7, 7) takes 10.4 ms forward + backward
    in NCHW and 4.4 ms in NHWC on one core; the classifier's first convolution 18 ms
    and 1.9 ms. Activations follow the weights, ``flatten`` still gives C, H, W order.
    """
    return module.to(memory_format=torch.channels_last)


class _ToContiguous(torch.autograd.Function):
    """x.contiguous() whose gradient goes back in x's channels-last layout."""

    @staticmethod
    def forward(ctx, x):
        ctx.channels_last = not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last)
        return x.contiguous()

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=torch.channels_last) if ctx.channels_last else grad


def flatten(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C*H*W) in C, H, W order, as ``x.flatten(1)``, for NHWC ``x``.

    ``flatten`` copies an NHWC tensor to NCHW and hands its gradient back in NCHW, so
    the activation before it computes its backward on mixed layouts, unvectorized
    (LeakyReLU's backward on (128, 64, 7, 7): ~1.5 ms instead of ~0.1). Here the
    gradient is put back in NHWC first: conv + batch norm + LeakyReLU + flatten + linear,
    forward and backward, 11.2 -> 9.0 ms on one core.
    """
    return _ToContiguous.apply(x).flatten(1)


FEW_CHANNELS = 4  # an image's channels: below oneDNN's 16-channel vector width


def conv_transpose2d_fold(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          stride, padding, output_padding) -> torch.Tensor:
    """``F.conv_transpose2d`` (no groups, no dilation) as a 1x1 convolution to C_out x k x k
    planes, then col2im (``F.fold``), which adds the overlapping contributions.

    oneDNN vectorizes a transposed convolution over output channels; with one (the
    decoders' last layer, 32 -> 1) it runs at ~6 GFLOP/s: 2.1 ms forward and 2.9 ms
    forward + backward for a batch of 128 on one core, 0.5 and 1.4 ms this way.
    """
    b, c_in, h, w = x.shape  # (B, C_in, H, W)
    c_out, kh, kw = weight.shape[1:]  # weight (C_in, C_out, kh, kw)
    planes = weight.reshape(c_in, c_out * kh * kw).t().reshape(c_out * kh * kw, c_in, 1, 1)
    cols = F.conv2d(x, planes).flatten(2)  # (B, C_out*kh*kw, H*W)
    size = ((h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0],
            (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1])
    y = F.fold(cols, size, (kh, kw), padding=padding, stride=stride)  # (B, C_out, H', W')
    return y if bias is None else y + bias.view(1, -1, 1, 1)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters); with few output channels on the CPU it runs
    as ``conv_transpose2d_fold``."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dim() == 4 and self.out_channels <= FEW_CHANNELS
                and self.groups == 1 and self.dilation == (1, 1) and output_size is None
                and self.padding_mode == "zeros"
                and not torch.is_autocast_enabled("cpu")):  # fold would add in bf16
            return conv_transpose2d_fold(x, self.weight, self.bias, self.stride, self.padding,
                                         self.output_padding)
        return super().forward(x, output_size)


class _ConvFewInputs(torch.autograd.Function):
    """F.conv2d whose input gradient, a transposed convolution to the few input
    channels, runs as ``conv_transpose2d_fold`` (oneDNN's takes ~2 ms for 128 images)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors  # weight (C_out, C_in, kh, kw): the transposed conv's
        stride, padding = ctx.stride, ctx.padding
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            extra = [x.shape[2 + i] - ((dy.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                       + weight.shape[2 + i]) for i in range(2)]
            dx = conv_transpose2d_fold(dy, weight, None, stride, padding, extra)
        want_w, want_b = ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]
        if want_w or want_b:
            _, dw, db = torch.ops.aten.convolution_backward(
                dy, x, weight, [weight.shape[0]] if ctx.has_bias else None, stride, padding,
                [1, 1], False, [0, 0], 1, [False, want_w, want_b])
        return dx, dw, db, None, None


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters); with few input channels on the CPU, its input
    gradient (the discriminator's, through generated images) runs as
    ``conv_transpose2d_fold``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dim() == 4 and self.in_channels <= FEW_CHANNELS
                and x.requires_grad and torch.is_grad_enabled() and self.groups == 1
                and self.dilation == (1, 1) and self.padding_mode == "zeros"
                and not isinstance(self.padding, str)
                and not torch.is_autocast_enabled("cpu")):  # the backward below is fp32-only
            return _ConvFewInputs.apply(x, self.weight, self.bias, self.stride, self.padding)
        return super().forward(x)


def adam_options(params) -> dict:
    """Extra Adam/AdamW arguments: the fused kernel where every parameter is on a device
    that has one (CPU and CUDA, float32); empty otherwise."""
    params = list(params)
    if params and all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params):
        return {"fused": True}
    return {}
