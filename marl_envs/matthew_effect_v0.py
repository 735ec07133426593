"""Matthew Effect: Pac-men race for ghosts, and the strong get stronger (FEN, NeurIPS 2019).

| | |
|---|---|
| Agents | ``n_agents`` Pac-men (default 10): ``agent_0`` .. ``agent_9`` |
| Actions | ``Discrete(5)``: 0 stay, 1 x-speed, 2 x+speed, 3 y-speed, 4 y+speed |
| Observation | ``Box(6,)`` float32: ``(x, y, size, speed, nearest_ghost_x, nearest_ghost_y)`` |
| Reward | 1 on a step the Pac-man eats at least one ghost, else 0 |
| Episode | ``max_cycles`` steps (default 1000), then truncated |
| Arguments | ``n_agents``, ``n_ghosts``, ``max_cycles`` integers >= 1; ``min_size`` in (0, 1], ``max_size`` in [min_size, 1], ``size_spread``, ``base_speed``, ``growth`` in [0, 1] (the world is the unit square); ``max_fair_utility`` > 0; all finite (checked: ``ValueError`` / ``TypeError`` naming the argument) |
| c (max fair utility) | 0.15 (the public code's value) |

Dynamics follow the public FEN code (``matthew.py``). The world is ``[0, 1]^2``.
Each Pac-man starts at a uniform position with size ``min_size + U(0, size_spread)``
(0.01 + U(0, 0.04)) and speed ``base_speed + size`` (0.01 + size); moves are
clipped to the square. After all moves, each ghost in turn is eaten by the first
Pac-man (index order) whose squared distance to it is below its size squared:
the eater is rewarded, grows by ``growth`` (0.005) up to ``max_size`` (0.15), its
speed becomes ``base_speed + size``, and the ghost respawns uniformly.

``infos[agent]``: ``ghosts_eaten`` (this step), ``total_ghosts_eaten`` (episode),
``size``, ``speed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from marl_envs.parallel_base import RENDER_MODES
from marl_envs.resource_env import AGENT_COLOURS, MOVES, ResourceEnv, constructors
from marl_envs.validation import check_float, check_int


class MatthewEffectEnv(ResourceEnv):
    """Parallel Matthew-effect Pac-men environment; see the module docstring."""

    metadata = {
        "name": "matthew_effect_v0",
        "render_modes": list(RENDER_MODES),
        "render_fps": 10,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        n_agents: int = 10,
        n_ghosts: int = 3,
        min_size: float = 0.01,
        size_spread: float = 0.04,
        base_speed: float = 0.01,
        growth: float = 0.005,
        max_size: float = 0.15,
        max_cycles: int = 1000,
        max_fair_utility: float = 0.15,
        render_mode: str | None = None,
    ) -> None:
        n_agents = check_int("n_agents", n_agents, low=1)
        n_ghosts = check_int("n_ghosts", n_ghosts, low=1)
        # lengths and speeds are fractions of the unit square the world is
        min_size = check_float("min_size", min_size, low=0.0, high=1.0, low_open=True)
        max_size = check_float("max_size", max_size, low=min_size, high=1.0,
                               note=f"at least min_size={min_size:g}")
        size_spread = check_float("size_spread", size_spread, low=0.0, high=1.0)
        base_speed = check_float("base_speed", base_speed, low=0.0, high=1.0)
        growth = check_float("growth", growth, low=0.0, high=1.0)
        max_fair_utility = check_float("max_fair_utility", max_fair_utility, low=0.0,
                                       low_open=True)
        top_speed = base_speed + max_size
        low = np.zeros(6, dtype=np.float32)
        high = np.array([1, 1, max_size, top_speed, 1, 1], dtype=np.float32)
        super().__init__(
            n_agents, spaces.Box(low, high, dtype=np.float32), max_cycles, render_mode
        )
        self.n_ghosts = n_ghosts
        self.min_size = min_size
        self.size_spread = size_spread
        self.base_speed = base_speed
        self.growth = growth
        self.max_size = max_size
        self.max_fair_utility = max_fair_utility
        self._positions = np.zeros((n_agents, 2))
        self._size = np.zeros(n_agents)
        self._speed = np.zeros(n_agents)
        self._ghosts = np.zeros((n_ghosts, 2))
        self._eaten = np.zeros(n_agents, dtype=np.int64)
        self._total_eaten = np.zeros(n_agents, dtype=np.int64)
        self._d2: np.ndarray | None = None  # ghost-agent squared distances, when current

    def _reset_state(self) -> None:
        rng = self.np_random
        self._ghosts = rng.random((self.n_ghosts, 2))
        self._positions = rng.random((self.n_agents, 2))
        self._size = np.minimum(self.min_size + rng.random(self.n_agents) * self.size_spread,
                                self.max_size)
        self._speed = self.base_speed + self._size
        self._eaten[:] = 0
        self._total_eaten[:] = 0
        self._d2 = None

    def _step_state(self, actions: np.ndarray) -> np.ndarray:
        pos = self._positions
        pos += MOVES[actions] * self._speed[:, None]
        np.clip(pos, 0.0, 1.0, out=pos)
        self._eaten[:] = 0
        diff = pos[None, :, :] - self._ghosts[:, None, :]
        d2 = (diff * diff).sum(axis=2)  # (n_ghosts, n_agents)
        if (d2 < self._size * self._size).any():
            self._eat(pos)
            self._d2 = None
        else:
            self._d2 = d2  # ghosts unchanged: the observation can reuse the distances
        return (self._eaten > 0).astype(np.float64)

    def _eat(self, pos: np.ndarray) -> None:
        """Each ghost in turn goes to the first Pac-man (index order) that reaches it."""
        for k in range(self.n_ghosts):
            diff = pos - self._ghosts[k]
            hits = np.flatnonzero((diff * diff).sum(axis=1) < self._size * self._size)
            if hits.size:
                j = hits[0]
                self._eaten[j] += 1
                self._ghosts[k] = self.np_random.random(2)
                self._size[j] = min(self._size[j] + self.growth, self.max_size)
                self._speed[j] = self.base_speed + self._size[j]
        self._total_eaten += self._eaten

    def _observations(self) -> np.ndarray:
        pos = self._positions
        d2 = self._d2
        if d2 is None:
            diff = pos[None, :, :] - self._ghosts[:, None, :]
            d2 = (diff * diff).sum(axis=2)
        nearest = self._ghosts[d2.argmin(axis=0)]
        obs = np.empty((self.n_agents, 6), dtype=np.float32)
        obs[:, 0:2] = pos
        obs[:, 2] = self._size
        obs[:, 3] = self._speed
        obs[:, 4:6] = nearest
        return obs

    def _extra_stats(self) -> dict[str, float]:
        return {
            "ghosts_eaten": float(self._total_eaten.sum()),
            "max_size": float(self._size.max()),
            "min_size": float(self._size.min()),
        }

    def _infos(self) -> list[dict[str, Any]]:
        return [
            {"ghosts_eaten": e, "total_ghosts_eaten": t, "size": s, "speed": v}
            for e, t, s, v in zip(
                self._eaten.tolist(),
                self._total_eaten.tolist(),
                self._size.tolist(),
                self._speed.tolist(),
                strict=True,
            )
        ]

    def _render_ansi(self, cells: int = 20) -> str:
        grid = [["." for _ in range(cells)] for _ in range(cells)]
        for gx, gy in self._ghosts:
            grid[min(int(gx * cells), cells - 1)][min(int(gy * cells), cells - 1)] = "G"
        for i, (x, y) in enumerate(self._positions):
            grid[min(int(x * cells), cells - 1)][min(int(y * cells), cells - 1)] = str(i % 10)
        sizes = " ".join(f"{s:.3f}" for s in self._size)
        lines = ["".join(r) for r in grid]
        lines.append(f"step {self.num_steps}/{self.max_cycles}, sizes {sizes}")
        return "\n".join(lines) + "\n"

    def _render_rgb(self, px: int = 256) -> np.ndarray:
        img = np.full((px, px, 3), 245, dtype=np.uint8)
        xs = (np.arange(px) + 0.5) / px
        gx, gy = np.meshgrid(xs, xs, indexing="ij")
        for x, y in self._ghosts:
            img[(gx - x) ** 2 + (gy - y) ** 2 < 0.012**2] = (20, 20, 20)
        for i, ((x, y), s) in enumerate(zip(self._positions, self._size, strict=True)):
            img[(gx - x) ** 2 + (gy - y) ** 2 < s**2] = AGENT_COLOURS[i % len(AGENT_COLOURS)]
        return img


parallel_env, env = constructors(MatthewEffectEnv)
