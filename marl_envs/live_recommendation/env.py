"""Live-stream recommendation: every online user's recommender is an agent.

* **Agents**: one per online *session*: ``user_<u>/s<k>`` is user ``u``'s ``k``-th
  session of the episode (``k = day * sessions_per_day + j``); it is in ``env.agents``
  exactly while the user is online, terminates when the session ends and is truncated
  at the end of the episode. Exception: when every running session ends at the same
  step, one of them stays one more step as a *closing* agent (``infos[agent]["closing"]``;
  its action is ignored and earns 0) so that the episode always has a running agent
  (RLlib ends a multi-agent episode once every agent it has seen is done).
* **Actions**: ``Discrete(n_streamers)``, the streamer to recommend this slot; an
  offline (or departed) streamer is a valid action that yields reward 0 and is counted
  as an invalid recommendation.
* **Observation**: ``Box(n_topics + 3 * n_streamers + 10,)`` float32: the user's
  preference vector, history share (watch slots per streamer / total), live mask,
  current viewers per streamer / users online, ``sin``/``cos`` of the hour, weekday
  one-hot (7), session progress (slots since session start / 12, capped at 1). With
  ``action_mask=True``: ``Dict(observation=<that Box>, action_mask=Box(0, 1,
  (n_streamers,), int8))`` (1 = live).
* **Reward**: watch minutes ``10 * sigmoid(v - v0)`` if the user accepts, plus
  ``like_bonus`` if the user likes it; 0 on rejection or an invalid recommendation;
  plus the exposure-deficit bonus when ``exposure_fairness > 0`` (below). Range
  ``[0, 10 + like_bonus + exposure_fairness]``.
* **Episode**: ``days * 144`` ten-minute slots from a random weekday (slots where nobody
  is online or no streamer is live are skipped); then every running session is
  truncated.
* **No one online**: an episode starts at its first slot with a user online while a
  streamer is live. When the drawn days hold no such slot (likely with very few users
  or streamers: e.g. 1 user and 2 streamers), there is nothing to decide in them, and
  ``reset`` draws the episode again (start weekday, jitter, sessions), continuing the
  same seeded random stream, until one has a decision slot (``env.redraws`` counts the
  draws it skipped). So ``env.agents`` is never empty after ``reset``: an episode with
  no agent would need a ``step({})`` that PettingZoo's ``parallel_api_test`` and AEC
  conversion (``env()``, whose agent selector cannot start on no agent) and RLlib do
  not support. Episodes are thereby drawn conditioned on having a decision; a seed whose
  first draw has one (every seed of the default preset) gives the same episode as
  before. The constructor raises ``ValueError`` for a world where no slot of the day
  can have a user online while a streamer is live (e.g. ``fitted`` schedules that only
  stream at night), where every draw would be empty.
* **Arguments** are checked with :mod:`marl_envs.validation` (``ValueError`` for a bad
  value, ``TypeError`` for a bad type, naming the argument): sizes ``n_users`` >= 1,
  ``n_streamers`` >= 2, ``days`` >= 1 (or None: the preset's), ``n_topics`` and
  ``patience`` >= 1, ``sessions_per_day`` in 1..4, ``min_exposure`` and
  ``initial_history`` >= 0, ``schedule_jitter`` in 0..143, ``world_seed`` >= 0
  (integers); ``like_bonus`` and ``exposure_fairness`` in [0, 1e6], the utility
  parameters (``beta_*``, ``outside_utility``, ``like_threshold``) in [-1e6, 1e6]
  (finite); ``action_mask`` a bool; ``preset`` a name of :data:`PRESETS`; ``fitted``
  None or :func:`~marl_envs.live_recommendation.data.fit_env_params`' mapping.

**Choice model.** The utility of streamer ``i`` for user ``u`` at a slot is::

    v_ui = beta_pref * <p_u, e_i> / sqrt(n_topics) + beta_quality * q_i
           + beta_repeat * [u watched i before] + beta_audience * log(1 + viewers_i)

with ``viewers_i`` the number of users watching ``i`` in the previous slot (herding:
users interact through audience sizes). Offered streamer ``i``, the user chooses by a
multinomial logit between it and not watching (utility ``v0 = outside_utility``):
``P(accept) = exp(v) / (exp(v) + exp(v0)) = sigmoid(v - v0)``. An accepted
recommendation is watched for ``10 * sigmoid(v - v0)`` minutes and liked with
probability ``sigmoid(v - like_threshold)``.

**Organic choice** (for HR@k / NDCG@k): at each slot, each online user's realised
organic choice is drawn by the same logit among *all* live streamers plus not
watching (Gumbel-max with noise from a dedicated random stream seeded by ``reset``, so
every recommender meets the same noise); it is given in ``infos[agent]["organic_choice"]``
(streamer index, or -1 for not watching) with ``infos[agent]["organic_repeat"]``
(whether the user watched that streamer before) for the agents about to act. It is a
counterfactual: it does not change the state.

**Streamers.** Each has a topic vector, a quality and a weekly schedule (days, start
slot, duration; the start jitters by up to ``schedule_jitter`` slots per day). A
streamer is live when scheduled and still on the platform. Exposure = recommendations
received. A streamer **leaves** once it has been live in ``patience`` processed slots and
received fewer than ``min_exposure`` recommendations over its last ``patience`` live
slots; it is never live again this episode.

**Fairness-aware reward** (``exposure_fairness = lam > 0``): a valid recommendation of
streamer ``i`` earns ``lam * max(0, 1 - e_i / max(mean_e, min_exposure))``, where
``e_i`` is ``i``'s exposure over its last ``patience`` live slots and ``mean_e`` the
mean over the live streamers: like FEN's fair-efficient reward it pays for moving each
provider's utility (here exposure) towards the mean, which keeps streamers above the
departure threshold. ``episode_stats`` report watch time without the bonus.

**World and episodes.** Topics, qualities, schedules, user preferences, users'
session times and initial watch histories are drawn once from ``world_seed`` (fixed
across episodes, so action ``i`` always means the same streamer), or taken from
``fitted`` parameters (:mod:`marl_envs.live_recommendation.data`). ``reset(seed)``
draws the start weekday, which sessions happen, schedule jitter and all choices.

Presets: ``"default"`` (100 users, 100 streamers, 1 day: trains in minutes on one core)
and ``"large"`` (5000 users, 500 streamers, 7 days); explicit sizes override a preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from marl_envs.metrics import fairness_report
from marl_envs.parallel_base import RENDER_MODES, ParallelEnvBase
from marl_envs.validation import (
    ArgumentTypeError,
    check_actions,
    check_bool,
    check_choice,
    check_float,
    check_int,
    show,
)

SLOTS_PER_DAY = 144
MINUTES_PER_SLOT = 10.0
#: the first slot-of-day users can be online (10:00) and the length of that window (14 h)
_USER_DAY_START, _USER_DAY_SLOTS = 60, 84

#: the largest magnitude of a utility parameter (beta_*, outside_utility, like_threshold)
#: and of like_bonus / exposure_fairness: keeps every utility and reward finite
_LIMIT = 1e6

PRESETS: dict[str, dict[str, int]] = {
    "default": {"n_users": 100, "n_streamers": 100, "days": 1},
    "large": {"n_users": 5000, "n_streamers": 500, "days": 7},
}


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal; 0 when all are 0)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * total))


def _check_fitted(fitted: Any) -> dict[str, np.ndarray]:
    """``fitted`` (see :func:`marl_envs.live_recommendation.data.fit_env_params`) as
    arrays, if it is a mapping with a finite non-negative ``affinity`` (n_users,
    n_streamers) table (n_streamers >= 2) and, per streamer, ``days`` (7 bools), a
    ``start`` slot in 0..143 and a ``duration`` >= 1 slots."""
    if not isinstance(fitted, Mapping):
        raise ArgumentTypeError(f"fitted must be None or a mapping (fit_env_params), got "
                                f"{show(fitted)} of type {type(fitted).__name__}")
    missing = [key for key in ("affinity", "days", "start", "duration") if key not in fitted]
    if missing:
        raise ValueError(f"fitted lacks {missing}; fit_env_params gives every key")
    try:
        affinity = np.asarray(fitted["affinity"], dtype=np.float64)
        days = np.asarray(fitted["days"])
        start = np.asarray(fitted["start"])
        duration = np.asarray(fitted["duration"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"fitted holds a table that is not numeric: {e}") from None
    if affinity.ndim != 2 or affinity.shape[0] < 1 or affinity.shape[1] < 2:
        raise ValueError(f"fitted['affinity'] must be a (n_users >= 1, n_streamers >= 2) "
                         f"table, got shape {affinity.shape}")
    if not np.isfinite(affinity).all() or (affinity < 0).any():
        raise ValueError("fitted['affinity'] must hold finite numbers >= 0 (watch slots)")
    k = affinity.shape[1]
    if days.shape != (k, 7) or days.dtype.kind not in "biu" or not np.isin(days, (0, 1)).all():
        raise ValueError(f"fitted['days'] must be a ({k}, 7) table of bools, got shape "
                         f"{days.shape} of {days.dtype}")
    for key, value, low, high in (("start", start, 0, SLOTS_PER_DAY - 1),
                                  ("duration", duration, 1, None)):
        if value.shape != (k,) or value.dtype.kind not in "iu":
            raise ValueError(f"fitted[{key!r}] must be {k} integers (one per streamer), got "
                             f"shape {value.shape} of {value.dtype}")
        if (value < low).any() or (high is not None and (value > high).any()):
            raise ValueError(f"fitted[{key!r}] must hold integers "
                             f"{f'in {low}..{high}' if high is not None else f'>= {low}'} "
                             f"slots, got {value.min()}..{value.max()}")
    return {**fitted, "affinity": affinity, "days": days.astype(bool),
            "start": start.astype(np.int64), "duration": duration.astype(np.int64)}


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    # clipped: exp(700) is finite, and the sigmoid is 0 or 1 to double precision beyond
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -700.0, 700.0)))


class LiveRecEnv(ParallelEnvBase):
    """Parallel live-stream recommendation environment; see the module docstring."""

    metadata = {
        "name": "live_recommendation_v0",
        "render_modes": list(RENDER_MODES),
        "render_fps": 4,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        n_users: int | None = None,
        n_streamers: int | None = None,
        days: int | None = None,
        preset: str = "default",
        n_topics: int = 4,
        sessions_per_day: int = 2,
        action_mask: bool = False,
        patience: int = 12,
        min_exposure: int = 2,
        like_bonus: float = 2.0,
        like_threshold: float = 2.0,
        beta_pref: float = 1.5,
        beta_quality: float = 0.5,
        beta_repeat: float = 1.0,
        beta_audience: float = 0.3,
        outside_utility: float = 1.0,
        schedule_jitter: int = 2,
        initial_history: int = 20,
        exposure_fairness: float = 0.0,
        world_seed: int = 0,
        fitted: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        preset = check_choice("preset", preset, PRESETS)
        n_users = check_int("n_users", n_users, low=1, none_ok=True)
        n_streamers = check_int("n_streamers", n_streamers, low=2, none_ok=True)
        days = check_int("days", days, low=1, none_ok=True)
        n_topics = check_int("n_topics", n_topics, low=1)
        sessions_per_day = check_int("sessions_per_day", sessions_per_day, low=1, high=4)
        action_mask = check_bool("action_mask", action_mask)
        patience = check_int("patience", patience, low=1)
        min_exposure = check_int("min_exposure", min_exposure, low=0)
        like_bonus = check_float("like_bonus", like_bonus, low=0.0, high=_LIMIT)
        exposure_fairness = check_float("exposure_fairness", exposure_fairness, low=0.0,
                                        high=_LIMIT)
        # utilities are logits: beyond a few dozen the choice model saturates, and the
        # bound keeps every utility (a sum of these terms) finite
        like_threshold, beta_pref, beta_quality, beta_repeat, beta_audience, outside_utility = (
            check_float(name, value, low=-_LIMIT, high=_LIMIT) for name, value in (
                ("like_threshold", like_threshold), ("beta_pref", beta_pref),
                ("beta_quality", beta_quality), ("beta_repeat", beta_repeat),
                ("beta_audience", beta_audience), ("outside_utility", outside_utility)))
        schedule_jitter = check_int("schedule_jitter", schedule_jitter, low=0,
                                    high=SLOTS_PER_DAY - 1)
        initial_history = check_int("initial_history", initial_history, low=0)
        world_seed = check_int("world_seed", world_seed, low=0)
        sizes = dict(PRESETS[preset])
        if fitted is not None:
            fitted = _check_fitted(fitted)
            sizes["n_users"], sizes["n_streamers"] = fitted["affinity"].shape
        for key, value in (("n_users", n_users), ("n_streamers", n_streamers), ("days", days)):
            if value is not None:
                sizes[key] = value
        self.n_users, self.n_streamers, self.days = (
            sizes["n_users"], sizes["n_streamers"], sizes["days"])
        self.preset = preset
        if fitted is not None and fitted["affinity"].shape != (self.n_users, self.n_streamers):
            raise ValueError(
                f"fitted affinity has shape {fitted['affinity'].shape}, the env "
                f"has n_users={self.n_users} and n_streamers={self.n_streamers}")
        self.n_topics = n_topics
        self.sessions_per_day = sessions_per_day
        self.use_action_mask = action_mask
        self.patience = patience
        self.min_exposure = min_exposure
        self.like_bonus = like_bonus
        self.like_threshold = like_threshold
        self.beta_pref = beta_pref
        self.beta_quality = beta_quality
        self.beta_repeat = beta_repeat
        self.beta_audience = beta_audience
        self.outside_utility = outside_utility
        self.schedule_jitter = schedule_jitter
        self.exposure_fairness = exposure_fairness
        self.world_seed = world_seed
        self.max_slots = self.days * SLOTS_PER_DAY

        self._build_world(initial_history, fitted)
        self._check_decisions_possible(fitted is not None)
        super().__init__([session_id(u, k) for u in range(self.n_users)
                          for k in range(self.days * self.sessions_per_day)], render_mode)
        self._ids = {a: parse_session_id(a) for a in self.possible_agents}
        self.obs_size = self.n_topics + 3 * self.n_streamers + 10
        box = spaces.Box(-np.inf, np.inf, shape=(self.obs_size,), dtype=np.float32)
        if self.use_action_mask:
            self._obs_space: spaces.Space = spaces.Dict({
                "observation": box,
                "action_mask": spaces.Box(0, 1, shape=(self.n_streamers,), dtype=np.int8),
            })
        else:
            self._obs_space = box
        self._act_space = spaces.Discrete(self.n_streamers)
        #: episodes drawn again by the last reset because they had nothing to decide
        self.redraws = 0
        self._reset_state(self.np_random)

    # ------------------------------------------------------------------ world
    def _build_world(self, initial_history: int, fitted: Mapping[str, Any] | None) -> None:
        """Streamers, users and their pasts: fixed by ``world_seed`` (or ``fitted``)."""
        rng = np.random.default_rng(self.world_seed)
        n, k, d = self.n_users, self.n_streamers, self.n_topics
        self.user_prefs = rng.normal(size=(n, d))
        self.streamer_topics = rng.normal(size=(k, d))
        self.quality = rng.normal(0.0, 0.5, size=k)
        self.match = self.user_prefs @ self.streamer_topics.T / np.sqrt(d)
        # weekly schedule: days (7 bools), start slot of day, duration in slots
        self.stream_days = rng.random((k, 7)) < 0.7
        self.stream_days[np.arange(k), rng.integers(0, 7, size=k)] = True
        self.stream_start = rng.integers(60, 133, size=k)  # 10:00 .. 22:00
        self.stream_duration = rng.integers(12, 37, size=k)  # 2 .. 6 hours
        # users: sessions_per_day daily windows between 10:00 and 24:00
        w = _USER_DAY_SLOTS // self.sessions_per_day
        offsets = _USER_DAY_START + w * np.arange(self.sessions_per_day)
        self.session_start = offsets + rng.integers(0, max(1, w // 2), size=(n, len(offsets)))
        self.session_length = rng.integers(3, max(4, min(12, int(0.4 * w)) + 1),
                                           size=(n, len(offsets)))
        self.session_prob = rng.uniform(0.6, 0.95, size=n)
        self.session_jitter = min(self.schedule_jitter, w // 20)
        # past watches: initial_history draws from a sharpened logit over all streamers
        base = self.beta_pref * self.match + self.beta_quality * self.quality
        p = np.exp(2 * (base - base.max(axis=1, keepdims=True)))
        p /= p.sum(axis=1, keepdims=True)
        self.initial_counts = np.stack(
            [rng.multinomial(initial_history, p[u]) for u in range(n)]).astype(np.float64)
        if fitted is not None:
            self.stream_days = np.asarray(fitted["days"], dtype=bool).reshape(k, 7)
            self.stream_start = np.asarray(fitted["start"], dtype=np.int64).reshape(k)
            self.stream_duration = np.asarray(fitted["duration"], dtype=np.int64).reshape(k)
            self.initial_counts = np.asarray(fitted["affinity"], dtype=np.float64).copy()
        self.stream_end = np.minimum(self.stream_start + self.stream_duration, SLOTS_PER_DAY)

    # ----------------------------------------------------------------- spaces
    def observation_space(self, agent: str) -> spaces.Space:
        """The one observation space object every agent shares."""
        self._check_agent(agent)
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        """The one ``Discrete(n_streamers)`` object every agent shares."""
        self._check_agent(agent)
        return self._act_space

    def _check_agent(self, agent: str) -> tuple[int, int]:
        try:
            u, k = parse_session_id(agent)
            if not (0 <= u < self.n_users and 0 <= k < self.days * self.sessions_per_day):
                raise ValueError
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                f"unknown agent id {agent!r}; allowed: 'user_<u>/s<k>' with 0 <= u < "
                f"{self.n_users}, 0 <= k < {self.days * self.sessions_per_day}"
            ) from None
        return u, k

    # ---------------------------------------------------------------- episode
    def _reset_state(self, rng: np.random.Generator) -> None:
        n, k, t_max = self.n_users, self.n_streamers, self.max_slots
        self.start_weekday = int(rng.integers(0, 7))
        # live schedule per slot (before departures)
        self.scheduled = np.zeros((t_max, k), dtype=bool)
        for day in range(self.days):
            weekday = (self.start_weekday + day) % 7
            jit = rng.integers(-self.schedule_jitter, self.schedule_jitter + 1, size=k)
            for i in np.flatnonzero(self.stream_days[:, weekday]):
                s = int(np.clip(self.stream_start[i] + jit[i], 0, SLOTS_PER_DAY - 1))
                e = int(np.clip(self.stream_end[i] + jit[i], s + 1, SLOTS_PER_DAY))
                self.scheduled[day * SLOTS_PER_DAY + s: day * SLOTS_PER_DAY + e, i] = True
        # user sessions: session index per (slot, user), -1 offline
        self.session_at = np.full((t_max, n), -1, dtype=np.int64)
        self.session_begin = np.zeros((n, self.days * self.sessions_per_day), dtype=np.int64)
        self.session_stop = np.zeros_like(self.session_begin)
        jj = self.session_jitter
        for day in range(self.days):
            happens = rng.random((n, self.sessions_per_day)) < self.session_prob[:, None]
            jit = rng.integers(-jj, jj + 1, size=(n, self.sessions_per_day))
            for j in range(self.sessions_per_day):
                idx = day * self.sessions_per_day + j
                s = day * SLOTS_PER_DAY + np.clip(self.session_start[:, j] + jit[:, j], 0, 143)
                e = np.minimum(s + self.session_length[:, j], (day + 1) * SLOTS_PER_DAY)
                self.session_begin[:, idx], self.session_stop[:, idx] = s, e
                for u in np.flatnonzero(happens[:, j]):
                    self.session_at[s[u]:e[u], u] = idx
        self.organic_rng = np.random.default_rng(rng.integers(2**63))
        self.counts = self.initial_counts.copy()
        self.active = np.ones(k, dtype=bool)
        self.departed_at = np.full(k, -1, dtype=np.int64)
        self.viewers = np.zeros(k, dtype=np.int64)
        self.window = np.zeros((k, self.patience), dtype=np.int64)
        self.live_slots = np.zeros(k, dtype=np.int64)
        self.exposure = np.zeros(k, dtype=np.float64)  # recommendations received, episode
        self.slot = 0
        self.processed_slots = 0
        self.watch_minutes = np.zeros(n, dtype=np.float64)
        self.likes = 0
        self.recommendations = 0
        self.accepted = 0
        self.invalid = 0
        self.organic_events = 0
        self.organic_hits = 0
        self.bonus_total = 0.0
        self.sessions_log: list[tuple[int, int, int, int]] = []  # user, streamer, start, stop
        self._open_watch: dict[int, list[int]] = {}  # user -> [streamer, start, stop]
        self.organic = np.full(n, -1, dtype=np.int64)
        self.last_rewards: dict[str, float] = {}
        self._closing: str | None = None
        self.agents = []

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._seed(seed)
        self.redraws = 0
        self._reset_state(self.np_random)
        self._advance_to_online()
        while self.slot >= self.max_slots:
            # nothing to decide in these days (nobody online while a streamer is live):
            # draw the episode again from the same stream (see the module docstring);
            # the constructor made sure that a decision slot can occur, so this ends
            self.redraws += 1
            self._reset_state(self.np_random)
            self._advance_to_online()
        self.agents = self._online_agents()
        return self._observations(self.agents), self._infos(self.agents)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        check_actions(actions)
        online = set(self.agents)
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in online]
        if missing or unknown:
            raise ValueError(
                f"actions must be given for exactly the online agents {self.agents}; "
                f"missing {missing}, unexpected {unknown}")
        acting = list(self.agents)
        for a in acting:
            self._check_action(a, actions[a], self.n_streamers)
        serving = [a for a in acting if a != self._closing]  # the closing agent is offline
        users = np.array([self._ids[a][0] for a in serving], dtype=np.int64)
        recs = np.array([int(actions[a]) for a in serving], dtype=np.int64)
        rewards = self._process_slot(users, recs)
        self.last_rewards = {**dict(zip(serving, rewards.tolist(), strict=True)),
                             **({self._closing: 0.0} if self._closing else {})}
        self._closing = None
        self.slot += 1
        self._advance_to_online()
        over = self.slot >= self.max_slots
        self.agents = [] if over else self._online_agents()
        if not over and not set(self.agents) & set(serving):
            # Every running session ends now: one of them stays one more step as a
            # "closing" agent (its action is ignored, reward 0, info "closing"), so some
            # agent of the episode is always still running -- RLlib ends a multi-agent
            # episode once every agent it has seen so far is done.
            self._closing = serving[0]
            self.agents.append(self._closing)
        new = [a for a in self.agents if a not in self.last_rewards]
        keys = acting + new
        obs = self._observations(keys)
        rewards_out = {**self.last_rewards, **dict.fromkeys(new, 0.0)}
        still = set(self.agents)
        terms = {a: (a not in still and not over) for a in keys}
        truncs = {a: (a not in still and over) for a in keys}
        # a session that ended exactly at the horizon is over on its own
        for a in acting:
            if over and self._session_over(a):
                terms[a], truncs[a] = True, False
        return obs, rewards_out, terms, truncs, self._infos(keys)

    def _session_over(self, agent: str) -> bool:
        u, k = parse_session_id(agent)
        return self.session_stop[u, k] <= self.slot

    def _advance_to_online(self) -> None:
        """Skip slots where nobody is online or nothing is live (nothing to decide)."""
        while self.slot < self.max_slots and not (
                (self.session_at[self.slot] >= 0).any() and self.live_mask().any()):
            self.slot += 1
            self.viewers[:] = 0
        if self.slot < self.max_slots:
            self._draw_organic()

    def _check_decisions_possible(self, fitted: bool) -> None:
        """ValueError unless some slot of the day can have a user online while a streamer
        is live: else every episode would have nothing to decide.

        Exact for the episode draw of :meth:`_reset_state`: a streamer that streams on
        any weekday can be live at every slot its jittered window can cover (the start
        weekday is uniform), a user's session can cover every slot of its jittered window
        (every session happens with probability >= 0.6), and all jitters have positive
        probability; so if both sets share a slot, each reset draws a decision slot with
        positive probability."""
        def coverable(starts: np.ndarray, stops_of: Any, jitter: int) -> np.ndarray:
            hits = np.zeros(SLOTS_PER_DAY + 1, dtype=np.int64)
            for j in range(-jitter, jitter + 1):
                s = np.clip(starts + j, 0, SLOTS_PER_DAY - 1)
                np.add.at(hits, s, 1)
                np.add.at(hits, stops_of(s, j), -1)
            return np.cumsum(hits)[:SLOTS_PER_DAY] > 0

        streaming = self.stream_days.any(axis=1)
        live = coverable(
            self.stream_start[streaming],
            lambda s, j: np.clip(self.stream_end[streaming] + j, s + 1, SLOTS_PER_DAY),
            self.schedule_jitter)
        length = self.session_length.ravel()
        online = coverable(
            self.session_start.ravel(),
            lambda s, j: np.minimum(s + length, SLOTS_PER_DAY),
            self.session_jitter)
        if not (live & online).any():
            def hours(mask: np.ndarray) -> str:
                edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
                spans = [f"{a // 6:02d}:{a % 6 * 10:02d}-{b // 6:02d}:{b % 6 * 10:02d}"
                         for a, b in zip(edges[::2], edges[1::2], strict=True)]
                return ", ".join(spans) if spans else "never"
            source = "the fitted schedules (fitted['days'], ['start'], ['duration'])" if (
                fitted) else f"world_seed={self.world_seed}"
            raise ValueError(
                f"no slot of the day can have a user online while a streamer is live "
                f"(users can be online at {hours(online)}, streamers live at "
                f"{hours(live)}), so no episode would have a recommendation to make: "
                f"change {source}, n_users, n_streamers, sessions_per_day or "
                f"schedule_jitter")

    def _online_agents(self) -> list[str]:
        users = np.flatnonzero(self.session_at[self.slot] >= 0)
        return [session_id(int(u), int(self.session_at[self.slot, u])) for u in users]

    # -------------------------------------------------------------- dynamics
    def exposure_deficits(self) -> np.ndarray:
        """Per streamer, ``max(0, 1 - e_i / max(mean_e, min_exposure))``: ``e_i`` its
        recommendations over its last ``patience`` live slots, ``mean_e`` their mean over
        the live streamers (the factor of the fairness-aware reward)."""
        recent = self.recent_exposure().astype(np.float64)
        live = self.live_mask()
        mean = recent[live].mean() if live.any() else 0.0
        return np.maximum(0.0, 1.0 - recent / max(mean, self.min_exposure, 1e-9))

    @property
    def closing_agent(self) -> str | None:
        """The agent kept one extra step after every session ended (its action is
        ignored; see the module docstring), or None."""
        return self._closing

    def recent_exposure(self) -> np.ndarray:
        """Per streamer, recommendations received over its last ``patience`` live slots."""
        return self.window.sum(axis=1)

    def lasting_exposure(self) -> np.ndarray:
        """Per streamer, the part of :meth:`recent_exposure` that still counts after the
        current slot (a live streamer's oldest window slot drops out when the slot is
        processed). A live streamer leaves after this slot when this plus the
        recommendations it gets now is below ``min_exposure`` (once live ``patience``
        slots)."""
        lasting = self.window.sum(axis=1)
        live = np.flatnonzero(self.live_mask())
        lasting[live] -= self.window[live, self.live_slots[live] % self.patience]
        return lasting

    def live_mask(self) -> np.ndarray:
        """Streamers live at the current slot (scheduled and still on the platform)."""
        t = min(self.slot, self.max_slots - 1)
        return self.scheduled[t] & self.active

    def _utilities(self, users: np.ndarray) -> np.ndarray:
        """``v_ui`` of every streamer for ``users`` (live or not), shape (len(users), K)."""
        return (self.beta_pref * self.match[users] + self.beta_quality * self.quality
                + self.beta_repeat * (self.counts[users] > 0)
                + self.beta_audience * np.log1p(self.viewers))

    def choice_probability(self, agent: str, streamer: int) -> float:
        """``P(accept) = sigmoid(v_ui - v0)`` of recommending ``streamer`` to the online
        ``agent`` now (0 when the streamer is not live)."""
        if agent not in self.agents:
            raise ValueError(f"agent {agent!r} is not online; online: {self.agents}")
        if not self.live_mask()[streamer]:
            return 0.0
        v = self._utilities(np.array([parse_session_id(agent)[0]]))[0, streamer]
        return float(_sigmoid(v - self.outside_utility))

    def true_utilities(self, agent: str) -> np.ndarray:
        """ORACLE ONLY: the true utilities ``v_ui`` of agent's user for every streamer
        (offline ones included) at the current slot; what no real recommender knows."""
        if agent not in self.agents:
            raise ValueError(f"agent {agent!r} is not online; online: {self.agents}")
        return self._utilities(np.array([parse_session_id(agent)[0]]))[0]

    def _draw_organic(self) -> None:
        """Each online user's organic choice among all live streamers and not watching."""
        users = np.flatnonzero(self.session_at[self.slot] >= 0)
        # Gumbel noise for the online users (float32: this is the large preset's hot spot)
        u = self.organic_rng.random((len(users), self.n_streamers + 1), dtype=np.float32)
        noise = -np.log(-np.log(np.clip(u, 1e-7, 1 - 1e-7)))
        v = np.where(self.live_mask(), self._utilities(users), -np.inf)
        total = np.concatenate([v, np.full((len(users), 1), self.outside_utility)], axis=1)
        choice = np.argmax(total + noise, axis=1)
        self.organic[:] = -1
        self.organic[users] = np.where(choice == self.n_streamers, -1, choice)

    def _process_slot(self, users: np.ndarray, recs: np.ndarray) -> np.ndarray:
        u_accept = self.np_random.random(self.n_users)[users]
        u_like = self.np_random.random(self.n_users)[users]
        live = self.live_mask()
        valid = live[recs]
        v = self._utilities(users)[np.arange(len(users)), recs]
        p_accept = _sigmoid(v - self.outside_utility)
        accept = valid & (u_accept < p_accept)
        like = accept & (u_like < _sigmoid(v - self.like_threshold))
        minutes = np.where(accept, MINUTES_PER_SLOT * p_accept, 0.0)
        rewards = minutes + self.like_bonus * like
        if self.exposure_fairness > 0:
            deficit = self.exposure_deficits()[recs]
            bonus = np.where(valid, self.exposure_fairness * deficit, 0.0)
            self.bonus_total += float(bonus.sum())
            rewards = rewards + bonus
        # bookkeeping
        self.recommendations += len(users)
        self.invalid += int((~valid).sum())
        self.accepted += int(accept.sum())
        self.likes += int(like.sum())
        np.add.at(self.watch_minutes, users, minutes)
        has_organic = self.organic[users] >= 0
        self.organic_events += int(has_organic.sum())
        self.organic_hits += int((has_organic & (self.organic[users] == recs)).sum())
        shown = np.bincount(recs[valid], minlength=self.n_streamers)
        self.exposure += shown
        self.viewers = np.bincount(recs[accept], minlength=self.n_streamers)
        np.add.at(self.counts, (users[accept], recs[accept]), 1.0)
        self._log_watches(users[accept], recs[accept])
        # departures: exposure over the last `patience` live slots
        live_idx = np.flatnonzero(live)
        self.window[live_idx, self.live_slots[live_idx] % self.patience] = shown[live_idx]
        self.live_slots[live_idx] += 1
        leave = live & (self.live_slots >= self.patience) & (
            self.window.sum(axis=1) < self.min_exposure)
        self.active &= ~leave
        self.departed_at[leave] = self.slot
        self.processed_slots += 1
        return rewards

    def _log_watches(self, users: np.ndarray, streamers: np.ndarray) -> None:
        absolute = self.start_weekday * SLOTS_PER_DAY + self.slot
        for u, i in zip(users.tolist(), streamers.tolist(), strict=True):
            cur = self._open_watch.get(u)
            if cur is not None and cur[0] == i and cur[2] == absolute:
                cur[2] = absolute + 1
                continue
            if cur is not None:
                self.sessions_log.append((u, cur[0], cur[1], cur[2]))
            self._open_watch[u] = [i, absolute, absolute + 1]

    def watch_sessions(self) -> list[tuple[int, int, int, int]]:
        """Every watch so far as ``(user, streamer, start, stop)`` rows: consecutive slots
        of one user on one streamer form one row; slots count from Monday 00:00 of the
        episode's first week (``start_weekday * 144 + slot``)."""
        rows = self.sessions_log + [(u, c[0], c[1], c[2]) for u, c in self._open_watch.items()]
        return sorted(rows, key=lambda r: (r[2], r[0]))

    # ----------------------------------------------------------- observation
    def _observations(self, agents: list[str]) -> dict[str, Any]:
        if not agents:
            return {}
        ids = np.array([self._ids[a] for a in agents], dtype=np.int64).reshape(-1, 2)
        users, ks = ids[:, 0], ids[:, 1]
        live = self.live_mask()
        t = min(self.slot, self.max_slots - 1)
        n_online = max(1, int((self.session_at[t] >= 0).sum()))
        hour = 2 * np.pi * (t % SLOTS_PER_DAY) / SLOTS_PER_DAY
        weekday = np.zeros(7)
        weekday[(self.start_weekday + t // SLOTS_PER_DAY) % 7] = 1.0
        counts = self.counts[users]
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        progress = np.minimum((t - self.session_begin[users, ks]) / 12.0, 1.0)
        m = len(agents)
        obs = np.concatenate([
            self.user_prefs[users],
            share,
            np.broadcast_to(live.astype(np.float64), (m, self.n_streamers)),
            np.broadcast_to(self.viewers / n_online, (m, self.n_streamers)),
            np.broadcast_to([np.sin(hour), np.cos(hour), *weekday], (m, 9)),
            progress[:, None],
        ], axis=1).astype(np.float32)
        if not self.use_action_mask:
            return dict(zip(agents, obs, strict=True))
        mask = live.astype(np.int8)
        return {a: {"observation": o, "action_mask": mask.copy()}
                for a, o in zip(agents, obs, strict=True)}

    def observe(self, agent: str) -> Any:
        """The current observation of an online agent (from the current state)."""
        if agent not in self.agents:
            raise ValueError(f"agent {agent!r} is not online; online: {self.agents}")
        return self._observations([agent])[agent]

    def observation_parts(self, obs: Any) -> dict[str, np.ndarray]:
        """Named parts of one observation (flat or action-mask dict): ``user``,
        ``history``, ``live``, ``viewers``, ``time`` (hour sin/cos, weekday one-hot,
        session progress)."""
        flat = np.asarray(obs["observation"] if isinstance(obs, Mapping) else obs)
        d, k = self.n_topics, self.n_streamers
        return {"user": flat[:d], "history": flat[d:d + k], "live": flat[d + k:d + 2 * k] > 0.5,
                "viewers": flat[d + 2 * k:d + 3 * k], "time": flat[d + 3 * k:]}

    def _infos(self, agents: list[str]) -> dict[str, dict]:
        infos: dict[str, dict] = {}
        online = set(self.agents)
        for a in agents:
            info: dict[str, Any] = {}
            if a == self._closing:
                info["closing"] = True
            elif a in online:
                u = self._ids[a][0]
                choice = int(self.organic[u])
                info["organic_choice"] = choice
                info["organic_repeat"] = bool(choice >= 0 and self.counts[u, choice] > 0)
            infos[a] = info
        return infos

    # ------------------------------------------------------------------ stats
    def episode_stats(self) -> dict[str, float]:
        """Flat scalars of the episode so far (see the README's metric list).

        ``utility/streamer_<i>`` and the FEN-style ``cv``/``min_utility``/... are over
        the *streamers'* exposure (recommendations per processed slot): providers are
        whose fairness this environment is about.
        """
        recs = max(self.recommendations, 1)
        slots = max(self.processed_slots, 1)
        names = [f"streamer_{i}" for i in range(self.n_streamers)]
        report = fairness_report(names, self.exposure / slots, 1.0, slots)
        stats = {
            "watch_time_per_user": float(self.watch_minutes.mean()),
            "acceptance_rate": self.accepted / recs,
            "invalid_rate": self.invalid / recs,
            "likes_per_user": self.likes / self.n_users,
            "recommendations": float(self.recommendations),
            "hr1": self.organic_hits / max(self.organic_events, 1),
            "exposure_gini": gini(self.exposure),
            "exposure_cv": report.cv,  # CV is scale-free: exposure per slot or in total
            "active_streamers": float(self.active.sum()),
            "active_fraction": float(self.active.mean()),
            "fairness_bonus_per_rec": self.bonus_total / recs,
            **report.scalars(),
        }
        del stats["utilization"]  # exposure has no capacity to be a fraction of
        return stats

    # ----------------------------------------------------------------- render
    def _render_ansi(self) -> str:
        t = min(self.slot, self.max_slots - 1)
        day, rest = divmod(t, SLOTS_PER_DAY)
        live = self.live_mask()
        top = np.argsort(-self.viewers)[:5]
        lines = [
            f"step {self.processed_slots} | day {day} {rest // 6:02d}:{rest % 6 * 10:02d} | "
            f"online users {len(self.agents)} | live streamers {int(live.sum())} | "
            f"active streamers {int(self.active.sum())}/{self.n_streamers}",
            f"watch min/user {self.watch_minutes.mean():.1f} | acceptance "
            f"{self.accepted / max(self.recommendations, 1):.3f} | invalid {self.invalid} | "
            f"exposure gini {gini(self.exposure):.3f}",
            "top audiences: " + ", ".join(
                f"streamer_{i}={int(self.viewers[i])}" for i in top if self.viewers[i] > 0),
        ]
        return "\n".join(lines) + "\n"

    def _render_rgb(self) -> np.ndarray:
        """One column per streamer: bar height = audience, green live, grey offline,
        red departed (64 px high, 4 px per streamer, at least 64 px wide)."""
        k = self.n_streamers
        width = max(64, 4 * k)
        img = np.full((64, width, 3), 255, dtype=np.uint8)
        live = self.live_mask()
        top = max(1, int(self.viewers.max()))
        for i in range(k):
            colour = (0, 160, 0) if live[i] else (200, 0, 0) if not self.active[i] else (
                160, 160, 160)
            h = 4 + int(56 * self.viewers[i] / top)
            img[64 - h:, 4 * i:4 * i + 3] = colour
        return img


def session_id(user: int, k: int) -> str:
    """The agent id of user ``user``'s ``k``-th session of an episode."""
    return f"user_{user}/s{k}"


def parse_session_id(agent: str) -> tuple[int, int]:
    """``"user_3/s1"`` -> ``(3, 1)``; ValueError for anything else."""
    user, sep, sess = agent.partition("/")
    if not (sep and user.startswith("user_") and sess.startswith("s")):
        raise ValueError(f"not a session id: {agent!r}")
    return int(user[5:]), int(sess[1:])
