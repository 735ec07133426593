"""FEN's environment-side machinery as PettingZoo parallel wrappers (no Ray needed).

Three wrappers turn a base resource environment (``marl_envs``) into what each
training variant learns from; all keep the base env reachable as ``.unwrapped``
so fairness metrics are always computed on the *environment* rewards.

:class:`FENHierarchyEnv` -- the hierarchy of FEN, expressed as multi-agent RL so
that RLlib can train it (a high-level agent acts every T steps, low-level agents
in between). Agent ids, for base agent ``a``, controller period ``k`` and
sub-policy ``z``:

* ``a/ctrl/k`` -- the controller's decision at the start of period k. Observes
  ``o ++ [(u_a - ubar)/ubar, min(1, ubar/c)]``, acts ``Discrete(M)`` (the
  sub-policy index z), and receives the fair-efficient reward ``rhat_a`` computed
  at the end of the period; it terminates on the next controller step (or at the
  episode end) -- a one-step episode, so the controller's value is regressed on
  the immediate rhat (gamma = 0, as in the paper's code).
  With ``controller_horizon="episode"`` the controller is instead one agent ``a/ctrl``
  for the whole episode: it acts at the start of every period and gets the rhat of
  the period just ended with its next observation, so PPO maximises the discounted sum
  of rhat over the episode (the paper's objective), discounted once per decision.
* ``a/sub/k/z`` -- sub-policy z acting for agent a during period k (T steps, or
  fewer at the episode end): each period is one segment, as in Algorithm 1 of the
  paper. Observes the same augmented observation as the
  controller (the controller is the discriminator ``p(z | o)`` of the sub-policies'
  information-theoretic reward, which the learner computes from these
  observations) and acts in the base env. Sub-policy 0 is rewarded with the
  environment reward; sub-policies 1..M-1 receive 0 here -- their reward
  ``log p(z | o')`` is added on the learner (:mod:`policies.fen.discriminator`).
  With ``segment_end="truncate"`` (the default) a segment that ends with its period (not
  with the episode) is *truncated*: the period's time limit cut it, so PPO bootstraps its
  return from the sub-policy's value of the segment's last observation. With
  ``"terminate"`` (the authors' code) it is terminated, and its return counts only the
  rewards inside the segment.

A step of the wrapper is either a *controller step* (only ``a/ctrl/k`` agents act;
the base env does not move) or a *base step* (only ``a/sub/k/z`` agents act).

:class:`FairEfficientRewardEnv` -- "FEN w/o hierarchy": base agent ids, the same
augmented observation, reward ``rhat`` at every step.

:class:`ShapedRewardEnv` -- the baselines of the paper as reward shapings of
independent learners (``independent``, ``min``, ``avg``, ``min_avg``,
``inequity_aversion``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl_envs.metrics import utilities
from marl_envs.resource_env import ResourceEnv
from policies.fen.gossip import DEFAULT_GRAPH, GossipAverager
from policies.fen.reward import (
    EFFICIENCY_WINDOWS,
    EPS,
    controller_features,
    fair_efficient_reward,
)

#: FEN's default efficiency window and segment end: the setup that reaches the paper's
#: figures (``results/fen_job_scheduling/report.md``); the authors' code uses ``"episode"`` and
#: ``"terminate"`` (:data:`policies.fen.variants.PRESETS`, ``--preset authors``)
DEFAULT_EFFICIENCY = "period"
DEFAULT_SEGMENT_END = "truncate"
#: what a controller decision is credited with: ``period`` -- its own period's rhat (a
#: one-step episode, gamma 0 as in the authors' code); ``episode`` -- the discounted sum
#: of the rhat of every period from it to the episode's end (one controller trajectory)
CONTROLLER_HORIZONS = ("period", "episode")
#: how a sub-policy's segment ends with its period: ``terminate`` -- as an episode of its
#: own (returns sum the segment's rewards only, as in the authors' code); ``truncate`` -- cut
#: by the period's time limit (GAE bootstraps from the value of the last observation)
SEGMENT_ENDS = ("terminate", "truncate")
#: the second word of the gossip stream's seed (``[reset seed, GOSSIP_STREAM]``)
GOSSIP_STREAM = 7919
#: bins of the relative utility (u_i - ubar)/ubar for the controller-behaviour statistic
RELATIVE_UTILITY_BINS = (-np.inf, -0.5, -0.1, 0.1, 0.5, np.inf)
RELATIVE_UTILITY_BIN_NAMES = ("below_-0.5", "-0.5_to_-0.1", "-0.1_to_0.1", "0.1_to_0.5",
                              "above_0.5")


class AverageUtility:
    """Each agent's estimate of ``ubar``: central (exact mean) or gossip consensus."""

    def __init__(
        self,
        n_agents: int,
        mode: str = "central",
        graph: str = DEFAULT_GRAPH,
        rounds: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        if mode not in ("central", "gossip"):
            raise ValueError(f"unknown average-utility mode {mode!r}; allowed: central, gossip")
        self.mode = mode
        self._gossip = (
            GossipAverager(n_agents, graph, rounds, rng=rng) if mode == "gossip" else None
        )

    def __call__(self, utility: np.ndarray) -> np.ndarray:
        if self._gossip is None:
            return np.full(utility.shape, utility.mean())
        return self._gossip.estimate(utility)

    def central_mean(self, utility: np.ndarray) -> float | None:
        """The exact mean (``utility.mean()``'s value) where every agent's estimate is it
        (``central``); None for gossip."""
        return None if self._gossip is not None else utility.sum() / utility.size


def _augmented_space(base: ResourceEnv, feature_scale: float) -> spaces.Box:
    space = base.observation_space(base.possible_agents[0])
    if base.use_action_mask:
        space = space["observation"]
    n = base.n_agents
    rel_high = feature_scale * max(n - 1.0, 1.0)
    low = np.concatenate([space.low, np.array([-feature_scale, 0.0], dtype=np.float32)])
    high = np.concatenate([space.high, np.array([rel_high, 1.0], dtype=np.float32)])
    return spaces.Box(low, high, dtype=np.float32)


class _UtilityWrapper(ParallelEnv):
    """Common state of the FEN wrappers: the base env, utilities and ubar estimates."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "is_parallelizable": True}

    def __init__(self, base: ResourceEnv, average: str, gossip_graph: str,
                 gossip_rounds: int | None, eps: float, feature_scale: float) -> None:
        if not isinstance(base, ResourceEnv):
            raise TypeError(f"FEN wrappers need a marl_envs resource env, got {type(base)!r}")
        if not feature_scale > 0:
            raise ValueError(f"feature_scale must be > 0, got {feature_scale}")
        self.base = base
        self.eps = eps
        self.c = base.max_fair_utility
        self.render_mode = base.render_mode
        self._average_mode = average
        self._gossip_graph = gossip_graph
        self._gossip_rounds = gossip_rounds
        self._average = AverageUtility(base.n_agents, average, gossip_graph, gossip_rounds)
        self._gossip_stream = np.random.default_rng()  # seeded by every seeded reset
        # the relative utility (u_i - ubar)/ubar is multiplied by this in observations only:
        # near-equal utilities differ by a few percent, a scale > 1 makes them legible
        self._feature_scale = np.array([feature_scale, 1.0], dtype=np.float32)
        self._augmented_space = _augmented_space(base, feature_scale)
        self._features = np.zeros((base.n_agents, 2), dtype=np.float32)
        self._ubar = np.zeros(base.n_agents)
        #: a base env with ``action_mask=True``: acting agents observe
        #: ``{"observation": <augmented>, "action_mask": <base mask>}`` (controllers, which
        #: choose sub-policies, observe the augmented observation alone)
        self._masked = bool(base.use_action_mask)
        self._acting_space: spaces.Space = self._augmented_space
        if self._masked:
            self._acting_space = spaces.Dict({
                "observation": self._augmented_space,
                "action_mask": base.observation_space(base.possible_agents[0])["action_mask"],
            })

    @property
    def unwrapped(self) -> ResourceEnv:
        return self.base

    def _reset_base(self, seed: int | None) -> dict[str, np.ndarray]:
        obs, _ = self.base.reset(seed=seed)
        # gossip noise/peers come from a stream of the wrapper's own, seeded by the reset's
        # seed: the base env's generator is left alone, so an episode of seed s has the
        # same arrivals under FEN as in the bare env (and for every other scheduler)
        if seed is not None:
            self._gossip_stream = np.random.default_rng([int(seed), GOSSIP_STREAM])
        self._average = AverageUtility(
            self.base.n_agents, self._average_mode, self._gossip_graph, self._gossip_rounds,
            rng=np.random.default_rng(self._gossip_stream.integers(2**63)),
        )
        self._ubar[:] = 0.0
        self._features[:] = 0.0
        return obs

    def _update_utilities(self) -> np.ndarray:
        u = utilities(self.base.utility_sums, self.base.num_steps)
        mean = self._average.central_mean(u)
        if mean is None:
            self._ubar = self._average(u)
            self._features = controller_features(u, self._ubar, self.c)
        else:  # every agent's estimate is the mean: features from the scalar
            self._ubar = np.full(u.shape, mean)
            self._features = controller_features(u, mean, self.c)
        return u

    def _augment(self, base_obs: dict[str, Any]) -> np.ndarray:
        """Each base agent's observation, then its two (scaled) controller features: one
        new array per call (its rows go out as observations)."""
        rows = [base_obs[a] for a in self.base.possible_agents]
        if self._masked:
            rows = [row["observation"] for row in rows]
        first = rows[0]
        out = np.empty((len(rows), first.shape[0] + 2),
                       dtype=np.result_type(first.dtype, self._features.dtype))
        out[:, :-2] = rows
        np.multiply(self._features, self._feature_scale, out=out[:, -2:])
        return out

    def _acting(self, base_obs: dict[str, Any], aug: np.ndarray) -> list[Any]:
        """Per base agent, the observation of the agent acting in the base env: ``aug``'s
        row, with the base env's action mask when it has one."""
        if not self._masked:
            return list(aug)
        return [{"observation": row, "action_mask": base_obs[a]["action_mask"]}
                for a, row in zip(self.base.possible_agents, aug, strict=True)]

    def render(self) -> Any:
        return self.base.render()

    def close(self) -> None:
        self.base.close()


class FENHierarchyEnv(_UtilityWrapper):
    """FEN's controller / sub-policy hierarchy as a multi-agent env; see the module doc."""

    def __init__(
        self,
        base: ResourceEnv,
        period: int,
        n_subpolicies: int = 4,
        average: str = "central",
        gossip_graph: str = DEFAULT_GRAPH,
        gossip_rounds: int | None = None,
        eps: float = EPS,
        feature_scale: float = 1.0,
        efficiency: str = DEFAULT_EFFICIENCY,
        controller_horizon: str = "period",
        controller_reward_scale: float = 1.0,
        segment_end: str = DEFAULT_SEGMENT_END,
    ) -> None:
        super().__init__(base, average, gossip_graph, gossip_rounds, eps, feature_scale)
        if segment_end not in SEGMENT_ENDS:
            raise ValueError(f"unknown segment end {segment_end!r}; allowed: {list(SEGMENT_ENDS)}")
        self.segment_end = segment_end
        if controller_horizon not in CONTROLLER_HORIZONS:
            raise ValueError(f"unknown controller horizon {controller_horizon!r}; "
                             f"allowed: {list(CONTROLLER_HORIZONS)}")
        self.controller_horizon = controller_horizon
        if not controller_reward_scale > 0:
            raise ValueError(f"controller_reward_scale must be > 0, got {controller_reward_scale}")
        #: multiplies rhat in the controllers' reward (not in the logged fair-efficient reward)
        self.controller_reward_scale = controller_reward_scale
        if efficiency not in EFFICIENCY_WINDOWS:
            raise ValueError(f"unknown efficiency window {efficiency!r}; "
                             f"allowed: {list(EFFICIENCY_WINDOWS)}")
        self.efficiency = efficiency
        if period < 1:
            raise ValueError(f"period (T) must be >= 1, got {period}")
        if n_subpolicies < 1:
            raise ValueError(f"n_subpolicies (M) must be >= 1, got {n_subpolicies}")
        self.period = period
        self.n_subpolicies = n_subpolicies
        self.n_periods = math.ceil(base.max_cycles / period)
        self.metadata = {**self.metadata, "name": f"fen_hierarchy({base.metadata['name']})"}
        base_agents = base.possible_agents
        self.possible_agents = list(dict.fromkeys(  # an episode-long controller id once
            aid
            for k in range(self.n_periods)
            for a in base_agents
            for aid in [self._ctrl_id(a, k)] + [subpolicy_id(a, k, z)
                                                for z in range(n_subpolicies)]
        ))
        self._ctrl_action_space = spaces.Discrete(n_subpolicies)
        self._sub_action_space = base.action_space(base_agents[0])
        self.agents: list[str] = []
        self._controllers_act = True  # whether self.agents are controllers (else sub-policies)
        self._z = np.zeros(base.n_agents, dtype=np.int64)
        self._sub0 = [True] * base.n_agents  # per base agent: runs sub-policy 0 (from _z)
        self._n_sub0 = base.n_agents
        self._utility_total = 0.0  # the base env's utility sums, summed (_base_step)
        self._period_index = 0
        self._base_obs: dict[str, Any] = {}
        self._decisions: list[tuple[float, int]] = []
        self._rhat_sum = 0.0
        self._rhat_count = 0
        # per number k of agents running sub-policy 0: steps, and utility earned / (n c)
        self._steps_by_n_sub0 = np.zeros(base.n_agents + 1)
        self._use_by_n_sub0 = np.zeros(base.n_agents + 1)
        # utility sums and step count when the current period began (efficiency="period")
        self._period_start_sums = np.zeros(base.n_agents)
        self._period_start_step = 0
        self._closing_obs: dict[str, np.ndarray] = {}
        self._closing_rewards: dict[str, float] = {}
        self._closing_infos: dict[str, dict] = {}

    def observation_space(self, agent: str) -> spaces.Space:
        return self._augmented_space if self._parse(agent)[1] == "ctrl" else self._acting_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._ctrl_action_space if self._parse(agent)[1] == "ctrl" else \
            self._sub_action_space

    def _ctrl_id(self, agent: str, period: int) -> str:
        """The agent id of ``agent``'s controller deciding at the start of ``period``."""
        if self.controller_horizon == "episode":
            return f"{agent}/ctrl"
        return controller_id(agent, period)

    def _parse(self, agent: str) -> tuple[str, str, int, int]:
        parts = agent.split("/")
        persistent = self.controller_horizon == "episode"
        try:
            if parts[1] == "ctrl" and len(parts) == (2 if persistent else 3):
                base_agent, kind, k, z = parts[0], "ctrl", 0 if persistent else int(parts[2]), -1
            elif parts[1] == "sub" and len(parts) == 4:
                base_agent, kind, k, z = parts[0], "sub", int(parts[2]), int(parts[3])
            else:
                raise ValueError
            self.base._check_agent(base_agent)
            if not 0 <= k < self.n_periods or z >= self.n_subpolicies:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(
                f"unknown agent id {agent!r}; allowed: "
                f"'<agent>/ctrl{'' if persistent else '/<k>'}' or "
                f"'<agent>/sub/<k>/<z>' with agent in {self.base.possible_agents}, "
                f"0 <= k < {self.n_periods}, 0 <= z < {self.n_subpolicies}"
            ) from None
        return base_agent, kind, k, z

    # ----------------------------------------------------------------- protocol
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._base_obs = self._reset_base(seed)
        self._period_index = 0
        self._closing_obs = {}
        self._period_start_sums = np.array(self.base.utility_sums, dtype=np.float64)
        self._utility_total = float(self.base.utility_sums.sum())
        self._period_start_step = self.base.num_steps
        self._decisions = []
        self._rhat_sum = 0.0
        self._rhat_count = 0
        self._steps_by_n_sub0[:] = 0.0
        self._use_by_n_sub0[:] = 0.0
        self.agents = [self._ctrl_id(a, 0) for a in self.base.possible_agents]
        self._controllers_act = True
        aug = self._augment(self._base_obs)
        return dict(zip(self.agents, aug, strict=True)), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in self.agents]
        if missing or unknown:
            raise ValueError(
                f"actions must be given for exactly the acting agents {self.agents}; "
                f"missing {missing}, unexpected {unknown}"
            )
        if self._controllers_act:
            return self._controller_step(actions)
        return self._base_step(actions)

    def _controller_step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        k = self._period_index
        base_agents = self.base.possible_agents
        rel = self._features[:, 0]
        for i, a in enumerate(base_agents):
            z = actions[self._ctrl_id(a, k)]
            if not self._ctrl_action_space.contains(np.int64(z)):
                raise ValueError(
                    f"invalid sub-policy {z!r} for {self._ctrl_id(a, k)!r}; "
                    f"allowed: integers 0..{self.n_subpolicies - 1}"
                )
            self._z[i] = int(z)
            self._decisions.append((float(rel[i]), int(z)))
        self.agents = [subpolicy_id(a, k, int(self._z[i])) for i, a in enumerate(base_agents)]
        self._sub0 = (self._z == 0).tolist()  # per base agent: runs sub-policy 0
        self._n_sub0 = sum(self._sub0)
        self._controllers_act = False
        aug = self._augment(self._base_obs)
        obs = dict(zip(self.agents, self._acting(self._base_obs, aug), strict=True))
        rewards = dict.fromkeys(self.agents, 0.0)
        terminated = dict.fromkeys(self.agents, False)
        infos: dict[str, dict] = {a: {} for a in self.agents}
        if self._closing_obs:  # the previous decisions end now, with their rhat (_base_step)
            obs.update(self._closing_obs)
            rewards.update(self._closing_rewards)
            terminated.update(dict.fromkeys(self._closing_obs, True))
            infos.update(self._closing_infos)
            self._closing_obs = {}
        return obs, rewards, terminated, dict.fromkeys(obs, False), infos

    def _base_step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        base_agents = self.base.possible_agents
        base_actions = {a: actions[sid] for a, sid in zip(base_agents, self.agents, strict=True)}
        earned_before = self._utility_total  # the utility earned so far
        self._base_obs, env_rewards, terms, truncs, base_infos = self.base.step(base_actions)
        n_sub0 = self._n_sub0
        self._steps_by_n_sub0[n_sub0] += 1
        total = float(self.base.utility_sums.sum())
        earned = total - earned_before
        self._utility_total = total
        self._use_by_n_sub0[n_sub0] += min(1.0, earned / (self.base.n_agents * self.c))
        u = self._update_utilities()
        aug = self._augment(self._base_obs)
        subs = self.agents
        obs = dict(zip(subs, self._acting(self._base_obs, aug), strict=True))
        rewards = {  # sub-policy 0 keeps the environment's reward
            sid: (env_rewards[a] if sub0 else 0.0)
            for a, sid, sub0 in zip(base_agents, subs, self._sub0, strict=True)
        }
        infos = {sid: base_infos[a] for a, sid in zip(base_agents, subs, strict=True)}
        episode_over = not self.base.agents
        period_over = self.base.num_steps % self.period == 0
        if not (episode_over or period_over):
            falses = dict.fromkeys(subs, False)
            return obs, rewards, falses, dict(falses), infos
        # end of a period: the segments terminate and every controller earns rhat
        k = self._period_index
        rhat = fair_efficient_reward(u, self._ubar, self.c, self.eps,
                                     efficiency_average=self._period_average())
        self._rhat_sum += float(rhat.sum())
        self._rhat_count += rhat.size
        ctrl_ids = [self._ctrl_id(a, k) for a in base_agents]
        self._closing_obs = dict(zip(ctrl_ids, aug, strict=True))
        self._closing_rewards = dict(zip(
            ctrl_ids, (rhat * self.controller_reward_scale).tolist(), strict=True))
        self._closing_infos = {
            cid: {"fair_efficient_reward": float(rhat[i]), "sub_policy": int(self._z[i])}
            for i, cid in enumerate(ctrl_ids)
        }
        # the segments end: with the episode they terminate; with their period they
        # terminate or, with segment_end="truncate", are truncated (and bootstrapped)
        cut = self.segment_end == "truncate" and not episode_over
        terminated = dict.fromkeys(subs, not cut)
        truncated = dict.fromkeys(subs, cut)
        if episode_over or self.controller_horizon == "episode":
            # rhat reaches the controllers now: at the episode's end they terminate; an
            # episode-long controller gets it with its next decision's observation
            obs.update(self._closing_obs)
            rewards.update(self._closing_rewards)
            terminated.update(dict.fromkeys(ctrl_ids, episode_over))
            infos.update(self._closing_infos)
            self._closing_obs = {}
            if episode_over:
                self.agents = []
            else:
                self._period_index = k + 1
                self.agents = ctrl_ids
                self._controllers_act = True
        else:
            # The next decisions are requested now; the finished decisions are closed
            # (terminated with their rhat) on the controller step that follows, so that
            # some agent of the episode is always still running -- RLlib ends a
            # multi-agent episode once every agent it has seen so far is done.
            self._period_index = k + 1
            self.agents = [self._ctrl_id(a, k + 1) for a in base_agents]
            self._controllers_act = True
            for i, cid in enumerate(self.agents):
                obs[cid] = aug[i]
                rewards[cid] = 0.0
                terminated[cid] = False
                infos[cid] = {}
        return obs, rewards, terminated, {a: truncated.get(a, False) for a in obs}, infos

    def _period_average(self) -> np.ndarray | None:
        """With ``efficiency="period"``: the average (estimate, like ubar's) of the utility
        earned in the period that ends now, which starts the next period; else None."""
        if self.efficiency != "period":
            return None
        # the controllers' observation keeps the episode's min(1, ubar/c); with gossip, this
        # second consensus draws from the same generator as ubar's
        sums = np.array(self.base.utility_sums, dtype=np.float64)
        steps = self.base.num_steps - self._period_start_step
        period_u = (sums - self._period_start_sums) / max(steps, 1)
        self._period_start_sums, self._period_start_step = sums, self.base.num_steps
        return self._average(period_u)

    # ------------------------------------------------------------------ stats
    def episode_stats(self) -> dict[str, float]:
        """Base-env fairness stats plus the controller's behaviour this episode."""
        stats = self.base.episode_stats()
        if self._rhat_count:
            stats["fair_efficient_reward"] = self._rhat_sum / self._rhat_count
        if self._decisions:
            rel = np.array([d[0] for d in self._decisions])
            z = np.array([d[1] for d in self._decisions])
            for m in range(self.n_subpolicies):
                stats[f"controller/choice_freq/sub{m}"] = float(np.mean(z == m))
            bins = np.digitize(rel, RELATIVE_UTILITY_BINS[1:-1])
            for b, name in enumerate(RELATIVE_UTILITY_BIN_NAMES):
                sel = bins == b
                if sel.any():
                    stats[f"controller/p_sub0/rel_utility_{name}"] = float(np.mean(z[sel] == 0))
        # where utilization is lost: how often k agents run sub-policy 0, and the
        # utilization of those steps
        steps = self._steps_by_n_sub0
        for k in np.flatnonzero(steps):
            stats[f"controller/steps_with_{k}_on_sub0"] = float(steps[k] / steps.sum())
            stats[f"controller/utilization_with_{k}_on_sub0"] = float(
                self._use_by_n_sub0[k] / steps[k]
            )
        return stats


class FairEfficientRewardEnv(_UtilityWrapper):
    """FEN without hierarchy: each agent is trained directly on ``rhat`` every step."""

    def __init__(
        self,
        base: ResourceEnv,
        average: str = "central",
        gossip_graph: str = DEFAULT_GRAPH,
        gossip_rounds: int | None = None,
        eps: float = EPS,
        feature_scale: float = 1.0,
    ) -> None:
        super().__init__(base, average, gossip_graph, gossip_rounds, eps, feature_scale)
        self.possible_agents = list(base.possible_agents)
        self.agents: list[str] = []
        self.metadata = {**self.metadata, "name": f"fen_flat({base.metadata['name']})"}
        self._rhat_sum = 0.0

    def observation_space(self, agent: str) -> spaces.Space:
        self.base._check_agent(agent)
        return self._acting_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.base.action_space(agent)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs = self._reset_base(seed)
        self._rhat_sum = 0.0
        self.agents = list(self.base.agents)
        acting = self._acting(obs, self._augment(obs))
        return dict(zip(self.agents, acting, strict=True)), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        obs, _, terms, truncs, infos = self.base.step(actions)
        u = self._update_utilities()
        rhat = fair_efficient_reward(u, self._ubar, self.c, self.eps)
        self._rhat_sum += float(rhat.mean())
        self.agents = list(self.base.agents)
        rewards = dict(zip(self.base.possible_agents, rhat.tolist(), strict=True))
        acting = self._acting(obs, self._augment(obs))
        return dict(zip(obs, acting, strict=True)), rewards, terms, truncs, infos

    def episode_stats(self) -> dict[str, float]:
        stats = self.base.episode_stats()
        if self.base.num_steps:
            stats["fair_efficient_reward"] = self._rhat_sum / self.base.num_steps
        return stats


SHAPINGS = ("independent", "min", "avg", "min_avg", "inequity_aversion")


class ShapedRewardEnv(ParallelEnv):
    """The paper's baselines: reward shapings of independent learners.

    * ``independent``: ``r_i`` (the environment reward)
    * ``min``: ``min_j u_j`` -- every agent maximises the minimum utility
    * ``avg``: ``mean_j r_j`` -- every agent maximises the average (team) reward
    * ``min_avg``: ``min_j u_j + alpha * mean_j r_j`` (alpha = 0.1)
    * ``inequity_aversion`` (Hughes et al. 2018): ``r_i - alpha/(n-1) sum_j
      max(e_j - e_i, 0) - beta/(n-1) sum_j max(e_i - e_j, 0)`` with temporally
      smoothed rewards ``e_j <- gamma * lambda * e_j + r_j`` (alpha 5, beta 0.05,
      gamma * lambda = 0.99 * 0.975 as in that paper).

    Utilities ``u_j`` are time averages of the environment reward since the episode
    began. Observations and actions are the base env's.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "is_parallelizable": True}

    def __init__(
        self,
        base: ResourceEnv,
        shaping: str,
        alpha: float | None = None,
        beta: float = 0.05,
        smoothing: float = 0.99 * 0.975,
    ) -> None:
        if shaping not in SHAPINGS:
            raise ValueError(f"unknown reward shaping {shaping!r}; allowed: {list(SHAPINGS)}")
        self.base = base
        self.shaping = shaping
        default_alpha = 5.0 if shaping == "inequity_aversion" else 0.1
        self.alpha = default_alpha if alpha is None else alpha
        self.beta = beta
        self.smoothing = smoothing
        self.possible_agents = list(base.possible_agents)
        self.agents: list[str] = []
        self.render_mode = base.render_mode
        self.metadata = {**self.metadata, "name": f"{shaping}({base.metadata['name']})"}
        self._smoothed = np.zeros(base.n_agents)

    @property
    def unwrapped(self) -> ResourceEnv:
        return self.base

    def observation_space(self, agent: str) -> spaces.Space:
        return self.base.observation_space(agent)

    def action_space(self, agent: str) -> spaces.Space:
        return self.base.action_space(agent)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, infos = self.base.reset(seed=seed)
        self._smoothed[:] = 0.0
        self.agents = list(self.base.agents)
        return obs, infos

    def shape(self, env_rewards: np.ndarray) -> np.ndarray:
        """Shaped rewards of one step, given this step's environment rewards."""
        n = env_rewards.size
        if self.shaping == "independent":
            return env_rewards
        u = utilities(self.base.utility_sums, self.base.num_steps)
        if self.shaping == "min":
            return np.full(n, u.min())
        if self.shaping == "avg":
            return np.full(n, env_rewards.mean())
        if self.shaping == "min_avg":
            return np.full(n, u.min() + self.alpha * env_rewards.mean())
        self._smoothed = self.smoothing * self._smoothed + env_rewards
        diff = self._smoothed[None, :] - self._smoothed[:, None]  # e_j - e_i
        scale = 1.0 / max(n - 1, 1)
        envy = np.maximum(diff, 0.0).sum(axis=1)
        guilt = np.maximum(-diff, 0.0).sum(axis=1)
        return env_rewards - self.alpha * scale * envy - self.beta * scale * guilt

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terms, truncs, infos = self.base.step(actions)
        env_rewards = np.array([rewards[a] for a in self.possible_agents])
        shaped = self.shape(env_rewards)
        self.agents = list(self.base.agents)
        return obs, dict(zip(self.possible_agents, shaped.tolist(), strict=True)), terms, \
            truncs, infos

    def episode_stats(self) -> dict[str, float]:
        return self.base.episode_stats()

    def render(self) -> Any:
        return self.base.render()

    def close(self) -> None:
        self.base.close()


def controller_id(agent: str, period: int) -> str:
    """Agent id of ``agent``'s controller decision in period ``period``."""
    return f"{agent}/ctrl/{period}"


def subpolicy_id(agent: str, period: int, z: int) -> str:
    """Agent id of sub-policy ``z`` acting for ``agent`` in period ``period``."""
    return f"{agent}/sub/{period}/{z}"
