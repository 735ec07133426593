"""Fairness and efficiency metrics of the FEN paper, in plain numpy.

Definitions (Jiang & Lu, NeurIPS 2019):

* utility of agent i after t steps: ``u_i = (1/t) * sum_{j<=t} r_i(j)``
* average utility: ``ubar = mean_i u_i``
* coefficient of variation: ``CV = sqrt(1/(n-1) * sum_i (u_i - ubar)^2) / ubar``
  (0 when every utility is 0; lower is fairer)
* resource utilization: ``ubar / c`` clipped to [0, 1], where ``c`` is the largest
  average per-step reward an agent can get when the resources are shared
  (each environment exposes it as ``max_fair_utility``).

:class:`FairnessTracker` accumulates rewards over an episode and works with any
PettingZoo parallel loop::

    tracker = FairnessTracker(env.possible_agents, env.max_fair_utility)
    obs, infos = env.reset(seed=0)
    while env.agents:
        obs, rewards, terms, truncs, infos = env.step(actions)
        tracker.update(rewards)
    print(tracker.report())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def utilities(reward_sums: np.ndarray, steps: int) -> np.ndarray:
    """Time-averaged reward of each agent after ``steps`` steps (zeros before the first)."""
    reward_sums = np.asarray(reward_sums, dtype=np.float64)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if steps == 0:
        return np.zeros_like(reward_sums)
    return reward_sums / steps


def coefficient_of_variation(utility: np.ndarray) -> float:
    """Sample coefficient of variation of the utilities (ddof=1).

    Returns 0.0 when every utility is 0 (or when there is a single agent), never NaN.
    If the mean is 0 while some utilities are not (only possible with negative
    rewards), the CV is unbounded and ``inf`` is returned.
    """
    u = np.asarray(utility, dtype=np.float64)
    if u.size < 2 or not np.any(u):
        return 0.0
    mean = u.mean()
    if mean == 0.0:
        return float("inf")
    return float(np.std(u, ddof=1) / abs(mean))


def utilization(utility: np.ndarray, max_fair_utility: float) -> float:
    """Resource utilization ``mean(u) / c`` clipped to [0, 1]."""
    if max_fair_utility <= 0:
        raise ValueError(f"max_fair_utility must be > 0, got {max_fair_utility}")
    return float(np.clip(np.mean(utility) / max_fair_utility, 0.0, 1.0))


@dataclass(frozen=True)
class FairnessReport:
    """The fairness/efficiency figures of one episode (or one part of it)."""

    per_agent_utility: dict[str, float]
    average_utility: float
    cv: float
    utilization: float
    min_utility: float
    max_utility: float
    steps: int

    def as_dict(self) -> dict[str, object]:
        return {
            "per_agent_utility": dict(self.per_agent_utility),
            "average_utility": self.average_utility,
            "cv": self.cv,
            "utilization": self.utilization,
            "min_utility": self.min_utility,
            "max_utility": self.max_utility,
            "steps": self.steps,
        }

    def scalars(self) -> dict[str, float]:
        """Flat scalars for loggers: utilization, cv, average/min/max utility and
        ``utility/<agent>`` for every agent."""
        stats = {
            "utilization": self.utilization,
            "cv": self.cv,
            "average_utility": self.average_utility,
            "min_utility": self.min_utility,
            "max_utility": self.max_utility,
        }
        stats.update({f"utility/{a}": u for a, u in self.per_agent_utility.items()})
        return stats


def fairness_report(
    agents: Sequence[str], utility: np.ndarray, max_fair_utility: float, steps: int
) -> FairnessReport:
    """Build a :class:`FairnessReport` from per-agent utilities."""
    u = np.asarray(utility, dtype=np.float64)
    if u.shape != (len(agents),):
        raise ValueError(f"expected {len(agents)} utilities, got shape {u.shape}")
    return FairnessReport(
        per_agent_utility={a: float(x) for a, x in zip(agents, u, strict=True)},
        average_utility=float(u.mean()),
        cv=coefficient_of_variation(u),
        utilization=utilization(u, max_fair_utility),
        min_utility=float(u.min()),
        max_utility=float(u.max()),
        steps=steps,
    )


class FairnessTracker:
    """Accumulates per-agent rewards over an episode and reports fairness metrics."""

    def __init__(self, agents: Sequence[str], max_fair_utility: float) -> None:
        if not agents:
            raise ValueError("FairnessTracker needs at least one agent")
        if max_fair_utility <= 0:
            raise ValueError(f"max_fair_utility must be > 0, got {max_fair_utility}")
        self.agents = list(agents)
        self.max_fair_utility = float(max_fair_utility)
        self._index = {a: i for i, a in enumerate(self.agents)}
        self.reward_sums = np.zeros(len(self.agents))
        self.steps = 0

    def reset(self) -> None:
        self.reward_sums[:] = 0.0
        self.steps = 0

    def update(self, rewards: Mapping[str, float]) -> None:
        """Add one step of rewards; agents missing from ``rewards`` got 0 this step."""
        for agent, r in rewards.items():
            try:
                self.reward_sums[self._index[agent]] += r
            except KeyError:
                raise ValueError(
                    f"unknown agent {agent!r}; tracked agents are {self.agents}"
                ) from None
        self.steps += 1

    @property
    def utilities(self) -> np.ndarray:
        return utilities(self.reward_sums, self.steps)

    def report(self) -> FairnessReport:
        return fairness_report(self.agents, self.utilities, self.max_fair_utility, self.steps)
