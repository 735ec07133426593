"""PettingZoo parallel protocol shared by the multi-agent bandit environments.

One environment step is one bandit round: every agent picks an action, the
model draws every factor's reward, and each agent receives the **team reward**
``sum_e r_e`` (the problem is fully cooperative). Observations carry no state
(the bandit has none): each agent observes ``[t / horizon]``, the fraction of
the horizon elapsed. ``infos[agent]`` holds the round's ``factor_rewards``
(array over factors), ``joint_action``, ``team_reward``, ``expected_reward``
(``E F(a)``) and ``regret`` (``E F(a*) - E F(a)``, exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from marl_envs.bandits.graph import CoordinationGraph
from marl_envs.bandits.models import BanditModel
from marl_envs.parallel_base import RENDER_MODES, ParallelEnvBase
from marl_envs.validation import check_int

_PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]],
    dtype=np.uint8,
)


class BanditEnv(ParallelEnvBase):
    """A :class:`BanditModel` as a PettingZoo parallel env, one round per step."""

    metadata: dict[str, Any] = {
        "name": "bandit_v0",
        "render_modes": list(RENDER_MODES),
        "render_fps": 10,
        "is_parallelizable": True,
    }

    def __init__(self, model: BanditModel, horizon: int, render_mode: str | None) -> None:
        horizon = check_int("horizon", horizon, low=1)
        g = model.graph
        super().__init__(g.n_agents, render_mode)
        self.model = model
        self.horizon = int(horizon)
        self._obs_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self._action_spaces = {
            a: spaces.Discrete(n) for a, n in zip(self.possible_agents, g.action_sizes, strict=True)
        }
        self.observation_spaces = {a: self._obs_space for a in self.possible_agents}
        self.action_spaces = self._action_spaces
        self.num_steps = 0
        self.cumulative_regret = 0.0
        self._last: dict[str, Any] | None = None

    # ------------------------------------------------------------ problem
    @property
    def graph(self) -> CoordinationGraph:
        """The coordination graph: ``graph.factors`` are tuples of agent indices."""
        return self.model.graph

    @property
    def factors(self) -> tuple[tuple[int, ...], ...]:
        return self.model.graph.factors

    @property
    def optimal_value(self) -> float:
        return self.model.optimal_value

    def expected_reward(self, joint_action: Any) -> float:
        """``E F(a)`` of a joint action (array of ints or dict agent -> action)."""
        return self.model.expected_reward(self._joint(joint_action))

    def _joint(self, joint_action: Any) -> np.ndarray:
        if isinstance(joint_action, Mapping):
            return self._validate_actions(joint_action)
        return self.graph.check_joint_action(joint_action)

    # ------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Box:
        self._check_agent(agent)
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        self._check_agent(agent)
        return self._action_spaces[agent]

    # ----------------------------------------------------------- protocol
    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self._seed(seed)
        self.agents = list(self.possible_agents)
        self.num_steps = 0
        self.cumulative_regret = 0.0
        self._last = None
        obs = self._obs()
        return obs, {a: {} for a in self.agents}

    def _obs(self) -> dict[str, np.ndarray]:
        o = np.array([self.num_steps / self.horizon], dtype=np.float32)
        return {a: o.copy() for a in self.agents}

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        joint = self._validate_actions(actions)
        rewards = self.model.sample(joint, self.np_random)
        team = float(rewards.sum())
        expected = self.model.expected_reward(joint)
        regret = self.model.optimal_value - expected
        self.cumulative_regret += regret
        self.num_steps += 1
        agents = self.agents
        truncated = self.num_steps >= self.horizon
        self._last = {
            "joint_action": joint,
            "factor_rewards": rewards,
            "team_reward": team,
            "expected_reward": expected,
            "regret": regret,
        }
        obs = self._obs()
        infos = {
            a: {
                "factor_rewards": rewards.copy(),
                "joint_action": joint.copy(),
                "team_reward": team,
                "expected_reward": expected,
                "regret": regret,
            }
            for a in agents
        }
        out = (
            obs,
            dict.fromkeys(agents, team),
            dict.fromkeys(agents, False),
            dict.fromkeys(agents, truncated),
            infos,
        )
        if truncated:
            self.agents = []
        return out

    def _validate_actions(self, actions: Mapping[str, Any]) -> np.ndarray:
        self._check_action_keys(actions, self.possible_agents)
        sizes = self.graph.action_sizes
        return np.array(
            [self._check_action(agent, actions[agent], n)
             for agent, n in zip(self.possible_agents, sizes, strict=True)],
            dtype=np.int64,
        )

    # ------------------------------------------------------------- render
    def _render_ansi(self) -> str:
        name = self.metadata["name"]
        if self._last is None:
            return f"{name}: round 0/{self.horizon}, no action yet\n"
        last = self._last
        acts = " ".join(str(int(x)) for x in last["joint_action"])
        return (
            f"{name}: round {self.num_steps}/{self.horizon}\n"
            f"joint action  {acts}\n"
            f"team reward {last['team_reward']:.4g} (expected {last['expected_reward']:.4g}, "
            f"optimum {self.optimal_value:.4g}), regret {last['regret']:.4g}, "
            f"cumulative {self.cumulative_regret:.4g}\n"
        )

    def _render_rgb(self) -> np.ndarray:
        """One cell per agent coloured by its action; a bar per factor below (its reward)."""
        px = 16
        n = self.n_agents
        img = np.full((3 * px, max(n, self.graph.n_factors) * px, 3), 235, dtype=np.uint8)
        if self._last is not None:
            for i, a in enumerate(self._last["joint_action"]):
                img[:px, i * px : (i + 1) * px] = _PALETTE[int(a) % len(_PALETTE)]
            ranges = np.maximum(self.model.reward_ranges, 1e-12)
            level = np.clip(self._last["factor_rewards"] / ranges, 0.0, 1.0)
            for e, h in enumerate(level):
                top = 3 * px - int(round(h * 2 * px))
                img[top:, e * px : (e + 1) * px - 1] = (90, 90, 90)
        img[px, :, :] = 40
        return img
