"""Evaluate a recommender on ``live_recommendation`` on seeded episodes.

:func:`run_episodes` serves one recommender (a baseline of
:mod:`policies.heuristics.recommenders`, a DQN checkpoint via :class:`DQNRecommender`, or
its :class:`ViabilityRerank`) for ``episodes`` episodes with seeds ``seed, seed+1, ...``:
every recommender meets the same worlds, sessions, schedules and random numbers
(acceptance, likes and organic-choice noise come from per-slot draws of the seeded
streams; only the state the recommender itself changes differs). The experiment kind
``recommender`` (``policies/experiments/recommender_trials.py``) runs it as trials.

Metrics (``{metric: value}``):

* from ``env.episode_stats()`` (mean over episodes): ``watch_time_per_user`` (minutes
  per user per episode), ``acceptance_rate`` (accepted / recommendations),
  ``invalid_rate`` (offline streamer recommended / recommendations),
  ``exposure_gini``, ``exposure_cv`` (over streamers' recommendation counts),
  ``active_streamers`` (still on the platform at the end), ``likes_per_user``;
* ranking metrics, pooled over all events of all episodes. An *event* is an online
  user's slot whose organic choice (``infos[agent]["organic_choice"]``: what the user
  would watch choosing by the env's logit among all live streamers plus not watching,
  see ``marl_envs.live_recommendation.env``) is a streamer. The recommender's scores
  rank the live streamers; ``hr10`` = share of events whose choice is in the top 10,
  ``ndcg10`` = mean of ``1 / log2(1 + rank)`` over events (0 beyond rank 10);
  ``_repeat`` / ``_new``: events whose chosen streamer the user had / had not watched
  before; ``events``, ``events_repeat`` count them.

DQN scores are the module's Q-values; it serves the best live streamer (masked, as
every baseline). ``masked=False`` serves the unmasked greedy action instead (what a DQN
trained without the env's action mask does without the live mask, hence invalid
recommendations); a DQN trained with ``action_mask=True``
(:class:`policies.action_masking.MaskedDQNTorchRLModule`) masks its own Q-values, so
both give the same.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from marl_envs.live_recommendation import LiveRecEnv
from marl_envs.live_recommendation_v0 import parallel_env
from policies.heuristics.recommenders import Recommender, live_from_obs, recommend

ENV_NAME = "live_recommendation"
#: the metrics every entry of the JSON holds (more are allowed)
METRICS: tuple[str, ...] = (
    "watch_time_per_user", "acceptance_rate", "invalid_rate", "hr10", "ndcg10",
    "exposure_gini", "active_streamers",
)
TOP_K = 10
#: env kwargs that do not change the world or the observation (reward shaping, render)
_NEUTRAL_KWARGS = ("exposure_fairness", "render_mode", "action_mask")


def rank_of(scores: np.ndarray, live: np.ndarray, item: int) -> int:
    """1-based rank of ``item`` among the live streamers by ``scores`` (ties favour it)."""
    return 1 + int(np.sum(live & (scores > scores[item])))


class DQNRecommender(Recommender):
    """Q-values of a DQN checkpoint of ``scripts/train.py`` as scores (Ray imported lazily)."""

    def __init__(self, checkpoint: str | Path, name: str = "dqn") -> None:
        super().__init__(0)
        from policies.training import load_checkpoint_config, open_checkpoint

        checkpoint, info = open_checkpoint(checkpoint)
        if info.get("env") != ENV_NAME:
            raise ValueError(f"checkpoint {str(checkpoint)!r} holds policies for env "
                             f"{info.get('env')!r}, not {ENV_NAME!r}")
        if info.get("algo") != "dqn":
            raise ValueError(f"checkpoint {str(checkpoint)!r} is a {info.get('algo')!r} "
                             "checkpoint; the evaluation reads Q-values of a dqn one")
        from ray.rllib.core.rl_module.rl_module import RLModule

        state = load_checkpoint_config(checkpoint)
        self.env_kwargs = dict((state.get("env_config") or info["env_config"]).get(
            "env_kwargs") or {})
        self.mapping_fn = state["policy_mapping_fn"]
        path = Path(checkpoint) / "learner_group" / "learner" / "rl_module"
        self.module = RLModule.from_checkpoint(str(path.resolve()))
        for sub in self.module.values():
            sub.eval()
        self.name = name
        from policies.action_masking import is_masked_space

        #: trained with ``action_mask=True``: the module masks its own Q-values
        self.mask_in_module = any(is_masked_space(sub.observation_space)
                                  for sub in self.module.values())
        self.checkpoint = str(checkpoint)
        self.command = info.get("command", "")

    def scores(self, env: Any, obs_by_agent: Mapping[str, Any]) -> dict[str, np.ndarray]:
        import torch
        from ray.rllib.core.columns import Columns

        from policies.action_masking import MASK_KEY, OBS_KEY
        from policies.training import _module_for

        out: dict[str, np.ndarray] = {}
        groups: dict[str, list[str]] = {}
        for agent in obs_by_agent:
            groups.setdefault(_module_for(self.mapping_fn, agent), []).append(agent)
        with torch.no_grad():
            for module_id, agents in groups.items():
                flat = [env.observation_parts(obs_by_agent[a]) for a in agents]
                obs: Any = torch.as_tensor(np.stack(
                    [np.concatenate(list(p.values())).astype(np.float32) for p in flat]))
                if self.mask_in_module:
                    obs = {OBS_KEY: obs, MASK_KEY: torch.as_tensor(
                        np.stack([p["live"] for p in flat]).astype(np.int8))}
                q = self.module[module_id].compute_q_values({Columns.OBS: obs})["qf_preds"]
                for a, row in zip(agents, q.cpu().numpy(), strict=True):
                    out[a] = row.astype(np.float64)
        return out


class ViabilityRerank(Recommender):
    """A fairness-aware re-ranking of a DQN that keeps streamers on the platform: its
    Q-values plus ``beta`` times each live streamer's shortfall below the departure
    threshold, ``max(0, 1 - (e_i + a_i) / min_exposure)``, where ``e_i`` is the
    streamer's recommendations that still count after this slot
    (``env.lasting_exposure()``) and ``a_i`` the recommendations this re-ranker already
    gave it in the current slot (users are served one after another, so one slot's users
    do not all pile onto the same streamer). Same network, no retraining; ``beta`` is in
    the Q-values' units (discounted watch minutes): a large beta serves streamers at risk
    first, a small one only when the user loses little.
    """

    def __init__(self, dqn: DQNRecommender, beta: float) -> None:
        super().__init__(0)
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"re-ranking beta must be a finite number > 0, got {beta!r}")
        self.dqn = dqn
        self.beta = float(beta)
        self.name = f"{dqn.name}_viability{self.beta:g}"

    def scores(self, env: Any, obs_by_agent: Mapping[str, Any]) -> dict[str, np.ndarray]:
        q_values = self.dqn.scores(env, obs_by_agent)
        if env.min_exposure <= 0:
            return q_values
        exposure = env.lasting_exposure().astype(np.float64)
        live = env.live_mask()
        out: dict[str, np.ndarray] = {}
        for agent, q in q_values.items():
            shortfall = np.maximum(0.0, 1.0 - exposure / env.min_exposure)
            out[agent] = q + self.beta * shortfall
            if agent != env.closing_agent:  # its recommendation is never shown
                exposure[recommend(out[agent], live)] += 1.0
        return out


def _effective_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params = inspect.signature(LiveRecEnv.__init__).parameters
    full = {k: p.default for k, p in params.items() if k != "self"}
    full.update(kwargs)
    return {k: v for k, v in full.items() if k not in _NEUTRAL_KWARGS}


def check_same_world(checkpoint_kwargs: Mapping[str, Any], env_kwargs: Mapping[str, Any],
                     checkpoint: str) -> None:
    """ValueError unless a checkpoint was trained on the evaluation's world and spaces."""
    a, b = _effective_kwargs(checkpoint_kwargs), _effective_kwargs(env_kwargs)
    diff = sorted(k for k in a if a[k] != b.get(k))
    if diff:
        raise ValueError(
            f"checkpoint {checkpoint!r} was trained with env kwargs "
            f"{ {k: a[k] for k in diff} }, the evaluation uses { {k: b.get(k) for k in diff} }")


def run_episodes(
    recommender: Recommender,
    env_kwargs: Mapping[str, Any],
    *,
    episodes: int,
    seed: int,
    masked: bool = True,
) -> dict[str, float]:
    """Metrics of ``recommender`` over ``episodes`` seeded episodes (module docstring)."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    kwargs = {k: v for k, v in env_kwargs.items() if k != "exposure_fairness"}
    try:
        env = parallel_env(**kwargs)
    except TypeError as e:  # unknown env kwarg: a ValueError for the CLI's one-line error
        raise ValueError(str(e)) from e
    per_episode: list[dict[str, float]] = []
    hits: dict[str, list[float]] = {"all": [], "repeat": [], "new": []}
    gains: dict[str, list[float]] = {"all": [], "repeat": [], "new": []}
    for i in range(episodes):
        obs, infos = env.reset(seed=seed + i)
        while env.agents:
            acting = {a: obs[a] for a in env.agents}
            scores = recommender.scores(env, acting)
            actions: dict[str, int] = {}
            for a, o in acting.items():
                live = live_from_obs(env, o)
                s = scores[a]
                actions[a] = recommend(s, live) if masked else int(np.argmax(s))
                choice = int(infos[a].get("organic_choice", -1))
                if choice < 0:
                    continue
                r = rank_of(s, live, choice)
                hit = float(r <= TOP_K)
                gain = 1.0 / math.log2(1 + r) if r <= TOP_K else 0.0
                kind = "repeat" if infos[a].get("organic_repeat") else "new"
                for key in ("all", kind):
                    hits[key].append(hit)
                    gains[key].append(gain)
            obs, _, _, _, infos = env.step(actions)
        per_episode.append(env.episode_stats())
    keys = [k for k in per_episode[0] if not k.startswith("utility/")]
    result = {k: float(np.mean([s[k] for s in per_episode])) for k in keys}
    for key, suffix in (("all", ""), ("repeat", "_repeat"), ("new", "_new")):
        result[f"hr10{suffix}"] = float(np.mean(hits[key])) if hits[key] else 0.0
        result[f"ndcg10{suffix}"] = float(np.mean(gains[key])) if gains[key] else 0.0
    result["events"] = float(len(hits["all"]))
    result["events_repeat"] = float(len(hits["repeat"]))
    result["episodes"] = float(episodes)
    return result
