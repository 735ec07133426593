"""Live-stream recommendation, PettingZoo module form (``parallel_env``, ``env``).

The environment is :class:`marl_envs.live_recommendation.LiveRecEnv`; its module
docstring (``marl_envs/live_recommendation/env.py``) details the choice model, the
organic choice used for HR@k, streamer departures, the fairness-aware reward and the
presets. Data tools: :mod:`marl_envs.live_recommendation.data`.

| | |
|---|---|
| Agents | one per online **session**: ``user_<u>/s<k>`` is user ``u``'s ``k``-th session of the episode (``k = day * sessions_per_day + j``); it is in ``env.agents`` exactly while the user is online, and terminates when the session ends (truncated at the end of the episode); when every running session ends at once, one stays one more step as a *closing* agent (action ignored, reward 0, ``infos[agent]["closing"]``) so the episode always has a running agent |
| Actions | ``Discrete(n_streamers)``: the streamer to recommend this slot; an offline (or departed) streamer is a valid action that yields reward 0 and is counted as an invalid recommendation |
| Observation | ``Box(n_topics + 3 * n_streamers + 10,)`` float32: the user's preference vector, history share (watch slots per streamer / total), live mask, current viewers per streamer / users online, ``sin``/``cos`` of the hour, weekday one-hot (7), session progress (slots since session start / 12, capped at 1). With ``action_mask=True``: ``Dict(observation=<that Box>, action_mask=Box(0, 1, (n_streamers,), int8))`` (1 = live) |
| Reward | watch minutes ``10 * sigmoid(v - v0)`` if the user accepts the recommendation, plus ``like_bonus`` if the user likes it; 0 on rejection or an invalid recommendation; plus the exposure-deficit bonus when ``exposure_fairness > 0`` (see ``env.py``). Range ``[0, 10 + like_bonus + exposure_fairness]`` |
| Episode | ``days * 144`` ten-minute slots from a random weekday (slots where nobody is online or no streamer is live are skipped; when the drawn days hold no slot at all with a user online while a streamer is live, ``reset`` draws the episode again, so ``env.agents`` is never empty after ``reset``: see ``env.py``, *No one online*); then every running session is truncated |
"""

from __future__ import annotations

from marl_envs.live_recommendation import LiveRecEnv
from marl_envs.resource_env import constructors

parallel_env, env = constructors(LiveRecEnv)
raw_env = LiveRecEnv

__all__ = ["LiveRecEnv", "env", "parallel_env", "raw_env"]
