"""FEN's train batch built from the sampled episodes at array speed.

PPO's learner turns the sampled episodes into its train batch through RLlib's learner
connector pipeline. For FEN that pipeline is ``AddOneTsToEpisodesAndTruncate``, FEN's
:class:`policies.fen.discriminator.DiscriminatorReward`, RLlib's default pieces (observations,
columns, time dimension, states, agent-to-module mapping, batching, numpy to tensor)
and ``GeneralAdvantageEstimation``. Each piece walks every single-agent episode in
Python and adds its data item by item, and FEN's hierarchy makes many short episodes
(about 1,250 per iteration on Job Scheduling: every 25-step sub-policy segment and every
one-step controller decision is one). :class:`TrainBatchBuilder` computes the same batch
from the episodes' numpy buffers, module by module with whole-array operations:

* rows in the pipeline's order: the multi-agent episodes in the given order, each one's
  agents in the order of RLlib's iteration (``MultiAgentEpisode.agent_ids``), every
  single-agent episode of length ``L`` as ``L + 1`` rows (RLlib's appended bootstrap
  row: the last observation, action and model outputs repeated, reward 0,
  ``loss_mask`` False), modules in the order they first appear;
* ``terminateds`` / ``truncateds`` on the last real row (a running episode counts as
  truncated), never on the bootstrap row;
* the discriminator reward of sub-policies ``z >= 1`` on all ``L + 1`` rows, from one
  pass of each controller's actor path over its sub-policies' next observations, with
  the same ``fen/discriminator_accuracy`` and ``fen/intrinsic_reward`` metrics;
* values from one pass of each module's critic path over its rows, then RLlib's own
  ``compute_value_targets`` and advantage standardisation.

``tests/test_fen_train_batch.py`` checks every column, row and module order against the
pipeline's output. :meth:`TrainBatchBuilder.from_pipeline` returns None for any
pipeline other than that one (a user's own learner connectors, another GAE), and
:meth:`TrainBatchBuilder.build` returns None for episodes it does not handle
(non-numpy buffers, empty or stateful episodes, modules without the plain MLP critic
path): the learner then runs RLlib's pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.common.add_observations_from_episodes_to_batch import (
    AddObservationsFromEpisodesToBatch,
)
from ray.rllib.connectors.common.add_states_from_episodes_to_batch import (
    AddStatesFromEpisodesToBatch,
)
from ray.rllib.connectors.common.add_time_dim_to_batch_and_zero_pad import (
    AddTimeDimToBatchAndZeroPad,
)
from ray.rllib.connectors.common.agent_to_module_mapping import AgentToModuleMapping
from ray.rllib.connectors.common.batch_individual_items import BatchIndividualItems
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.learner import (
    AddColumnsFromEpisodesToTrainBatch,
    AddOneTsToEpisodesAndTruncate,
    GeneralAdvantageEstimation,
)
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    CONNECTOR_PIPELINE_TIMER,
    LEARNER_CONNECTOR,
    LEARNER_CONNECTOR_SUM_EPISODES_LENGTH_IN,
    LEARNER_CONNECTOR_SUM_EPISODES_LENGTH_OUT,
)
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from policies.fen.discriminator import DiscriminatorReward, controller_log_probs
from policies.fen.variants import parse_sub_module_id
from policies.ppo_mlp import critic_path, path_forward

#: the learner connector pipeline this builder replaces, piece by piece (the
#: discriminator is absent for variants without intrinsic reward)
_PIPELINE = (AddOneTsToEpisodesAndTruncate, DiscriminatorReward,
             AddObservationsFromEpisodesToBatch, AddColumnsFromEpisodesToTrainBatch,
             AddTimeDimToBatchAndZeroPad, AddStatesFromEpisodesToBatch, AgentToModuleMapping,
             BatchIndividualItems, NumpyToTensor, GeneralAdvantageEstimation)


def _data(buffer: Any, n: int) -> np.ndarray | None:
    """The first ``n`` items of a finalized (numpy) episode buffer after its lookback;
    None for other buffers."""
    if not isinstance(buffer, InfiniteLookbackBuffer) or not buffer.finalized or \
            not isinstance(buffer.data, np.ndarray):
        return None
    data = buffer.data[buffer.lookback: buffer.lookback + n]
    return data if len(data) == n else None


class _Module:
    """One module's single-agent episodes, as lists of arrays in row order."""

    __slots__ = ("lens", "terminated", "obs", "actions", "rewards", "row_rewards", "extra",
                 "sub")

    def __init__(self, extra_keys: tuple[str, ...]) -> None:
        self.lens: list[int] = []
        self.terminated: list[bool] = []
        self.obs: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[np.ndarray] = []
        #: the discriminator's reward of every row, bootstrap rows included (sub-policies
        #: z >= 1); replaces ``rewards``
        self.row_rewards: np.ndarray | None = None
        self.extra: dict[str, list[np.ndarray]] = {k: [] for k in extra_keys}
        self.sub: tuple[str, int] | None = None


class TrainBatchBuilder:
    """PPO's learner connector pipeline for FEN, at array speed (module doc)."""

    def __init__(self, gamma: float, lambda_: float, discriminator: DiscriminatorReward | None):
        self.gamma = gamma
        self.lambda_ = lambda_
        self.discriminator = discriminator

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> TrainBatchBuilder | None:
        """The builder of a learner's connector pipeline; None unless it is exactly PPO's
        default pipeline with or without FEN's discriminator reward."""
        pieces = list(getattr(pipeline, "connectors", None) or [])
        types = tuple(type(p) for p in pieces)
        discriminator = next((p for p in pieces if type(p) is DiscriminatorReward), None)
        expected = _PIPELINE if discriminator is not None else tuple(
            t for t in _PIPELINE if t is not DiscriminatorReward)
        if types != expected:
            return None
        gae = pieces[-1]
        return cls(gae.gamma, gae.lambda_, discriminator)

    def build(self, rl_module: Any, episodes: list[Any], metrics: Any = None,
              device: Any = None) -> MultiAgentBatch | None:
        """The train batch of ``episodes`` as the pipeline computes it, with the
        pipeline's metrics (its episode lengths in and out, its total time, the
        discriminator's); None where the episodes or modules are not ones this builder
        handles (module doc)."""
        modules = self._collect(rl_module, episodes)
        if modules is None:
            return None
        if metrics is None:
            return self._build(rl_module, episodes, modules, None, device)
        steps = sum(map(len, episodes))
        metrics.log_value((ALL_MODULES, LEARNER_CONNECTOR_SUM_EPISODES_LENGTH_IN), steps)
        with metrics.log_time((ALL_MODULES, LEARNER_CONNECTOR, CONNECTOR_PIPELINE_TIMER)):
            batch = self._build(rl_module, episodes, modules, metrics, device)
        metrics.log_value((ALL_MODULES, LEARNER_CONNECTOR_SUM_EPISODES_LENGTH_OUT), steps)
        return batch

    def _build(self, rl_module: Any, episodes: list[Any], modules: dict[str, _Module],
               metrics: Any, device: Any) -> MultiAgentBatch:
        if self.discriminator is not None:
            self._discriminator_rewards(rl_module, modules, metrics)
        batch = {}
        for mid, m in modules.items():
            cols = self._columns(m)
            values = self._values(rl_module[mid], cols[Columns.OBS])
            targets = compute_value_targets(
                values=values, rewards=cols[Columns.REWARDS],
                terminateds=cols[Columns.TERMINATEDS], truncateds=cols[Columns.TRUNCATEDS],
                gamma=self.gamma, lambda_=self.lambda_)
            advantages = targets - values
            cols[Postprocessing.ADVANTAGES] = (advantages - advantages.mean()) / max(
                1e-4, advantages.std())
            cols[Postprocessing.VALUE_TARGETS] = targets
            batch[mid] = SampleBatch({k: _tensor(v, device) for k, v in cols.items()})
        return MultiAgentBatch(batch, env_steps=sum(len(e) for e in episodes))

    # ---------------------------------------------------------------- steps
    def _collect(self, rl_module: Any, episodes: list[Any]) -> dict[str, _Module] | None:
        """Every single-agent episode's arrays, grouped by module in the pipeline's row
        order; None where an episode or module is not handled."""
        modules: dict[str, _Module] = {}
        for ma in episodes:
            if not isinstance(ma, MultiAgentEpisode):
                return None
            for aid in ma.agent_ids:  # RLlib's iteration order (a set)
                sa = ma.agent_episodes[aid]
                n = len(sa)
                mid = sa.module_id
                m = modules.get(mid)
                if m is None:
                    if mid not in rl_module or rl_module[mid].is_stateful() or \
                            critic_path(rl_module[mid].unwrapped()) is None:
                        return None
                    m = modules[mid] = _Module(tuple(sa.extra_model_outputs))
                    m.sub = parse_sub_module_id(mid or "")
                if n == 0 or tuple(sa.extra_model_outputs) != tuple(m.extra):
                    return None
                obs, actions = _data(sa.observations, n + 1), _data(sa.actions, n)
                rewards = _data(sa.rewards, n)
                if obs is None or actions is None or rewards is None:
                    return None
                m.lens.append(n)
                m.terminated.append(bool(sa.is_terminated))
                m.obs.append(obs)
                m.actions.append(actions)
                m.rewards.append(rewards)
                for k, buf in sa.extra_model_outputs.items():
                    data = _data(buf, n)
                    if data is None:
                        return None
                    m.extra[k].append(data)
        return modules or None

    def _discriminator_rewards(self, rl_module: Any, modules: dict[str, _Module],
                               metrics: Any) -> None:
        """FEN's intrinsic reward on the sub-policies' rows, as
        :class:`DiscriminatorReward` computes it on the extended episodes: ``log p(z | o)``
        (or ``p``) of each row's next observation, the last one repeated for the
        bootstrap row."""
        correct = total = 0
        intrinsic: list[np.ndarray] = []
        by_controller: dict[str, list[tuple[_Module, int]]] = {}
        for m in modules.values():
            if m.sub is not None:
                by_controller.setdefault(m.sub[0], []).append((m, m.sub[1]))
        for ctrl_id, group in by_controller.items():
            next_obs = np.concatenate([
                o[np.minimum(np.arange(1, len(o) + 1), len(o) - 1)]
                for m, _ in group for o in m.obs]).astype(np.float32, copy=False)
            log_p = controller_log_probs(rl_module[ctrl_id], next_obs)
            start = 0
            for m, z in group:
                rows = sum(m.lens) + len(m.lens)
                lp = log_p[start: start + rows]
                start += rows
                correct += int(np.sum(np.argmax(lp, axis=1) == z))
                total += rows
                if z == 0:
                    continue  # sub-policy 0 keeps the environment reward
                reward = lp[:, z] if self.discriminator.reward == "log_p" else np.exp(lp[:, z])
                m.row_rewards = reward.astype(np.float32)
                intrinsic.append(reward)
        if metrics is not None and total:
            metrics.log_value(("fen", "discriminator_accuracy"), correct / total, window=1)
            if intrinsic:
                metrics.log_value(("fen", "intrinsic_reward"),
                                  float(np.concatenate(intrinsic).mean(dtype=np.float64)),
                                  window=1)

    @staticmethod
    def _columns(m: _Module) -> dict[str, np.ndarray]:
        """The module's columns before GAE, ``L + 1`` rows per episode."""
        lens = np.asarray(m.lens)
        rows = lens + 1
        n_rows = int(rows.sum())
        last = np.cumsum(rows) - 1  # each episode's bootstrap row
        # per row: the index of its item in the concatenated per-step arrays (the last
        # step repeated on the bootstrap row)
        starts = np.repeat(np.cumsum(lens) - lens, rows)
        pos = np.arange(n_rows) - np.repeat(last - lens, rows)
        step = starts + np.minimum(pos, np.repeat(lens - 1, rows))
        loss_mask = np.ones(n_rows, dtype=bool)
        loss_mask[last] = False
        terminated = np.asarray(m.terminated)
        terminateds = np.zeros(n_rows, dtype=bool)
        terminateds[last - 1] = terminated
        truncateds = np.zeros(n_rows, dtype=bool)
        truncateds[last - 1] = ~terminated
        if m.row_rewards is not None:
            rewards = m.row_rewards
        else:
            rewards = np.zeros(n_rows, dtype=np.float32)
            rewards[loss_mask] = np.concatenate(m.rewards)
        cols = {
            Columns.LOSS_MASK: loss_mask,
            Columns.TERMINATEDS: terminateds,
            Columns.TRUNCATEDS: truncateds,
            Columns.OBS: np.concatenate(m.obs),
            Columns.ACTIONS: np.concatenate(m.actions)[step],
            Columns.REWARDS: rewards.astype(np.float32, copy=False),
        }
        for k, arrays in m.extra.items():
            cols[k] = np.concatenate(arrays)[step]
        return cols

    @staticmethod
    def _values(module: Any, obs: np.ndarray) -> np.ndarray:
        """The module's value predictions of ``obs`` (its critic path)."""
        path = critic_path(module.unwrapped())
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
            return path_forward(path, x).squeeze(-1).numpy()


def _tensor(array: np.ndarray, device: Any) -> torch.Tensor:
    """A column as ``NumpyToTensor`` makes it: floats as float32."""
    if np.issubdtype(array.dtype, np.floating) and array.dtype != np.float32:
        array = array.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t if device is None else t.to(device)
