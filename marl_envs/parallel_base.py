"""What every parallel environment of this package does the same way.

:class:`ParallelEnvBase` holds the agent ids (``agent_i`` or given ones), the render
mode and the seeded generator, and gives one implementation of the checks PettingZoo clients hit
first: unknown agent ids, missing or unknown keys in an action dict, actions
outside ``Discrete(n)`` (each a ``ValueError`` naming the value and what is
allowed; an action of the wrong type a ``TypeError``), seeding in ``reset`` (a seed
is None or an integer >= 0, anything else a ``ValueError``/``TypeError`` saying so)
and the ``render`` dispatch to ``_render_ansi`` / ``_render_rgb``.

Render modes (:data:`RENDER_MODES`, every env's ``metadata["render_modes"]``):
``"ansi"`` returns the text frame, ``"rgb_array"`` an ``(H, W, 3)`` uint8 image and
``"human"`` prints the text frame to stdout and returns None (as PettingZoo's text
environments do), so PettingZoo's ``render_test`` runs on every env as it is.

Argument checks use :mod:`marl_envs.validation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from marl_envs.validation import (
    ArgumentTypeError,
    check_actions,
    check_choice,
    check_int,
    check_seed,
    is_int,
    show,
)

#: the render modes every environment supports (``metadata["render_modes"]``)
RENDER_MODES: tuple[str, ...] = ("human", "ansi", "rgb_array")


class ParallelEnvBase(ParallelEnv):
    """Agent ids, render mode, seeding and input checks of a parallel env."""

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": 10}

    def __init__(self, agents: int | Sequence[str], render_mode: str | None) -> None:
        """``agents``: a number n of agents ``agent_0 .. agent_<n-1>``, or the agent ids."""
        if isinstance(agents, str) or not isinstance(agents, Sequence):
            agents = check_int("n_agents", agents, low=1)
            ids = [f"agent_{i}" for i in range(agents)]
        else:
            ids = list(agents)
            if not ids:
                raise ValueError("the env needs at least one agent id, got none")
        check_choice("render_mode", render_mode, self.metadata["render_modes"], none_ok=True)
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
        """Reseed on an explicit seed (or the first reset); otherwise keep the stream.

        ``seed`` must be None or an integer >= 0 (Python or numpy), else a ``ValueError``
        (a negative integer) or ``TypeError`` (anything else) says so."""
        seed = check_seed(seed)
        if seed is not None or not hasattr(self, "_seeded"):
            self.np_random, _ = seeding.np_random(seed)
            self._seeded = True

    def _check_action_keys(
        self, actions: Mapping[str, Any], acting: Iterable[str], allowed: str = ""
    ) -> None:
        """Every agent of ``acting`` has an action and no key is unknown.

        ``allowed`` (e.g. ``"integers 0..4"``) is added to the missing-action message.
        """
        check_actions(actions)
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
        """``action`` as an int if it is an integer in ``0..n-1``; else a ValueError
        (an integer out of range) or a TypeError (not an integer; also a ValueError)."""
        a = action.item() if isinstance(action, np.ndarray) and action.shape == () else action
        if not is_int(a):
            raise ArgumentTypeError(
                f"invalid action {show(a)} of type {type(a).__name__} for agent {agent!r}; "
                f"allowed: integers 0..{n - 1}"
            )
        if not 0 <= a < n:
            raise ValueError(
                f"invalid action {show(a)} for agent {agent!r}; allowed: integers 0..{n - 1}"
            )
        return int(a)

    def render(self) -> str | np.ndarray | None:
        """The frame of ``render_mode``: text (``"ansi"``), an image (``"rgb_array"``),
        or None after printing the text frame (``"human"``); None without a mode."""
        if self.render_mode is None:
            return None
        if self.render_mode == "human":
            print(self._render_ansi(), end="", flush=True)
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
