"""Baseline recommenders for ``marl_envs.live_recommendation_v0`` (numpy only, no Ray).

Every recommender scores all streamers for each acting agent; the recommendation is
the best-scored *live* streamer (:func:`recommend`), and HR@k / NDCG@k rank the live
streamers by the same scores (:mod:`policies.recommender_evaluation`).

==============  ===============================================================
name            score of streamer ``i`` for a user
==============  ===============================================================
``random``      uniform noise (a random live streamer)
``popular``     current viewers of ``i`` (most popular live streamer; ties random)
``repeat``      the user's share of past watch slots on ``i`` (the user's most-watched
                live streamer; ties, e.g. no live streamer ever watched, random)
``oracle``      the true utility ``v_ui`` (``env.true_utilities``; oracle only)
==============  ===============================================================

The first three read only the observation (``env.observation_parts``); ties are
broken by noise of ``1e-6`` scale from the recommender's own generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

_TIE = 1e-6


class Recommender:
    """Scores streamers for the agents about to act; subclasses define :meth:`score`."""

    name = "base"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def score(self, env: Any, agent: str, obs: Any) -> np.ndarray:
        """Scores of all streamers (higher = better) for ``agent`` given ``obs``."""
        raise NotImplementedError

    def scores(self, env: Any, obs_by_agent: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """:meth:`score` of every agent in ``obs_by_agent``, plus tie-breaking noise."""
        k = env.n_streamers
        return {a: np.asarray(self.score(env, a, o), dtype=np.float64)
                + _TIE * self.rng.random(k) for a, o in obs_by_agent.items()}


class RandomLive(Recommender):
    """A uniformly random live streamer."""

    name = "random"

    def score(self, env: Any, agent: str, obs: Any) -> np.ndarray:
        return self.rng.random(env.n_streamers)


class MostPopularLive(Recommender):
    """The live streamer with the largest current audience."""

    name = "popular"

    def score(self, env: Any, agent: str, obs: Any) -> np.ndarray:
        return env.observation_parts(obs)["viewers"].astype(np.float64)


class RepeatLive(Recommender):
    """The user's most-watched live streamer (the repeat-consumption heuristic)."""

    name = "repeat"

    def score(self, env: Any, agent: str, obs: Any) -> np.ndarray:
        return env.observation_parts(obs)["history"].astype(np.float64)


class Oracle(Recommender):
    """The live streamer of highest true utility (upper bound; uses oracle-only state)."""

    name = "oracle"

    def score(self, env: Any, agent: str, obs: Any) -> np.ndarray:
        return np.asarray(env.true_utilities(agent), dtype=np.float64)


BASELINES: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (RandomLive, MostPopularLive, RepeatLive, Oracle)
}


def live_from_obs(env: Any, obs: Any) -> np.ndarray:
    """Boolean live mask of an observation (flat or action-mask dict)."""
    if isinstance(obs, Mapping) and "action_mask" in obs:
        return np.asarray(obs["action_mask"]) > 0
    return env.observation_parts(obs)["live"]


def recommend(scores: np.ndarray, live: np.ndarray) -> int:
    """The best-scored live streamer (the best overall when none is live)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not live.any():
        return int(np.argmax(scores))
    return int(np.argmax(np.where(live, scores, -np.inf)))
