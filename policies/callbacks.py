"""Fairness metrics of every finished episode into RLlib's MetricsLogger.

Per finished episode, :class:`FairnessCallbacks` logs (mean over the episodes of
the reporting window, under ``env_runners/`` in the training result):

================================  =============================================
key                               value
================================  =============================================
``fairness/utilization``          ``mean(u) / c`` clipped to [0, 1] (the plant: the share
                                  of collected gems that went into products)
``fairness/cv``                   coefficient of variation of the utilities
``fairness/average_utility``      mean utility
``fairness/min_utility``          smallest utility
``fairness/max_utility``          largest utility
``fairness/utility/<agent>``      each agent's utility (time-averaged reward)
``fairness/<extra>``              env extras of ``episode_stats()`` (e.g. products)
``agent_return/<agent>``          each agent's undiscounted episode return
================================  =============================================

The figures come from ``episode_stats()`` of the environment, which the adapter
(:mod:`policies.rllib_env`) attaches to the final step's infos; they are computed
with :mod:`marl_envs.metrics`. When an env has no ``episode_stats`` the callback
computes the same figures from the agents' returns with ``marl_envs.metrics``
(only possible for envs exposing ``max_fair_utility``).

With the vector sampler (:mod:`policies.vector_sampler`) every episode is one agent's
single-agent episode: its final info names the agent (``agent_id``) and, for one
agent per env episode, carries ``episode_stats``, so the fairness figures are logged
once per env episode and ``agent_return/<agent>`` once per agent, as above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback

from marl_envs.metrics import fairness_report, utilities
from policies.rllib_env import EPISODE_STATS_KEY
from policies.vector_sampler import AGENT_ID_KEY

FAIRNESS_PREFIX = "fairness"
AGENT_RETURN_PREFIX = "agent_return"


def final_episode_stats(episode: Any) -> dict[str, float] | None:
    """The ``episode_stats`` dict of the episode's last step, if the env attached one."""
    for sa_episode in episode.agent_episodes.values():
        try:
            info = sa_episode.get_infos(-1)
        except (IndexError, KeyError):
            continue
        if isinstance(info, Mapping) and EPISODE_STATS_KEY in info:
            return dict(info[EPISODE_STATS_KEY])
    return None


def agent_returns(episode: Any, prev_episode_chunks: list | None = None) -> dict[str, float]:
    """Undiscounted return of each agent over the whole episode (all chunks)."""
    totals: dict[str, float] = {}
    for chunk in [*(prev_episode_chunks or []), episode]:
        for sa_episode in chunk.agent_episodes.values():
            aid = str(sa_episode.agent_id)
            totals[aid] = totals.get(aid, 0.0) + float(sa_episode.get_return())
    return totals


def _stats_from_returns(
    returns: Mapping[str, float], steps: int, max_fair_utility: float
) -> dict[str, float]:
    agents = sorted(returns)
    u = utilities([returns[a] for a in agents], steps)
    return fairness_report(agents, u, max_fair_utility, steps).scalars()


class FairnessCallbacks(RLlibCallback):
    """Logs fairness figures and per-agent returns of each finished episode."""

    def on_episode_end(
        self,
        *,
        episode: Any,
        prev_episode_chunks: list | None = None,
        env_runner: Any = None,
        metrics_logger: Any = None,
        env: Any = None,
        env_index: int = 0,
        **kwargs: Any,
    ) -> None:
        if metrics_logger is None:
            return
        if not hasattr(episode, "agent_episodes"):  # SingleAgentEpisode: vector sampler
            self._log_slot_episode(episode, prev_episode_chunks, metrics_logger)
            return
        returns = agent_returns(episode, prev_episode_chunks)
        stats = final_episode_stats(episode)
        if stats is None and env is not None:
            stats = self._stats_from_env(env, env_index, returns, episode, prev_episode_chunks)
        for key, value in (stats or {}).items():
            if isinstance(value, int | float) and math.isfinite(value):
                metrics_logger.log_value(f"{FAIRNESS_PREFIX}/{key}", float(value), reduce="mean")
        # wrappers with their own agent ids (e.g. FEN's per-period controller and
        # sub-policy ids) would flood the logs: keep the environment's agents
        env_agents = {k.split("/", 1)[1] for k in stats or {} if k.startswith("utility/")}
        for agent, value in returns.items():
            if not env_agents or agent in env_agents:
                metrics_logger.log_value(f"{AGENT_RETURN_PREFIX}/{agent}", value, reduce="mean")

    @staticmethod
    def _log_slot_episode(episode: Any, chunks: list | None, metrics_logger: Any) -> None:
        try:
            info = episode.get_infos(-1)
        except (IndexError, KeyError):
            return
        if not isinstance(info, Mapping):
            return
        for key, value in dict(info.get(EPISODE_STATS_KEY) or {}).items():
            if isinstance(value, int | float) and math.isfinite(value):
                metrics_logger.log_value(f"{FAIRNESS_PREFIX}/{key}", float(value), reduce="mean")
        agent = info.get(AGENT_ID_KEY)
        if agent is not None:
            ret = sum(float(c.get_return()) for c in [*(chunks or []), episode])
            metrics_logger.log_value(f"{AGENT_RETURN_PREFIX}/{agent}", ret, reduce="mean")

    @staticmethod
    def _stats_from_env(
        env: Any, env_index: int, returns: dict, episode: Any, chunks: list | None
    ) -> dict[str, float] | None:
        try:
            sub = env.unwrapped.envs[env_index].unwrapped
            inner = getattr(sub, "unwrapped_env", sub)
            c = float(inner.max_fair_utility)
        except (AttributeError, IndexError, TypeError):
            return None
        steps = len(episode) + sum(len(c) for c in chunks or [])
        return _stats_from_returns(returns, steps, c) if steps and returns else None
