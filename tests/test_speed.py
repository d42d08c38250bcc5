"""The faster kernels compute the same maths as the PyTorch ops they replace."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genmodels import speed

needs_onednn = pytest.mark.skipif(not speed.onednn_available(), reason="no oneDNN in this build")


def grads(fn, *tensors):
    for t in tensors:
        t.grad = None
    out = fn()
    out.backward(torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape).cos())
    return [out.detach()] + [t.grad.clone() for t in tensors]


@needs_onednn
@pytest.mark.parametrize("rows, n_in, n_out", [(64, 8, 40), (40, 24, 6)])  # both dW operand orders
def test_onednn_linear_matches_f_linear(rows, n_in, n_out):
    torch.manual_seed(0)
    x = torch.randn(2, rows // 2, n_in, requires_grad=True)
    w = torch.randn(n_out + 3, n_in, requires_grad=True)
    b = torch.randn(n_out + 3, requires_grad=True)
    ours = grads(lambda: speed.linear(x, w[:n_out], b[:n_out]), x, w, b)
    with speed.onednn(False):
        ref = grads(lambda: speed.linear(x, w[:n_out], b[:n_out]), x, w, b)
    for a, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_strided_output_gradient():
    """The adaptive softmax hands the head a slice of a concatenation's gradient."""
    x = torch.randn(32, 8, requires_grad=True)
    w = torch.randn(12, 8, requires_grad=True)
    ours = grads(lambda: torch.cat([speed.linear(x, w), x], 1)[:, 3:], x, w)
    ref = grads(lambda: torch.cat([F.linear(x, w), x], 1)[:, 3:], x, w)
    for a, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


def test_linear_keeps_f_linear_for_inference_and_few_rows():
    layer = speed.Linear(8, 4)
    many = torch.randn(64, 8)
    with torch.no_grad():  # generation and evaluation: bit for bit F.linear
        assert torch.equal(layer(many), F.linear(many, layer.weight, layer.bias))
    assert layer(torch.randn(3, 8)).grad_fn.name() == "AddmmBackward0"  # 3 rows < MIN_ROWS
    assert set(layer.state_dict()) == {"weight", "bias"}  # checkpoints are nn.Linear's


def test_dropout_is_inverted_dropout():
    torch.manual_seed(0)
    drop = speed.Dropout(0.3)
    x = torch.ones(200_000)
    y = drop(x)
    zeros = (y == 0).float().mean().item()
    assert abs(zeros - 0.3) < 0.01
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))
    drop.eval()
    assert torch.equal(drop(x), x)


@pytest.mark.parametrize("c_in, c_out, stride, padding, output_padding, bias",
                         [(6, 1, 2, 1, 1, True), (4, 3, 2, 1, 0, False), (5, 2, 1, 0, 0, True)])
def test_transposed_conv_as_fold_matches(c_in, c_out, stride, padding, output_padding, bias):
    torch.manual_seed(0)
    ref = nn.ConvTranspose2d(c_in, c_out, 3, stride, padding, output_padding, bias=bias)
    ours = speed.ConvTranspose2d(c_in, c_out, 3, stride, padding, output_padding, bias=bias)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, c_in, 7, 6, requires_grad=True)
    a = grads(lambda: ours(x), x, ours.weight)
    r = grads(lambda: ref(x), x, ref.weight)
    for got, want in zip(a, r, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_attention_without_dropout_is_pytorchs():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 9, 4), torch.randn(2, 3, 9, 4)
    mask = torch.ones(5, 9, dtype=torch.bool).tril(4)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(speed.scaled_dot_product_attention(q, k, v, mask), want)
    # the training path (tiny dropout: the mask keeps everything) is the same maths
    got = speed.scaled_dot_product_attention(q.requires_grad_(), k, v, mask, dropout_p=1e-9)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_channels_last_changes_layout_not_values():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    x = torch.randn(2, 1, 8, 8)
    want = net(x)
    speed.channels_last(net)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(net(x), want)


def test_adam_options_fuse_on_cpu():
    p = [nn.Parameter(torch.zeros(3))]
    assert speed.adam_options(p) == {"fused": True}
    assert speed.adam_options([nn.Parameter(torch.zeros(3, dtype=torch.float64))]) == {}
    torch.optim.AdamW(p, **speed.adam_options(p)).step()  # the fused kernel exists here


def test_flatten_is_flatten_with_the_gradient_in_nhwc():
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = speed.flatten(x)
    assert torch.equal(y, x.flatten(1))
    y.backward(torch.ones_like(y))
    assert x.grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("stride, padding, side", [(2, 1, 28), (1, 1, 9), (2, 0, 9)])
def test_conv_with_few_inputs_has_the_same_gradients(stride, padding, side):
    torch.manual_seed(0)
    ref = nn.Conv2d(1, 6, 3, stride, padding)
    ours = speed.Conv2d(1, 6, 3, stride, padding)
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(3, 1, side, side, requires_grad=True)
    a = grads(lambda: ours(x), x, ours.weight, ours.bias)
    assert ours(x).grad_fn.name().endswith("_ConvFewInputsBackward")
    r = grads(lambda: ref(x), x, ref.weight, ref.bias)
    for got, want in zip(a, r, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_kernels_step_aside_under_bf16_autocast():
    """The oneDNN linear and the few-input convolution's backward are fp32-only: under CPU
    bf16 autocast (precision.py) the VAE-GAN's discriminator step failed in oneDNN. The
    fold would add in bf16: PyTorch's transposed convolution runs instead."""
    torch.manual_seed(0)
    conv, lin = speed.Conv2d(1, 6, 3, 2, 1), speed.Linear(6 * 14 * 14, 5)
    x = torch.rand(32, 1, 28, 28, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lin(speed.flatten(conv(x)))
        assert y.dtype == torch.bfloat16 and "_ConvFewInputs" not in str(y.grad_fn.next_functions)
        y.float().sum().backward()
    assert x.grad.dtype == conv.weight.grad.dtype == lin.weight.grad.dtype == torch.float32
    assert x.grad.isfinite().all()
    up = speed.ConvTranspose2d(6, 1, 4, 2, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "Convolution" in up(torch.rand(2, 6, 14, 14)).grad_fn.name()
    assert "Convolution" not in up(torch.rand(2, 6, 14, 14)).grad_fn.name()  # fp32: the fold
