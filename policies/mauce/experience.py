"""Factored bandit *experience*: per-factor, per-local-action statistics.

As in AI-Toolbox, the statistics are an object of their own, separate from the
policies that read them (MAUCE, LLR and MATS all read one
:class:`FactoredExperience`). Storage is padded ``(n_factors, max_local)``
arrays so one update is a few vectorised numpy operations; ``state()`` /
``set_state()`` expose them as a dict of arrays (what the RLlib module holds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marl_envs.bandits.graph import CoordinationGraph


class FactoredExperience:
    """Counts, incremental means and sums of squared deviations of every local arm.

    ``timestep`` is the number of rounds recorded. ``successes`` / ``failures``
    hold the Beta-posterior counts of MATS (rewards scaled to [0, 1] by
    ``reward_low`` / ``reward_ranges`` and, when not 0/1, binarised with a
    Bernoulli draw of ``rng``, the usual trick for Thompson sampling on bounded
    rewards).
    """

    FIELDS = ("counts", "means", "m2", "successes", "failures")

    def __init__(
        self,
        graph: CoordinationGraph,
        reward_ranges: Sequence[float] | np.ndarray | None = None,
        reward_low: Sequence[float] | np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.graph = graph
        nf, width = graph.n_factors, int(graph.factor_sizes.max()) if graph.n_factors else 1
        ranges = np.ones(nf) if reward_ranges is None else np.asarray(reward_ranges, float)
        if ranges.shape != (nf,):
            raise ValueError(f"reward_ranges has shape {ranges.shape}; expected ({nf},)")
        if (ranges <= 0).any():
            bad = int(np.flatnonzero(ranges <= 0)[0])
            raise ValueError(f"reward_ranges[{bad}] = {ranges[bad]}; every range must be > 0")
        self.reward_ranges = ranges
        self.reward_low = np.zeros(nf) if reward_low is None else np.asarray(reward_low, float)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.valid = np.arange(width)[None, :] < graph.factor_sizes[:, None]
        self.counts = np.zeros((nf, width))
        self.means = np.zeros((nf, width))
        self.m2 = np.zeros((nf, width))
        self.successes = np.zeros((nf, width))
        self.failures = np.zeros((nf, width))
        self.timestep = 0
        self._rows = np.arange(nf)

    def record(self, joint_action: Sequence[int] | np.ndarray, factor_rewards: np.ndarray) -> None:
        """Add one round: the joint action played and every factor's reward."""
        r = np.asarray(factor_rewards, dtype=np.float64)
        if r.shape != (self.graph.n_factors,):
            raise ValueError(
                f"factor_rewards has shape {r.shape}; expected ({self.graph.n_factors},)"
            )
        local = self.graph.local_actions(joint_action)
        self.record_local(local, r)

    def record_local(self, local: np.ndarray, r: np.ndarray) -> None:
        rows = self._rows
        n = self.counts[rows, local] + 1.0
        mean = self.means[rows, local]
        delta = r - mean
        new_mean = mean + delta / n
        self.counts[rows, local] = n
        self.means[rows, local] = new_mean
        self.m2[rows, local] += delta * (r - new_mean)
        y = np.clip((r - self.reward_low) / self.reward_ranges, 0.0, 1.0)
        binary = (y == 0.0) | (y == 1.0)
        hit = np.where(binary, y == 1.0, self.rng.random(y.shape) < y)
        self.successes[rows, local] += hit
        self.failures[rows, local] += ~hit
        self.timestep += 1

    # ------------------------------------------------------------ views
    def tables(self, padded: np.ndarray) -> list[np.ndarray]:
        """Per-factor flat views of a padded ``(n_factors, width)`` array."""
        return [padded[e, :s] for e, s in enumerate(self.graph.factor_sizes)]

    def untried(self) -> np.ndarray:
        """Padded bool array of local arms never played."""
        return (self.counts == 0) & self.valid

    def n_untried(self) -> int:
        return int(np.count_nonzero(self.untried()))

    # ------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k).copy() for k in self.FIELDS}
        out["timestep"] = np.array(self.timestep)
        return out

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        for k in self.FIELDS:
            arr = np.asarray(state[k], dtype=np.float64)
            if arr.shape != self.counts.shape:
                raise ValueError(
                    f"state[{k!r}] has shape {arr.shape}; expected {self.counts.shape}"
                )
            setattr(self, k, arr.copy())
        self.timestep = int(np.asarray(state["timestep"]))
