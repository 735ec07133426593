"""Shared machinery of the resource environments: the PettingZoo parallel protocol.

Every environment of this package keeps its state in numpy arrays and implements
four hooks; this base class turns them into PettingZoo's dict-based API and does
the bookkeeping every env needs exactly once:

* ``_reset_state()``            draw the initial state from ``self.np_random``
* ``_step_state(actions)``      advance one step; ``actions`` is an int array of
                                shape ``(n_agents,)``; return the reward array
* ``_observations()``           float32 array of shape ``(n_agents, obs_dim)``
* ``_infos()``                  list of per-agent info dicts
* ``_action_masks()``           optional: int8 array ``(n_agents, n_actions)``, 1 = the
                                action is useful now; an env that implements it accepts
                                ``action_mask=True`` and then observes PettingZoo's
                                ``{"observation": ..., "action_mask": ...}`` dicts
* ``_utility_gains(rewards)``   optional: each agent's utility earned this step
                                (default: its reward; override when the fairness
                                utility is not the reward, e.g. a resource share)
* ``_render_ansi()`` / ``_render_rgb()``

Actions are validated (every live agent present, no unknown agent, each action
an integer in the action space) and a ``ValueError`` names the offending agent
and the allowed values. Constructor arguments are checked with
:mod:`marl_envs.validation` (each env checks its own at the top of ``__init__``;
this base checks ``n_agents``, ``max_cycles``, ``action_mask`` and ``render_mode``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils.conversions import parallel_to_aec

from marl_envs.metrics import FairnessReport, fairness_report, utilities
from marl_envs.parallel_base import ParallelEnvBase
from marl_envs.validation import check_actions, check_bool, check_int


class ResourceEnv(ParallelEnvBase):
    """Base class of the resource-sharing environments (parallel API)."""

    #: the largest average per-step reward an agent can get when resources are shared (c)
    max_fair_utility: float = 1.0
    #: number of discrete actions (stay, x-1, x+1, y-1, y+1)
    n_actions: int = 5

    def __init__(
        self,
        n_agents: int,
        observation_space: spaces.Box,
        max_cycles: int,
        render_mode: str | None,
        action_mask: bool = False,
    ) -> None:
        super().__init__(n_agents, render_mode)
        max_cycles = check_int("max_cycles", max_cycles, low=1)
        action_mask = check_bool("action_mask", action_mask)
        if action_mask and type(self)._action_masks is ResourceEnv._action_masks:
            raise ValueError(f"{type(self).__name__} has no action mask; action_mask=True "
                             "is not supported")
        self.max_cycles = max_cycles
        self.use_action_mask = action_mask
        if action_mask:
            observation_space = spaces.Dict({
                "observation": observation_space,
                "action_mask": spaces.Box(0, 1, shape=(self.n_actions,), dtype=np.int8),
            })
        self._observation_space = observation_space
        self._action_space = spaces.Discrete(self.n_actions)
        self._observation_spaces = {a: observation_space for a in self.possible_agents}
        self._action_spaces = {a: self._action_space for a in self.possible_agents}
        self.observation_spaces = self._observation_spaces
        self.action_spaces = self._action_spaces
        self.num_steps = 0
        self.reward_sums = np.zeros(n_agents)
        #: per-agent sums of the fairness utility (equal to ``reward_sums`` unless the
        #: env overrides :meth:`_utility_gains`); utilities are these over ``num_steps``
        self.utility_sums = np.zeros(n_agents)

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Space:
        self._check_agent(agent)
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Discrete:
        self._check_agent(agent)
        return self._action_space

    # --------------------------------------------------------------- protocol
    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self._seed(seed)
        self.agents = list(self.possible_agents)
        self.num_steps = 0
        self.reward_sums[:] = 0.0
        self.utility_sums[:] = 0.0
        self._reset_state()
        return dict(zip(self.agents, self._observed(), strict=True)), dict(
            zip(self.agents, self._infos(), strict=True)
        )

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        action_array = self._validate_actions(actions)
        rewards = self._step_state(action_array)
        self.reward_sums += rewards
        self.utility_sums += self._utility_gains(rewards)
        self.num_steps += 1
        terminated = self._terminated()
        truncated = not terminated and self.num_steps >= self.max_cycles
        agents = self.agents
        obs = dict(zip(agents, self._observed(), strict=True))
        reward_dict = dict(zip(agents, rewards.tolist(), strict=True))
        terms = dict.fromkeys(agents, terminated)
        truncs = dict.fromkeys(agents, truncated)
        infos = dict(zip(agents, self._infos(), strict=True))
        if terminated or truncated:
            self.agents = []
        return obs, reward_dict, terms, truncs, infos

    def _observed(self) -> Any:
        """Per-agent observations: the ``_observations()`` rows, with their action masks
        when ``action_mask=True``."""
        obs = self._observations()
        if not self.use_action_mask:
            return obs
        return [{"observation": o, "action_mask": m}
                for o, m in zip(obs, self._action_masks(), strict=True)]

    def _validate_actions(self, actions: Mapping[str, Any]) -> np.ndarray:
        if check_actions(actions).keys() != self._agent_set:
            self._check_action_keys(
                actions, self.possible_agents, f"integers 0..{self.n_actions - 1}"
            )
        values = [actions[agent] for agent in self.possible_agents]
        # fast path: plain Python / numpy integer scalars, all in range
        if (
            _INT_TYPES.issuperset(map(type, values))
            and min(values) >= 0
            and max(values) < self.n_actions
        ):
            return np.array(values, dtype=np.int64)
        return np.array(
            [self._check_action(agent, a, self.n_actions)
             for agent, a in zip(self.possible_agents, values, strict=True)],
            dtype=np.int64,
        )

    def fairness_report(self) -> FairnessReport:
        """Utilities, CV, utilization, min/max utility of the episode so far."""
        return fairness_report(
            self.possible_agents,
            utilities(self.utility_sums, self.num_steps),
            self.max_fair_utility,
            self.num_steps,
        )

    def episode_stats(self) -> dict[str, float]:
        """Flat scalar figures of the episode so far, for loggers (fairness + env extras)."""
        stats = self.fairness_report().scalars()
        stats.update(self._extra_stats())
        return stats

    def _utility_gains(self, rewards: np.ndarray) -> np.ndarray:
        """Each agent's fairness utility earned this step (default: its reward)."""
        return rewards

    def _extra_stats(self) -> dict[str, float]:
        """Environment-specific scalars added to :meth:`episode_stats`."""
        return {}

    def _terminated(self) -> bool:
        """Whether the episode ended on its own (not by the step limit)."""
        return False

    # ------------------------------------------------------- hooks (abstract)
    def _reset_state(self) -> None:
        raise NotImplementedError

    def _step_state(self, actions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _observations(self) -> np.ndarray:
        raise NotImplementedError

    def _infos(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def current_infos(self) -> dict[str, dict[str, Any]]:
        """Every agent's info of the current state (as the last ``reset``/``step`` returned
        it): for a scheduler acting under a wrapper that does not pass the infos on."""
        return dict(zip(self.possible_agents, self._infos(), strict=True))

    def _action_masks(self) -> np.ndarray:
        raise NotImplementedError


#: unit moves of the five actions: stay, x-1, x+1, y-1, y+1
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)

#: distinct colours for agents in rgb renders
AGENT_COLOURS = np.array(
    [
        [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
        [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
    ],
    dtype=np.uint8,
)
_MOVES_LIST: list[list[int]] = MOVES.tolist()

#: the integer scalar types the action fast path accepts without per-agent checks
_INT_TYPES = frozenset({int, *(np.dtype(c).type for c in np.typecodes["AllInteger"])})


def move_blocking(
    positions: np.ndarray, actions: np.ndarray, occupied: np.ndarray, low: int, high: int
) -> None:
    """Move grid agents in index order, in place (the public FEN code's rule).

    A move that leaves ``[low, high]`` on either axis bounces back (no move); a move
    into a cell marked in ``occupied`` is blocked. Cells an agent moves into are
    marked at once and cells it leaves are freed only after everyone has moved, so
    agent k cannot step into a cell agent j < k is leaving this step.

    ``occupied`` must mark exactly the agents' cells on entry (as every env keeps it)
    and marks exactly their final cells on return.
    The loop runs on Python scalars: numpy indexing and array rebuilds would cost
    more than the moves themselves.
    """
    pos = positions.tolist()
    vacated = []
    for i, a in enumerate(actions.tolist()):
        if a == 0:
            continue
        dx, dy = _MOVES_LIST[a]
        x0, y0 = pos[i]
        x = x0 + dx
        y = y0 + dy
        if x < low or x > high or y < low or y > high or occupied[x, y]:
            continue
        occupied[x, y] = True
        pos[i] = [x, y]
        positions[i, 0] = x
        positions[i, 1] = y
        vacated.append((x0, y0))
    if vacated:
        for x0, y0 in vacated:
            occupied[x0, y0] = False
        for x, y in pos:  # agents that started on a shared cell keep it marked
            occupied[x, y] = True


def paint_cells(cells: np.ndarray, cell_px: int) -> np.ndarray:
    """Scale an ``(H, W, 3)`` uint8 cell image up to ``(H*px, W*px, 3)`` with grid lines."""
    img = np.repeat(np.repeat(cells, cell_px, axis=0), cell_px, axis=1)
    img[::cell_px, :, :] = 40
    img[:, ::cell_px, :] = 40
    return img


def constructors(env_class: type[ResourceEnv]) -> tuple[Callable, Callable]:
    """PettingZoo's module convention: ``(parallel_env, env)`` factories for a class.

    Both reject unknown keyword arguments with a message listing the allowed ones.
    """
    allowed = [p for p in inspect.signature(env_class.__init__).parameters if p != "self"]
    name = env_class.metadata["name"]

    def parallel_env(**kwargs: Any) -> ResourceEnv:
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(f"{name}: unknown keyword argument(s) {unknown}; allowed: {allowed}")
        return env_class(**kwargs)

    def aec_env(**kwargs: Any) -> AECEnv:
        return parallel_to_aec(parallel_env(**kwargs))

    parallel_env.__doc__ = f"Create the parallel {name} environment ({env_class.__name__})."
    aec_env.__doc__ = f"Create the AEC form of {name} (PettingZoo's parallel_to_aec)."
    return parallel_env, aec_env
