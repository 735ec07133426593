"""Linear layers of several same-shaped modules, computed by oneDNN.

PyTorch computes a float32 ``Linear`` (``addmm``, ``bmm``) on the CPU with MKL's sgemm,
which on AMD processors runs its AVX2 kernels whatever the processor supports. oneDNN,
which PyTorch also ships (``torch.backends.mkldnn``), picks its kernels by instruction
set: on the AVX-512 AMD machines here its inner product ran a 2048x1024x1024 float32
product at 270 GFLOP/s on one core against MKL's 120, and FEN's stacked minibatch step
(``policies/stacked_ppo.py``) in about three quarters of the time with batched MKL
products (``results/fen_sampling/README.md`` times the learner that results). On Intel
processors MKL uses AVX-512 too (not measured here). :class:`StackedLinear` is one layer of G
modules on oneDNN's float32 inner product (``torch.ops.mkldnn._linear_pointwise``, the
op PyTorch's own compiler emits for a Linear; strict float32 arithmetic, no reduced
precision): the forward ``act(x_g W_g^T + b_g)`` per module (bias and ReLU fused into the
product), the backward's input and weight gradients as inner products too. Rounding
differs from MKL's as one BLAS differs from another; ``tests/test_onednn_linear.py``
checks values and gradients against ``torch.nn.functional.linear``.

Activations travel as one tensor per module (a tuple), so no layer copies its output
into a stack.
"""

from __future__ import annotations

import torch

#: activation (as :data:`policies.ppo_mlp.ACTIVATIONS` gives it; None: none) -> oneDNN's
#: post-op fused into the product
_POST_OPS = {None: "none", torch.relu_: "relu", torch.tanh_: "tanh"}


def _has_onednn() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return torch.ops.mkldnn._linear_pointwise.default is not None
    except (AttributeError, RuntimeError):
        return False


_AVAILABLE = _has_onednn()


def available() -> bool:
    """Whether this PyTorch build has oneDNN's inner product for CPU tensors."""
    return _AVAILABLE


def usable(x: torch.Tensor) -> bool:
    """Whether oneDNN can compute on ``x``: a float32 CPU tensor, with this build's
    oneDNN (:func:`available`)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and _AVAILABLE


def path_forward(path: list, x: torch.Tensor) -> torch.Tensor:
    """A plain layer path's output (:mod:`policies.ppo_mlp`'s ``(Linear, activation)``
    pairs, activations that :func:`supports`) for a batch ``x``: each layer one inner
    product with its bias and activation fused. No autograd: call it under
    ``torch.no_grad()``."""
    for layer, act in path:
        x = linear(x, layer.weight, layer.bias, _POST_OPS[act])
    return x


def supports(activation: object) -> bool:
    """Whether :class:`StackedLinear` computes this activation (None: no activation)."""
    return activation in _POST_OPS


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           post_op: str = "none") -> torch.Tensor:
    """``post_op(x @ weight.T + bias)`` for ``x`` ``[rows, in]``, ``weight`` ``[out, in]``
    (strided views are taken as they are), ``bias`` ``[out]`` or None; ``post_op``
    ``none``, ``relu`` or ``tanh``: one oneDNN inner product (:func:`available`)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, post_op, [], "")


class StackedLinear(torch.autograd.Function):
    """``act(xs[g] @ weight[g].T + bias[g])`` for each module g.

    ``weight`` ``[G, out, in]`` and ``bias`` ``[G, out]`` are the group's stacked
    parameters; ``xs`` one ``[rows, in]`` tensor per module; ``post_op`` oneDNN's
    activation (``none``, ``relu``, ``tanh``). Returns one ``[rows, out]`` tensor per
    module. Use :meth:`layer`.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bias: torch.Tensor, post_op: str,  # type: ignore[override]
                *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ys = tuple(linear(x, weight[g], bias[g], post_op) for g, x in enumerate(xs))
        ctx.post_op = post_op
        ctx.n = len(xs)
        ctx.save_for_backward(weight, *xs, *(ys if post_op != "none" else ()))
        return ys

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):  # type: ignore[override]
        saved = ctx.saved_tensors
        n = ctx.n
        weight, xs, ys = saved[0], saved[1:n + 1], saved[n + 1:]
        if ctx.post_op == "relu":  # the gradient passes where the output is positive
            grads = tuple(torch.ops.aten.threshold_backward(g, y, 0) for g, y in
                          zip(grads, ys, strict=True))
        elif ctx.post_op == "tanh":
            grads = tuple(torch.ops.aten.tanh_backward(g, y) for g, y in
                          zip(grads, ys, strict=True))
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # dW_g = dy_g^T x_g
            grad_weight = torch.stack([linear(g.t(), x.t(), None)
                                       for g, x in zip(grads, xs, strict=True)])
        if ctx.needs_input_grad[1]:
            grad_bias = torch.stack([g.sum(0) for g in grads])
        grad_xs = tuple(  # dx_g = dy_g W_g
            linear(g, weight[k].t(), None) if ctx.needs_input_grad[3 + k] else None
            for k, g in enumerate(grads))
        return (grad_weight, grad_bias, None, *grad_xs)

    @staticmethod
    def layer(weight: torch.Tensor, bias: torch.Tensor, activation: object,
              xs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """One layer of every module (``activation``: one that :func:`supports`)."""
        return StackedLinear.apply(weight, bias, _POST_OPS[activation], *xs)
