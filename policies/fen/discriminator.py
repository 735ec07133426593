"""The information-theoretic reward of FEN's sub-policies, as a learner connector.

Sub-policies 1..M-1 (module ids ``sub<z>`` / ``<agent>-sub<z>`` with z >= 1) are
rewarded with ``log p_theta(z | o_{t+1})`` where ``p_theta`` is the controller's
own distribution over sub-policies (the controller doubles as the discriminator),
so together with PPO's entropy bonus they maximise ``I(Z; O) + H(A | O)``. The
authors' code rewards ``p`` instead of ``log p``; ``reward="p"`` selects that.

This piece runs on the learner before advantages are computed (like RLlib's
curiosity examples): it overwrites the rewards of those episodes in place (the env
gave them 0) with the reward computed by the learner's current controller, and
logs the controller's accuracy as a discriminator (``fen/discriminator_accuracy``:
how often ``argmax_z p(z | o)`` is the sub-policy that produced ``o``) and the
mean intrinsic reward (``fen/intrinsic_reward``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns

from policies.action_masking import OBS_KEY
from policies.fen.variants import parse_sub_module_id
from policies.ppo_mlp import actor_path, path_forward

REWARDS = ("log_p", "p")


class DiscriminatorReward(ConnectorV2):
    """Learner connector: intrinsic rewards of FEN's sub-policies 1..M-1."""

    def __init__(
        self,
        input_observation_space: Any = None,
        input_action_space: Any = None,
        *,
        reward: str = "log_p",
        **kwargs: Any,
    ) -> None:
        super().__init__(input_observation_space, input_action_space, **kwargs)
        if reward not in REWARDS:
            raise ValueError(f"unknown intrinsic reward {reward!r}; allowed: {list(REWARDS)}")
        self.reward = reward

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        metrics: Any = None,
        **kwargs: Any,
    ) -> Any:
        correct = total = 0
        intrinsic: list[float] = []
        # every segment's next observations, grouped by the controller that judges them:
        # one forward pass per controller module, not one per segment
        segments: dict[str, list[tuple[Any, int, np.ndarray]]] = {}
        for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
            parsed = parse_sub_module_id(episode.module_id or "")
            if parsed is None or len(episode) == 0:
                continue
            ctrl_id, z = parsed
            next_obs = episode.get_observations(slice(1, None))
            if isinstance(next_obs, dict):  # action-mask observations: the controller's part
                next_obs = next_obs[OBS_KEY]
            segments.setdefault(ctrl_id, []).append(
                (episode, z, np.asarray(next_obs, dtype=np.float32)))
        for ctrl_id, group in segments.items():
            all_log_p = controller_log_probs(rl_module[ctrl_id],
                                             np.concatenate([obs for _, _, obs in group]))
            bounds = np.cumsum([0] + [len(obs) for _, _, obs in group])
            for (episode, z, _), start, end in zip(group, bounds[:-1], bounds[1:], strict=True):
                log_p = all_log_p[start:end]
                correct += int(np.sum(np.argmax(log_p, axis=1) == z))
                total += len(log_p)
                if z == 0:
                    continue  # sub-policy 0 keeps the environment reward
                reward = log_p[:, z] if self.reward == "log_p" else np.exp(log_p[:, z])
                with warnings.catch_warnings():
                    # RLlib checks reward_space.contains(new_data[0]), a numpy scalar, which
                    # gymnasium's Box casts with a warning every call; the data is valid
                    warnings.filterwarnings("ignore", message=".*Casting input x to numpy array")
                    episode.set_rewards(
                        new_data=reward.astype(np.float32), at_indices=slice(0, len(reward))
                    )
                intrinsic.extend(reward.tolist())
        if metrics is not None and total:
            metrics.log_value(("fen", "discriminator_accuracy"), correct / total, window=1)
            if intrinsic:
                metrics.log_value(("fen", "intrinsic_reward"), float(np.mean(intrinsic)), window=1)
        return batch


def controller_log_probs(controller: Any, obs: np.ndarray) -> np.ndarray:
    """``log p(z | o)`` of a controller RLModule for a batch of observations: a plain MLP
    controller's actor path alone (:mod:`policies.ppo_mlp`; RLlib's inference forward
    also computes the critic encoder), any other through its inference forward."""
    with torch.no_grad():
        x = torch.from_numpy(obs)
        path = actor_path(controller)
        if path is not None:
            logits = path_forward(path, x)
        else:
            logits = controller.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS]
        return torch.log_softmax(logits, dim=-1).cpu().numpy()
