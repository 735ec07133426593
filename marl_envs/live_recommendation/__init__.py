"""Live-stream recommendation (LiveRec-style): the environment and its data tools.

* :mod:`marl_envs.live_recommendation.env` - :class:`LiveRecEnv`, a PettingZoo
  ``ParallelEnv`` whose agents are users' recommenders (one per online session);
* :mod:`marl_envs.live_recommendation.data` - load LiveRec-format CSV, fit schedules
  and affinities for the env, export the simulator's sessions in the same format.

The registry module is :mod:`marl_envs.live_recommendation_v0`.
"""

from marl_envs.live_recommendation.env import (
    PRESETS,
    LiveRecEnv,
    gini,
    parse_session_id,
    session_id,
)

__all__ = ["PRESETS", "LiveRecEnv", "gini", "parse_session_id", "session_id"]
