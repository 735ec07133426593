"""DeepRM's time-dependent baseline: advantages from episodes that replay the same seed.

DeepRM (Mao et al., HotNets 2016) trains its policy with REINFORCE over many episodes
of the *same* job sequence and subtracts, at every step ``t``, the average return at
``t`` over those episodes. The job arrivals, which dominate the variance of a return at
high load, are then the same for the return and its baseline, so the advantage measures
what the sampled actions changed. A learned critic cannot do this: it sees the queue
now, not the jobs still to come.

Here the episodes of one sampling round come from the env copies of
:class:`policies.vector_sampler.PettingZooAgentVectorEnv` with
``shared_episode_seeds=True`` (every copy replays the same seed, so the same arrivals;
its reset infos carry ``episode_seed`` and ``agent_id``). :class:`SameSeedBaselineAdvantages`
(a learner connector, in place of GAE) groups the complete episodes by ``(episode_seed,
agent_id)`` and computes, for episode ``i`` of a group of ``n``::

    G_t^i = sum_{k >= t} gamma^(k - t) r_k^i          (no bootstrap: whole episodes)
    b_t^i = mean_{j != i} G_t^j                        (leave-one-out: unbiased)
    A_t^i = G_t^i - b_t^i

then standardises the advantages over the batch (as RLlib's GAE does); the value
targets are ``G_t``, for the critic's loss where ``vf_loss_coeff > 0`` (build_config sets
it to 0 by default: the critic is not used in the advantages). Used by A2C with
``baseline="same_seed_mean"`` (:class:`policies.a2c.A2CConfig`) and by PPO through
:class:`SameSeedPPOTorchLearner`; :func:`policies.config.build_config` sets either up
(``baseline="same_seed_mean"``).

Logged per module: ``same_seed_baseline_explained_var`` (``1 - Var(G - b) / Var(G)``: the
share of the returns' variance the baseline removes) and ``same_seed_group_size``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import (
    AddOneTsToEpisodesAndTruncate,
    GeneralAdvantageEstimation,
)
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.numpy import convert_to_numpy

from policies.vector_sampler import AGENT_ID_KEY, EPISODE_SEED_KEY
from policies.warm_start import discounted_returns

#: values of ``build_config(..., baseline=...)`` (and A2C's ``baseline`` setting): the
#: learned critic (GAE) or this module's
BASELINES = ("critic", "same_seed_mean")
EXPLAINED_VAR_KEY = "same_seed_baseline_explained_var"
GROUP_SIZE_KEY = "same_seed_group_size"


def leave_one_out_advantages(returns: np.ndarray) -> np.ndarray:
    """``G^i - mean_{j != i} G^j`` for ``returns`` of shape ``(n episodes, T)``, n >= 2."""
    n = returns.shape[0]
    if n < 2:
        raise ValueError(f"the same-seed baseline needs >= 2 episodes per seed, got {n}")
    baseline = (returns.sum(axis=0, keepdims=True) - returns) / (n - 1)
    return returns - baseline


def _group_key(episode: Any) -> tuple[int, str]:
    if episode.t_started != 0 or not episode.is_done:
        raise ValueError(
            "the same-seed baseline needs whole episodes (an episode chunk from step "
            f"{episode.t_started}, done={episode.is_done} arrived): set the train batch to a "
            "multiple of env copies x agents x episode length (build_config does)")
    info = episode.get_infos(0)
    if EPISODE_SEED_KEY not in info or AGENT_ID_KEY not in info:
        raise ValueError(
            "the same-seed baseline needs episodes from the vector sampler with "
            "env_config['shared_episode_seeds']=True (their reset infos name the episode "
            f"seed and the agent); got reset info keys {sorted(info)}")
    return int(info[EPISODE_SEED_KEY]), str(info[AGENT_ID_KEY])


def _check_row_order(module_batch: dict[str, Any], module_episodes: list) -> None:
    """The batch's rows must be the episodes' steps in order (as RLlib's GAE assumes)."""
    if Columns.REWARDS not in module_batch:
        return
    rows = np.asarray(convert_to_numpy(module_batch[Columns.REWARDS]), dtype=np.float64)
    steps = np.concatenate([np.asarray(e.get_rewards(), dtype=np.float64)
                            for e in module_episodes])
    if rows.shape != steps.shape or not np.allclose(rows, steps):
        raise ValueError("the learner batch's rows are not the episodes' steps in order "
                         f"({rows.shape[0]} rows, {steps.shape[0]} steps); the same-seed "
                         "baseline cannot place its advantages")


class SameSeedBaselineAdvantages(ConnectorV2):
    """Learner connector: advantages ``G_t - (leave-one-out mean of G_t over the episodes
    with the same seed and agent)``, standardised, and value targets ``G_t``."""

    def __init__(self, input_observation_space: Any = None,
                 input_action_space: Any = None, *, gamma: float) -> None:
        super().__init__(input_observation_space, input_action_space)
        self.gamma = gamma
        self._to_tensor: NumpyToTensor | None = None

    def __call__(self, *, rl_module: Any, episodes: list, batch: dict[str, Any],
                 metrics: Any = None, **kwargs: Any) -> dict[str, Any]:
        all_episodes = list(self.single_agent_episode_iterator(
            episodes, agents_that_stepped_only=False))
        results: dict[str, dict[str, np.ndarray]] = {}
        device = None
        for module_id in batch:
            module_episodes = [e for e in all_episodes if e.module_id in (None, module_id)]
            returns = [discounted_returns(np.asarray(e.get_rewards()), self.gamma)
                       for e in module_episodes]
            groups: dict[tuple[int, str], list[int]] = defaultdict(list)
            for i, e in enumerate(module_episodes):
                groups[_group_key(e)].append(i)
            advantages: list[np.ndarray | None] = [None] * len(module_episodes)
            for key, members in groups.items():
                lengths = {len(returns[i]) for i in members}
                if len(lengths) != 1:
                    raise ValueError(f"episodes of seed {key[0]} ({key[1]}) have different "
                                     f"lengths {sorted(lengths)}; the same-seed baseline "
                                     "needs a fixed episode length")
                stacked = leave_one_out_advantages(np.stack([returns[i] for i in members]))
                for row, i in enumerate(members):
                    advantages[i] = stacked[row]
            adv = np.concatenate(advantages)
            ret = np.concatenate(returns)
            _check_row_order(batch[module_id], module_episodes)
            if metrics is not None:
                explained = 1.0 - adv.var() / max(ret.var(), 1e-12)
                metrics.log_dict({EXPLAINED_VAR_KEY: explained,
                                  GROUP_SIZE_KEY: len(module_episodes) / len(groups)},
                                 key=module_id, window=1)
            adv = (adv - adv.mean()) / max(1e-4, adv.std())
            results[module_id] = {Postprocessing.ADVANTAGES: adv.astype(np.float32),
                                  Postprocessing.VALUE_TARGETS: ret.astype(np.float32)}
            device = getattr(next(rl_module[module_id].parameters(), None), "device", None)
        if self._to_tensor is None:
            self._to_tensor = NumpyToTensor(as_learner_connector=True, device=device)
        tensors = self._to_tensor(rl_module=rl_module, batch=results, episodes=episodes)
        for module_id, columns in tensors.items():
            batch[module_id].update(columns)
        return batch


def use_same_seed_advantages(learner: Any) -> None:
    """Replace GAE (and the bootstrap step it appends to every episode) in ``learner``'s
    connector pipeline by :class:`SameSeedBaselineAdvantages`."""
    pipeline = learner._learner_connector
    pipeline.remove(AddOneTsToEpisodesAndTruncate)
    pipeline.remove(GeneralAdvantageEstimation)
    pipeline.append(SameSeedBaselineAdvantages(gamma=learner.config.gamma))


class SameSeedPPOTorchLearner(PPOTorchLearner):
    """RLlib's PPO learner with the same-seed baseline in place of GAE (the clipped
    surrogate loss is unchanged)."""

    def build(self) -> None:
        super().build()
        if (self._learner_connector is not None
                and self.config.add_default_connectors_to_learner_pipeline):
            use_same_seed_advantages(self)
