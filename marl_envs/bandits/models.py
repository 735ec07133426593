"""Multi-agent multi-armed bandit *models*: the problems, apart from any env or policy.

A model knows its :class:`~marl_envs.bandits.graph.CoordinationGraph`, the
expected reward of every local action of every factor (``factor_means``), the
range of each factor's reward, and how to draw one round of factor rewards. The
optimal value and action come from variable elimination on the mean tables, so
regret is exact and the joint action space is never enumerated.

* :class:`Chain0101Model`  the 0101-chain (Bargiacchi et al., ICML 2018)
* :class:`GemMiningModel`  Gem Mining, a random instance from a seed
* :class:`WindFarmModel`   in :mod:`marl_envs.bandits.wind_farm` (needs FLORIS)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from marl_envs.bandits.graph import CoordinationGraph
from marl_envs.validation import check_bool, check_int

#: 0101-chain means, indexed [parity of i][a_i, a_i+1] (flat local index a_i*2 + a_i+1)
CHAIN_MEANS = np.array(
    [
        [0.75, 1.0, 0.25, 0.9],  # i even
        [0.75, 0.25, 1.0, 0.9],  # i odd
    ]
)


class BanditModel:
    """Base class: a factored stochastic reward over a coordination graph.

    Subclasses set ``graph``, ``factor_means`` (list of flat arrays),
    ``reward_ranges`` (array, max - min of each factor's reward), ``reward_kind``
    (``"bernoulli"``, ``"binomial"`` or ``"discrete"``; it picks MATS's posterior)
    and implement :meth:`sample_local`.
    """

    graph: CoordinationGraph
    factor_means: list[np.ndarray]
    reward_ranges: np.ndarray
    reward_kind: str = "bernoulli"
    #: divide cumulative regret by this for the figures of the papers
    regret_scale: float = 1.0

    def sample_local(self, local: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One round of factor rewards, given every factor's flat local action."""
        raise NotImplementedError

    def sample(self, joint_action: Sequence[int], rng: np.random.Generator) -> np.ndarray:
        """One round of factor rewards for a joint action, shape ``(n_factors,)``."""
        return self.sample_local(self.graph.local_actions(joint_action), rng)

    def expected_factor_rewards(self, joint_action: Sequence[int]) -> np.ndarray:
        local = self.graph.local_actions(joint_action)
        return np.array([m[k] for m, k in zip(self.factor_means, local, strict=True)])

    def expected_reward(self, joint_action: Sequence[int]) -> float:
        """``E F(a) = sum_e E f_e(a_e)``."""
        return float(self.expected_factor_rewards(joint_action).sum())

    @cached_property
    def _optimum(self) -> tuple[float, np.ndarray]:
        return self.graph.max_sum(self.factor_means)

    @property
    def optimal_value(self) -> float:
        """``max_a E F(a)`` by variable elimination (exact)."""
        return self._optimum[0]

    @property
    def optimal_action(self) -> np.ndarray:
        return self._optimum[1].copy()

    def regret(self, joint_action: Sequence[int]) -> float:
        """Expected regret ``E F(a*) - E F(a)`` of one round."""
        return self.optimal_value - self.expected_reward(joint_action)

    def _padded(self) -> np.ndarray:
        width = int(self.graph.factor_sizes.max())
        out = np.zeros((self.graph.n_factors, width))
        for e, m in enumerate(self.factor_means):
            out[e, : m.size] = m
        return out


class Chain0101Model(BanditModel):
    """n agents with 2 actions; factor (i, i+1) is Bernoulli with :data:`CHAIN_MEANS`."""

    reward_kind = "bernoulli"

    def __init__(self, n_agents: int = 10) -> None:
        n_agents = check_int("n_agents", n_agents, low=2, note="a chain needs two ends")
        self.graph = CoordinationGraph([2] * n_agents, [(i, i + 1) for i in range(n_agents - 1)])
        self.factor_means = [CHAIN_MEANS[i % 2].copy() for i in range(n_agents - 1)]
        self.reward_ranges = np.ones(n_agents - 1)
        self.regret_scale = float(n_agents - 1)
        self._p = np.stack(self.factor_means)
        self._rows = np.arange(n_agents - 1)

    def sample_local(self, local: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self._p[self._rows, local]
        return (rng.random(p.shape[0]) < p).astype(np.float64)


class GemMiningModel(BanditModel):
    """Gem Mining (Bargiacchi et al. 2018; MATS code), one instance drawn from ``seed``.

    Villages ``V ~ U{5..15}``, mines ``V + 3``, workers per village ``U{1..5}``;
    village ``v`` reaches mines ``v .. v+k-1`` with ``k ~ U{2..4}`` (the last
    village reaches 4) and its action picks one of them. Mine ``j`` has
    productivity ``p_j ~ U(0, 0.5)``; with ``w`` workers its reward is
    ``Binomial(w, p_j * 1.03**w)`` gems. One factor per mine over the villages that
    reach it. With ``normalise`` (default) rewards are divided by the optimal
    expected total, so the optimum earns 1 per round.
    """

    reward_kind = "binomial"

    def __init__(self, seed: int = 0, normalise: bool = True, n_villages: int | None = None):
        seed = check_int("instance_seed", seed, low=0)  # the env's name for it
        normalise = check_bool("normalise", normalise)
        n_villages = check_int("n_villages", n_villages, low=1, none_ok=True)
        rng = np.random.default_rng(seed)
        v = int(rng.integers(5, 16)) if n_villages is None else n_villages
        n_mines = v + 3
        workers = rng.integers(1, 6, size=v)
        reach = rng.integers(2, 5, size=v)
        reach[-1] = 4
        productivity = rng.uniform(0.0, 0.5, size=n_mines)
        self.n_villages = v
        self.n_mines = n_mines
        self.workers = workers
        self.reach = reach
        self.productivity = productivity
        factors = [
            tuple(i for i in range(v) if i <= j < i + reach[i]) for j in range(n_mines)
        ]
        self.graph = CoordinationGraph(reach.tolist(), factors)
        self._w_tables: list[np.ndarray] = []
        self._p_tables: list[np.ndarray] = []
        means = []
        for j, f in enumerate(factors):
            shape = self.graph.factor_shapes[j]
            w = np.zeros(shape, dtype=np.int64)
            for axis, i in enumerate(f):
                # village i sends its workers to mine j when its action is j - i
                sel = [slice(None)] * len(f)
                sel[axis] = j - i
                ind = np.zeros(shape, dtype=np.int64)
                ind[tuple(sel)] = workers[i]
                w += ind
            w = w.ravel()
            p = np.where(w > 0, productivity[j] * 1.03**w, 0.0)
            self._w_tables.append(w)
            self._p_tables.append(p)
            means.append(w * p)
        ranges = np.array([float(w.max()) for w in self._w_tables])
        self._scale = 1.0
        self.factor_means = means
        if normalise:
            self._scale = 1.0 / self.optimal_value
            self.factor_means = [m * self._scale for m in means]
            self.__dict__.pop("_optimum", None)
        self.reward_ranges = ranges * self._scale
        width = int(self.graph.factor_sizes.max())
        self._W = np.zeros((n_mines, width), dtype=np.int64)
        self._P = np.zeros((n_mines, width))
        for j in range(n_mines):
            self._W[j, : self._w_tables[j].size] = self._w_tables[j]
            self._P[j, : self._p_tables[j].size] = self._p_tables[j]
        self._rows = np.arange(n_mines)

    def sample_local(self, local: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        w = self._W[self._rows, local]
        p = self._P[self._rows, local]
        return rng.binomial(w, p).astype(np.float64) * self._scale
