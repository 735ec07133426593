"""Job Scheduling: four agents share one resource on a small grid (FEN, NeurIPS 2019).

| | |
|---|---|
| Agents | ``n_agents`` (default 4): ``agent_0`` .. ``agent_3`` |
| Actions | ``Discrete(5)``: 0 stay, 1 x-1, 2 x+1, 3 y-1, 4 y+1 |
| Observation | ``Box(13,)`` float32: own ``(x, y)`` in 1..grid_size, ``(res_x - x, res_y - y)``, the 3x3 patch of agent occupancy around the agent (row-major, x outer, y inner; 1 = an agent, the centre is the agent itself; outside the grid reads 0) |
| Reward | 1 to the agent holding the resource cell, else 0 |
| Episode | ``max_cycles`` steps (default 1000), then truncated |
| Arguments | ``n_agents`` integer >= 1, ``grid_size`` integer >= 3, ``max_cycles`` integer >= 1, ``render_mode`` None / ``"human"`` / ``"ansi"`` / ``"rgb_array"`` (checked: ``ValueError`` / ``TypeError`` naming the argument) |
| c (max fair utility) | ``1 / n_agents`` (0.25) |

Dynamics follow the public FEN code (``job.py``): the grid is ``grid_size x
grid_size`` (default 5) with cells 1..grid_size; the resource cell is uniform in
the inner square (2..grid_size-1 on both axes) and fixed for the episode; agents
start at uniform cells (overlap allowed). Agents move in index order: a move off
the grid bounces back (no move) and a move into a cell another agent occupies --
or is leaving this very step -- is blocked.

Only one agent can hold the resource: if several stand on its cell (possible only
when they started there together), the lowest-index one holds it and is rewarded.

``infos[agent]``: ``resource_holder`` (agent id or None), ``on_resource`` (bool),
``position`` (x, y).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from marl_envs.parallel_base import RENDER_MODES
from marl_envs.resource_env import (
    AGENT_COLOURS,
    ResourceEnv,
    constructors,
    move_blocking,
    paint_cells,
)
from marl_envs.validation import check_int

_PATCH = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)], dtype=np.int64)


class JobSchedulingEnv(ResourceEnv):
    """Parallel Job Scheduling environment; see the module docstring."""

    metadata = {
        "name": "job_scheduling_v0",
        "render_modes": list(RENDER_MODES),
        "render_fps": 10,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        n_agents: int = 4,
        grid_size: int = 5,
        max_cycles: int = 1000,
        render_mode: str | None = None,
    ) -> None:
        n_agents = check_int("n_agents", n_agents, low=1)
        grid_size = check_int("grid_size", grid_size, low=3,
                              note="the resource sits in the inner square")
        g = float(grid_size)
        low = np.array([1, 1, 1 - g, 1 - g] + [0] * 9, dtype=np.float32)
        high = np.array([g, g, g - 1, g - 1] + [1] * 9, dtype=np.float32)
        super().__init__(
            n_agents, spaces.Box(low, high, dtype=np.float32), max_cycles, render_mode
        )
        self.grid_size = grid_size
        self.max_fair_utility = 1.0 / n_agents
        # padded occupancy grid: cells 1..grid_size, border rows/cols 0 and grid_size+1
        self._occupied = np.zeros((grid_size + 2, grid_size + 2), dtype=bool)
        self._positions = np.zeros((n_agents, 2), dtype=np.int64)
        self._resource = np.zeros(2, dtype=np.int64)
        self._holder = -1
        self._patch_offsets = _PATCH[:, 0] * (grid_size + 2) + _PATCH[:, 1]

    def _reset_state(self) -> None:
        g = self.grid_size
        rng = self.np_random
        self._resource = rng.integers(2, g, size=2)  # inner square 2..g-1
        self._positions = rng.integers(1, g + 1, size=(self.n_agents, 2))
        self._occupied[:] = False
        self._occupied[self._positions[:, 0], self._positions[:, 1]] = True
        self._holder = self._find_holder()

    def _find_holder(self) -> int:
        rx, ry = self._resource.tolist()
        if not self._occupied[rx, ry]:
            return -1
        for i, (x, y) in enumerate(self._positions.tolist()):
            if x == rx and y == ry:
                return i
        return -1

    def _step_state(self, actions: np.ndarray) -> np.ndarray:
        move_blocking(self._positions, actions, self._occupied, 1, self.grid_size)
        self._holder = self._find_holder()
        rewards = np.zeros(self.n_agents)
        if self._holder >= 0:
            rewards[self._holder] = 1.0
        return rewards

    def _observations(self) -> np.ndarray:
        pos = self._positions
        obs = np.empty((self.n_agents, 13), dtype=np.float32)
        obs[:, 0:2] = pos
        obs[:, 2:4] = self._resource - pos
        # flat indices into the padded occupancy grid (cheaper than 2-D fancy indexing)
        width = self.grid_size + 2
        flat = pos[:, 0] * width + pos[:, 1]
        obs[:, 4:] = self._occupied.ravel()[flat[:, None] + self._patch_offsets]
        return obs

    def _infos(self) -> list[dict[str, Any]]:
        h = self._holder
        holder = self.possible_agents[h] if h >= 0 else None
        return [
            {"resource_holder": holder, "on_resource": i == h, "position": (x, y)}
            for i, (x, y) in enumerate(self._positions.tolist())
        ]

    @property
    def resource_position(self) -> tuple[int, int]:
        return int(self._resource[0]), int(self._resource[1])

    @property
    def agent_positions(self) -> np.ndarray:
        """Copy of the agents' grid positions, shape ``(n_agents, 2)``."""
        return self._positions.copy()

    def _render_ansi(self) -> str:
        g = self.grid_size
        rows = [["." for _ in range(g)] for _ in range(g)]
        rx, ry = self._resource
        rows[rx - 1][ry - 1] = "R"
        for i, (x, y) in enumerate(self._positions):
            label = str(i % 10)
            rows[x - 1][y - 1] = "*" if (x, y) == (rx, ry) and i == self._holder else label
        holder = self.possible_agents[self._holder] if self._holder >= 0 else "nobody"
        lines = [" ".join(r) for r in rows]
        lines.append(f"step {self.num_steps}/{self.max_cycles}, resource held by {holder}")
        return "\n".join(lines) + "\n"

    def _render_rgb(self) -> np.ndarray:
        g = self.grid_size
        cells = np.full((g, g, 3), 235, dtype=np.uint8)
        rx, ry = self._resource
        cells[rx - 1, ry - 1] = (250, 210, 60)
        for i, (x, y) in enumerate(self._positions):
            cells[x - 1, y - 1] = AGENT_COLOURS[i % len(AGENT_COLOURS)]
        return paint_cells(cells, 24)


parallel_env, env = constructors(JobSchedulingEnv)
