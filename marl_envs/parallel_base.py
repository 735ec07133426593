"""What every parallel environment of this package does the same way.

:class:`ParallelEnvBase` holds the agent ids (``agent_i`` or given ones), the render
mode and the seeded generator, and gives one implementation of the checks PettingZoo clients hit
first: unknown agent ids, missing or unknown keys in an action dict, actions
outside ``Discrete(n)`` (each a ``ValueError`` naming the value and what is
allowed), seeding in ``reset`` and the ``render`` dispatch to ``_render_ansi`` /
``_render_rgb``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv


class ParallelEnvBase(ParallelEnv):
    """Agent ids, render mode, seeding and input checks of a parallel env."""

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 10}

    def __init__(self, agents: int | Sequence[str], render_mode: str | None) -> None:
        """``agents``: a number n of agents ``agent_0 .. agent_<n-1>``, or the agent ids."""
        ids = [f"agent_{i}" for i in range(agents)] if isinstance(agents, int) else list(agents)
        if not ids:
            raise ValueError(f"n_agents must be >= 1, got {agents}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; "
                f"allowed: {self.metadata['render_modes']} or None"
            )
        self.n_agents = len(ids)
        self.render_mode = render_mode
        self.possible_agents = ids
        self.agents: list[str] = []
        self._agent_set = frozenset(self.possible_agents)
        self.np_random, _ = seeding.np_random(None)

    def _check_agent(self, agent: str) -> None:
        if agent not in self._agent_set:
            raise ValueError(f"unknown agent id {agent!r}; allowed: {self.possible_agents}")

    def _seed(self, seed: int | None) -> None:
        """Reseed on an explicit seed (or the first reset); otherwise keep the stream."""
        if seed is not None or not hasattr(self, "_seeded"):
            self.np_random, _ = seeding.np_random(seed)
            self._seeded = True

    def _check_action_keys(
        self, actions: Mapping[str, Any], acting: Iterable[str], allowed: str = ""
    ) -> None:
        """Every agent of ``acting`` has an action and no key is unknown.

        ``allowed`` (e.g. ``"integers 0..4"``) is added to the missing-action message.
        """
        unknown = [a for a in actions if a not in self._agent_set]
        if unknown:
            raise ValueError(
                f"unknown agent id(s) {unknown} in actions; allowed: {self.possible_agents}"
            )
        missing = [a for a in acting if a not in actions]
        if missing:
            hint = f" (allowed actions: {allowed})" if allowed else ""
            raise ValueError(
                f"missing action for agent(s) {missing}; every live agent must act{hint}"
            )

    @staticmethod
    def _check_action(agent: str, action: Any, n: int) -> int:
        """``action`` as an int if it is an integer in ``0..n-1``; else a ValueError."""
        a = action.item() if isinstance(action, np.ndarray) and action.shape == () else action
        if not isinstance(a, int | np.integer) or isinstance(a, bool) or not 0 <= a < n:
            raise ValueError(
                f"invalid action {a!r} for agent {agent!r}; allowed: integers 0..{n - 1}"
            )
        return int(a)

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return self._render_ansi()
        return self._render_rgb()

    def _render_ansi(self) -> str:
        raise NotImplementedError

    def _render_rgb(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass
