"""The EfficientNet-Lite0 export folds its BatchNorm layers in binary64 NumPy (slicer.split.zoo
_fold_batchnorm / _fold_batchnorms) instead of PyTorch's exporter, whose folding goes through a
CPU-dependent 1/sqrt: the folded convolution computes conv then batch norm, its bits are the
binary64 formula rounded once (no CPU-dependent step), and every BatchNorm2d of the model is
folded."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from slicer.split import zoo  # noqa: E402


def conv_and_bn(groups: int, bias: bool, seed: int):  # noqa: ANN201
    gen = torch.Generator().manual_seed(seed)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=groups, bias=bias)
    bn = torch.nn.BatchNorm2d(8, eps=1e-3)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
        if bias:
            conv.bias.copy_(torch.randn(8, generator=gen))
        bn.weight.copy_(torch.rand(8, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(8, generator=gen))
        bn.running_mean.copy_(torch.randn(8, generator=gen))
        bn.running_var.copy_(torch.rand(8, generator=gen) * 3 + 1e-4)
    return conv.eval(), bn.eval()


@pytest.mark.parametrize("groups", [1, 8])
@pytest.mark.parametrize("bias", [False, True])
def test_folded_conv_is_conv_then_batchnorm(groups, bias):
    conv, bn = conv_and_bn(groups, bias, seed=groups + 2 * bias)
    x = torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = bn(conv(x)).double()
        zoo._fold_batchnorm(conv, bn)
        got = conv(x).double()
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_fold_is_the_binary64_formula_rounded_once():
    conv, bn = conv_and_bn(1, True, seed=11)
    w, b = conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy()
    g, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
    mean, var = bn.running_mean.detach().double().numpy(), bn.running_var.detach().double().numpy()
    scale = g / np.sqrt(var + 1e-3)
    zoo._fold_batchnorm(conv, bn)
    assert np.array_equal(
        conv.weight.detach().numpy(), (w * scale[:, None, None, None]).astype(np.float32)
    )
    assert np.array_equal(
        conv.bias.detach().numpy(), ((b - mean) * scale + beta).astype(np.float32)
    )


def test_every_batchnorm_of_efficientnet_lite_is_folded():
    pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0").eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for m in model.modules():  # non-trivial statistics, so that a missed fold would show
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        want = model(x)
        zoo._fold_batchnorms(model)
        got = model(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
