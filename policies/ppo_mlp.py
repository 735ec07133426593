"""RLlib's default PPO module as plain layers, for code that computes its networks itself.

A plain MLP ``DefaultPPOTorchRLModule`` (categorical actions, separate actor and critic
encoders, no state) is two paths of Linear layers with activations: the actor path (the
actor encoder, then the pi head: the action logits) and the critic path (the critic
encoder, then the value head). :func:`actor_path` and :func:`critic_path` return them as
``(layer, activation after it or None)`` pairs of the module's own layers (not copies);
:func:`path_forward` computes a path on a batch. Users: FEN's fast sampler and its
discriminator (the actor path alone: RLlib's inference forward also computes the critic
encoder), and the stacked PPO step (both paths, stacked over modules). Any other module
gives None and goes through its own forward. :class:`StackedPaths` computes the
same-shaped paths of several modules as one batched product per layer (the fast
sampler's sub-policies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical

from policies import onednn_linear

#: activation layer -> its function, in place (applied to a layer's fresh output, which
#: autograd does not need: it keeps the activation's output where it needs one)
ACTIVATIONS: dict[type, Callable[[torch.Tensor], torch.Tensor]] = {
    torch.nn.ReLU: torch.relu_, torch.nn.Tanh: torch.tanh_}

#: (Linear layer, activation after it or None) per layer
Path = list[tuple[torch.nn.Linear, Callable[[torch.Tensor], torch.Tensor] | None]]


def _mlp(part: Any) -> Path | None:
    """The layers of an RLlib MLP (``part.net.mlp``), or None for anything else."""
    seq = getattr(getattr(part, "net", None), "mlp", None)
    if not isinstance(seq, torch.nn.Sequential):
        return None
    path: Path = []
    for layer in seq:
        if isinstance(layer, torch.nn.Linear) and layer.bias is not None:
            path.append((layer, None))
        elif type(layer) in ACTIVATIONS and path and path[-1][1] is None:
            path[-1] = (path[-1][0], ACTIVATIONS[type(layer)])
        else:
            return None
    return path or None


def _plain(module: Any) -> bool:
    return (type(module) is DefaultPPOTorchRLModule and not module.is_stateful()
            and module.get_train_action_dist_cls() is TorchCategorical
            and module.get_exploration_action_dist_cls() is TorchCategorical)


def _path(module: Any, encoder_name: str, head_name: str) -> Path | None:
    if not _plain(module):
        return None
    encoder = getattr(getattr(module, "encoder", None), encoder_name, None)
    head = getattr(module, head_name, None)
    if encoder is None or head is None:
        return None
    parts = [_mlp(encoder), _mlp(head)]
    return None if parts[0] is None or parts[1] is None else parts[0] + parts[1]


def actor_path(module: Any) -> Path | None:
    """The action-logits network of a plain MLP ``DefaultPPOTorchRLModule`` (module
    doc): its actor encoder's layers, then its pi head's; None for any other module."""
    return _path(module, "actor_encoder", "pi")


def critic_path(module: Any) -> Path | None:
    """The value network of such a module: critic encoder, then value head (one output);
    None for any other module (a shared encoder included)."""
    return _path(module, "critic_encoder", "vf")


#: from this many rows on, :func:`path_forward` computes on oneDNN (where the build has
#: it): its products run about twice MKL's speed on AVX-512 AMD processors, but its
#: per-call cost makes small batches slower (measured here: equal at about 64-128 rows,
#: 1.8x faster at 512)
ONEDNN_MIN_ROWS = 128


def path_forward(path: Path, x: torch.Tensor) -> torch.Tensor:
    """A path's output for a CPU batch ``[rows, in]`` (the module's own arithmetic: each
    layer ``x @ weight.T + bias``, then its activation): MKL's ``addmm`` for small
    batches (the samplers' per-step inference), oneDNN's inner product
    (:mod:`policies.onednn_linear`) for large ones without autograd
    (:data:`ONEDNN_MIN_ROWS`: the learner's value and discriminator passes)."""
    if x.shape[0] >= ONEDNN_MIN_ROWS and not torch.is_grad_enabled() and onednn_linear.usable(x) \
            and all(onednn_linear.supports(act) for _, act in path):
        return onednn_linear.path_forward(path, x)
    for layer, act in path:
        x = torch.addmm(layer.bias, x, layer.weight.t())
        if act is not None:
            x = act(x)
    return x


def path_shape(path: Path) -> tuple:
    """What paths must share to be stacked: each layer's weight shape and activation."""
    return tuple((tuple(layer.weight.shape), act) for layer, act in path)


class StackedPaths:
    """Same-shaped paths (:func:`path_shape`) of several modules computed together: each
    layer ``baddbmm(bias, x, weight.T)`` over the modules at once. A snapshot of the
    weights (no gradients); build a new one after the weights change."""

    def __init__(self, paths: list[Path]) -> None:
        if len({path_shape(p) for p in paths}) != 1:
            raise ValueError("StackedPaths needs paths of one shape")
        with torch.no_grad():
            self.layers = [
                (torch.stack([p[k][0].weight for p in paths]).transpose(1, 2),
                 torch.stack([p[k][0].bias for p in paths]).unsqueeze(1), paths[0][k][1])
                for k in range(len(paths[0]))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every path's output ``[paths, rows, out]`` for its own rows ``[paths, rows, in]``."""
        for weight_t, bias, act in self.layers:
            x = torch.baddbmm(bias, x, weight_t)
            if act is not None:
                x = act(x)
        return x
