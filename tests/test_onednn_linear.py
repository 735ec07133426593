"""policies/onednn_linear.py: oneDNN's layers give torch.nn.functional.linear's values and
gradients, module by module."""

import pytest
import torch

from policies import onednn_linear
from policies.onednn_linear import StackedLinear

pytestmark = pytest.mark.skipif(not onednn_linear.available(),
                                reason="this PyTorch build has no oneDNN")

_TORCH = {None: lambda y: y, torch.relu_: torch.relu, torch.tanh_: torch.tanh}


@pytest.mark.parametrize("activation", [None, torch.relu_, torch.tanh_])
@pytest.mark.parametrize("groups,rows,n_in,n_out", [(1, 7, 3, 5), (3, 64, 15, 32),
                                                    (4, 33, 32, 1)])
@pytest.mark.parametrize("input_grad", [False, True])
def test_values_and_gradients_equal_torch_linear(activation, groups, rows, n_in, n_out,
                                                 input_grad):
    gen = torch.Generator().manual_seed(groups * rows + n_out)
    weight = torch.randn(groups, n_out, n_in, generator=gen, dtype=torch.float64).float()
    bias = torch.randn(groups, n_out, generator=gen, dtype=torch.float64).float()
    xs = [torch.randn(rows, n_in, generator=gen) for _ in range(groups)]
    upstream = [torch.randn(rows, n_out, generator=gen) for _ in range(groups)]

    w1, b1 = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    x1 = [x.clone().requires_grad_(input_grad) for x in xs]
    ys = StackedLinear.layer(w1, b1, activation, tuple(x1))
    sum((y * u).sum() for y, u in zip(ys, upstream, strict=True)).backward()

    w2, b2 = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    x2 = [x.clone().requires_grad_(input_grad) for x in xs]
    want = [_TORCH[activation](torch.nn.functional.linear(x, w2[g], b2[g]))
            for g, x in enumerate(x2)]
    sum((y * u).sum() for y, u in zip(want, upstream, strict=True)).backward()

    assert len(ys) == groups
    for y, w in zip(ys, want, strict=True):
        assert y.shape == (rows, n_out)
        torch.testing.assert_close(y, w, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-4, atol=1e-4)
    for a, b in zip(x1, x2, strict=True):
        if input_grad:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-4)
        else:
            assert a.grad is None


def test_a_layer_chain_backpropagates_through_every_module():
    """Two layers: the second's input gradient reaches the first's weights, per module."""
    gen = torch.Generator().manual_seed(0)
    w1, b1 = torch.randn(2, 8, 4, generator=gen), torch.zeros(2, 8)
    w2, b2 = torch.randn(2, 3, 8, generator=gen), torch.zeros(2, 3)
    xs = tuple(torch.randn(5, 4, generator=gen) for _ in range(2))
    leaves = [t.clone().requires_grad_(True) for t in (w1, b1, w2, b2)]
    hs = StackedLinear.layer(leaves[0], leaves[1], torch.relu_, xs)
    out = StackedLinear.layer(leaves[2], leaves[3], None, hs)
    torch.stack(out).square().sum().backward()
    ref = [t.clone().requires_grad_(True) for t in (w1, b1, w2, b2)]
    want = [torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(
        x, ref[0][g], ref[1][g])), ref[2][g], ref[3][g]) for g, x in enumerate(xs)]
    torch.stack(want).square().sum().backward()
    for a, b in zip(leaves, ref, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-4)


def test_supported_activations():
    assert onednn_linear.supports(None) and onednn_linear.supports(torch.relu_)
    assert onednn_linear.supports(torch.tanh_)
    assert not onednn_linear.supports(torch.sigmoid)


@pytest.mark.parametrize("rows", [5, 127, 128, 600])
def test_path_forward_equals_the_modules_layers_small_and_large(rows):
    """ppo_mlp.path_forward: MKL's addmm below ONEDNN_MIN_ROWS, oneDNN from it on (without
    autograd); the same values either way, and autograd still works with gradients on."""
    from policies.ppo_mlp import ONEDNN_MIN_ROWS, path_forward

    torch.manual_seed(rows)
    net = torch.nn.Sequential(torch.nn.Linear(15, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.Tanh(), torch.nn.Linear(64, 5))
    path = [(net[0], torch.relu_), (net[2], torch.tanh_), (net[4], None)]
    x = torch.randn(rows, 15)
    calls = []
    real = onednn_linear.linear
    onednn_linear.linear = lambda *a: calls.append(1) or real(*a)
    try:
        with torch.no_grad():
            got = path_forward(path, x)
    finally:
        onednn_linear.linear = real
    assert bool(calls) == (rows >= ONEDNN_MIN_ROWS)
    torch.testing.assert_close(got, net(x).detach(), rtol=1e-5, atol=1e-5)
    out = path_forward(path, x)  # gradients on: the autograd path
    out.sum().backward()
    assert net[0].weight.grad is not None
