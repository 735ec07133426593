"""RLModules that obey an env's action mask (PettingZoo's convention), for DQN and PPO/A2C.

An env with an action mask observes ``Dict(observation=<Box>, action_mask=Box(0, 1,
(n,)))``; ``action_mask[a] == 1`` means action ``a`` is allowed. These modules build
their networks on the ``observation`` part only and apply the mask to their outputs:

* :class:`MaskedDQNTorchRLModule` - Q-values of forbidden actions are ``-inf`` in every
  forward pass (RLlib's DQN learner zeroes ``-inf`` after its gathers, before the
  terminal mask), so greedy actions are always allowed and the TD target maxes over the
  *next* state's allowed actions only; epsilon-greedy draws its random actions uniformly
  among the allowed ones. With a dueling head the advantages are centred over all
  outputs before masking (a fixed baseline; RLlib's default does the same).
* :class:`MaskedPPOTorchRLModule` - the logits of forbidden actions are set to the
  float minimum in every forward pass, so PPO (and :mod:`policies.a2c`, which uses the
  PPO module) never samples them and their probability does not enter the entropy.

A row whose mask forbids every action is left unmasked (the env then has to handle the
action, e.g. as a counted no-op) instead of producing NaNs; for a DQN target that means
bootstrapping from untrained outputs, so envs should not end an episode on such a row
(neither env here does).

:func:`masked_module_class` picks the class for an algorithm and an observation space;
:func:`policies.config.build_config` uses it, so ``scripts/train.py`` trains masked
policies whenever the env is built with ``action_mask=True``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.algorithms.dqn.default_dqn_rl_module import QF_PREDS
from ray.rllib.algorithms.dqn.torch.default_dqn_torch_rl_module import DefaultDQNTorchRLModule
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
    DefaultPPOTorchRLModule,
)
from ray.rllib.core.columns import Columns
from ray.rllib.utils.torch_utils import FLOAT_MIN

OBS_KEY = "observation"
MASK_KEY = "action_mask"


def is_masked_space(space: gym.Space) -> bool:
    """Whether ``space`` is the ``Dict(observation=..., action_mask=...)`` convention."""
    return isinstance(space, gym.spaces.Dict) and set(space.spaces) == {OBS_KEY, MASK_KEY}


def _inner_space(space: gym.Space, module: str) -> gym.Space:
    if not is_masked_space(space):
        raise ValueError(
            f"{module} needs a Dict observation space with exactly the keys "
            f"{OBS_KEY!r} and {MASK_KEY!r} (build the env with action_mask=True), got {space}"
        )
    return space[OBS_KEY]


def split_batch(batch: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
    """``batch`` with ``obs`` replaced by its ``observation`` part, and the boolean mask
    (rows forbidding every action become all-allowed; see the module docstring)."""
    obs = batch[Columns.OBS]
    if not isinstance(obs, dict) or MASK_KEY not in obs or OBS_KEY not in obs:
        raise ValueError(
            f"a masked module needs observations {{{OBS_KEY!r}: ..., {MASK_KEY!r}: ...}}, "
            f"got {type(obs).__name__}{'' if not isinstance(obs, dict) else list(obs)}"
        )
    mask = obs[MASK_KEY] > 0
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    inner = dict(batch)
    inner[Columns.OBS] = obs[OBS_KEY]
    return inner, mask


class _MaskedSpace:
    """Builds the module's networks on the ``observation`` part of the masked space and
    keeps the masked space as ``observation_space`` (checkpoints rebuild from it)."""

    def __init__(self, *, observation_space: gym.Space | None = None, **kwargs: Any) -> None:
        self._masked_observation_space = observation_space
        super().__init__(
            observation_space=_inner_space(observation_space, type(self).__name__), **kwargs
        )

    def setup(self) -> None:
        super().setup()
        self.observation_space = self._masked_observation_space


class MaskedDQNTorchRLModule(_MaskedSpace, DefaultDQNTorchRLModule):
    """RLlib's default DQN module with ``-inf`` Q-values on forbidden actions."""

    def setup(self) -> None:
        super().setup()
        if self.num_atoms > 1:
            raise ValueError(
                f"{type(self).__name__} masks expected Q-values; distributional DQN "
                f"(num_atoms={self.num_atoms}) is not supported, use num_atoms=1"
            )

    def _forward_exploration(self, batch: dict[str, Any], t: int) -> dict[str, Any]:
        _, mask = split_batch(batch)
        q = self.compute_q_values(batch)
        greedy = torch.argmax(q[QF_PREDS], dim=-1)
        self.epsilon_schedule.update(t)
        epsilon = self.epsilon_schedule.get_current_value()
        uniform = torch.multinomial(mask.float(), num_samples=1).squeeze(-1)
        explore = torch.rand(greedy.shape, device=greedy.device) < epsilon
        out = {Columns.ACTIONS: torch.where(explore, uniform, greedy)}
        if Columns.STATE_OUT in q:
            out[Columns.STATE_OUT] = q[Columns.STATE_OUT]
        return out

    def _qf_forward_helper(self, batch: dict[str, Any], encoder: Any, head: Any) -> dict:
        inner, mask = split_batch(batch)
        out = super()._qf_forward_helper(inner, encoder, head)
        out[QF_PREDS] = out[QF_PREDS].masked_fill(~mask, float("-inf"))
        return out


class MaskedPPOTorchRLModule(_MaskedSpace, DefaultPPOTorchRLModule):
    """RLlib's default PPO module (also A2C's) with forbidden actions' logits at the
    float minimum."""

    def _masked(self, outs: dict[str, Any], mask: torch.Tensor) -> dict[str, Any]:
        logits = outs[Columns.ACTION_DIST_INPUTS]
        outs[Columns.ACTION_DIST_INPUTS] = logits.masked_fill(~mask, FLOAT_MIN)
        return outs

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        inner, mask = split_batch(batch)
        return self._masked(super()._forward(inner, **kwargs), mask)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        inner, mask = split_batch(batch)
        return self._masked(super()._forward_train(inner, **kwargs), mask)

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> Any:
        if isinstance(batch[Columns.OBS], dict):
            batch, _ = split_batch(batch)
        return super().compute_values(batch, embeddings)


def masked_module_class(algo: str, observation_space: gym.Space) -> type | None:
    """The masked module class for ``algo`` when ``observation_space`` carries an action
    mask, else None; ValueError for an algorithm without one."""
    if not is_masked_space(observation_space):
        return None
    if algo == "dqn":
        return MaskedDQNTorchRLModule
    if algo in ("ppo", "a2c"):
        return MaskedPPOTorchRLModule
    raise ValueError(f"no action-masking module for algorithm {algo!r}; "
                     "allowed with action_mask=True: ['dqn', 'ppo', 'a2c']")
