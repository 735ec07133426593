"""A scheduler policy that scores every queued job with one shared network (PPO / A2C).

For envs whose flat observation holds ``n_slots`` job slots of ``slot_dim`` features
each (``marl_envs.resource_allocation_v0``: demands, duration, wait, filled), and whose
actions are ``0`` = wait, ``k`` = start the job in slot ``k - 1``:

* the features outside the slot block (cluster occupancy, own allocation, backlog) go
  through an MLP to a *context* vector;
* every slot's features, concatenated with the context, go through one shared MLP to
  the logit of starting that job; the wait logit is a linear function of the context;
* the value function is an MLP over the whole observation (as RLlib's default).

The policy is permutation-equivariant in the slots: what it learns about one job (e.g.
"short jobs first") holds for every slot, where an MLP over the concatenated slots has
to learn it once per slot position. Observations with an action mask (``action_mask=True``,
see :mod:`policies.action_masking`) are masked the same way as there.

``model_config``: ``slot_layout`` = ``{"start": first slot feature, "n_slots", "slot_dim"}``
(the env's ``slot_layout()``; set by :func:`policies.config.build_config` for
``model="slot_scoring"``) and ``fcnet_hiddens`` (default ``[64, 64]``).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.torch_utils import FLOAT_MIN
from torch import nn

from policies.action_masking import OBS_KEY, is_masked_space, split_batch

LAYOUT_KEYS = ("start", "n_slots", "slot_dim")


def _mlp(n_in: int, hiddens: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_out in hiddens:
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        n_in = n_out
    return nn.Sequential(*layers)


def check_layout(layout: Any, obs_dim: int, n_actions: int) -> tuple[int, int, int]:
    """``(start, n_slots, slot_dim)`` of a valid ``slot_layout``, else ValueError."""
    if not isinstance(layout, dict) or set(layout) != set(LAYOUT_KEYS):
        raise ValueError(f"model_config['slot_layout'] must be a dict with keys "
                         f"{list(LAYOUT_KEYS)}, got {layout!r}")
    start, n_slots, slot_dim = (int(layout[k]) for k in LAYOUT_KEYS)
    if start < 0 or n_slots < 1 or slot_dim < 1 or start + n_slots * slot_dim > obs_dim:
        raise ValueError(f"slot_layout {layout!r} does not fit an observation of {obs_dim}")
    if n_actions != n_slots + 1:
        raise ValueError(f"slot scoring needs n_slots + 1 = {n_slots + 1} actions (wait + "
                         f"one per slot), the action space has {n_actions}")
    return start, n_slots, slot_dim


class SlotScoringTorchRLModule(TorchRLModule, ValueFunctionAPI):
    """Shared per-slot job scorer plus a wait logit; MLP value function."""

    def setup(self) -> None:
        self._masked = is_masked_space(self.observation_space)
        inner = self.observation_space[OBS_KEY] if self._masked else self.observation_space
        obs_dim = int(inner.shape[0])
        self._start, self._n_slots, self._slot_dim = check_layout(
            self.model_config.get("slot_layout"), obs_dim, int(self.action_space.n))
        hiddens = list(self.model_config.get("fcnet_hiddens") or [64, 64])
        width = hiddens[-1]
        context_dim = obs_dim - self._n_slots * self._slot_dim
        self._context = _mlp(context_dim, hiddens)
        self._slot_net = nn.Sequential(_mlp(self._slot_dim + width, hiddens),
                                       nn.Linear(width, 1))
        self._wait = nn.Linear(width, 1)
        if not self.inference_only:
            self._vf = nn.Sequential(_mlp(obs_dim, hiddens), nn.Linear(width, 1))

    def _obs_and_mask(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        if self._masked:
            inner, mask = split_batch(batch)
            return inner[Columns.OBS], mask
        return batch[Columns.OBS], None

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs, mask = self._obs_and_mask(batch)
        end = self._start + self._n_slots * self._slot_dim
        context = self._context(torch.cat([obs[:, : self._start], obs[:, end:]], dim=-1))
        slots = obs[:, self._start:end].reshape(-1, self._n_slots, self._slot_dim)
        paired = torch.cat(
            [slots, context.unsqueeze(1).expand(-1, self._n_slots, -1)], dim=-1)
        logits = torch.cat([self._wait(context), self._slot_net(paired).squeeze(-1)], dim=-1)
        if mask is not None:
            logits = logits.masked_fill(~mask, FLOAT_MIN)
        return {Columns.ACTION_DIST_INPUTS: logits}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        obs, _ = self._obs_and_mask(batch)
        return self._vf(obs).squeeze(-1)
