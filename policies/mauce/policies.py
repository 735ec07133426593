"""Bandit policies on coordination graphs: MAUCE, MATS, LLR, SCQL and Random.

Every policy has the same two methods::

    a = policy.act()                      # joint action for the next round
    policy.observe(a, factor_rewards)     # learn from the round

MAUCE, LLR and MATS read a :class:`~policies.mauce.experience.FactoredExperience`
(``policy.experience``; ``observe`` records into it), SCQL keeps its own local
Q tables, Random keeps nothing. All of them find their joint action by variable
elimination on the coordination graph (UCVE for MAUCE), never by enumerating
the joint action space. Local arms never played are explored first: while any
exists, the joint action maximises the number of untried local arms (ties by
the current means), the "huge value" of the reference implementation.

Build one by name with :func:`make_policy`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marl_envs.bandits.graph import CoordinationGraph
from policies.mauce.experience import FactoredExperience
from policies.mauce.ucve import UCVE

#: value of an untried local arm (dominates any sum of means)
UNTRIED_BONUS = 1e9


class BanditPolicy:
    """Base class: a seeded policy over a coordination graph."""

    name = "policy"

    def __init__(self, graph: CoordinationGraph, seed: int = 0) -> None:
        self.graph = graph
        self.rng = np.random.default_rng(seed)

    def act(self) -> np.ndarray:
        raise NotImplementedError

    def observe(self, joint_action: np.ndarray, factor_rewards: np.ndarray) -> None:
        pass

    def _random_action(self) -> np.ndarray:
        return np.array([self.rng.integers(n) for n in self.graph.action_sizes], dtype=np.int64)


class RandomPolicy(BanditPolicy):
    """Uniformly random joint action."""

    name = "random"

    def __init__(self, graph: CoordinationGraph, seed: int = 0) -> None:
        super().__init__(graph, seed)
        self._sizes = np.array(graph.action_sizes)

    def act(self) -> np.ndarray:
        return (self.rng.random(self._sizes.size) * self._sizes).astype(np.int64)


class ExperiencePolicy(BanditPolicy):
    """A policy reading a :class:`FactoredExperience` (shared or its own)."""

    def __init__(
        self,
        graph: CoordinationGraph,
        reward_ranges: Sequence[float] | np.ndarray | None = None,
        seed: int = 0,
        experience: FactoredExperience | None = None,
        reward_low: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        super().__init__(graph, seed)
        if experience is None:
            experience = FactoredExperience(
                graph, reward_ranges, reward_low, rng=np.random.default_rng([seed, 1])
            )
        self.experience = experience

    def observe(self, joint_action: np.ndarray, factor_rewards: np.ndarray) -> None:
        self.experience.record(joint_action, factor_rewards)

    def _explore_untried(self) -> np.ndarray | None:
        """Joint action with the most untried local arms, or None when all were tried."""
        exp = self.experience
        untried = exp.untried()
        if not untried.any():
            return None
        tables = exp.tables(untried * UNTRIED_BONUS + exp.means)
        return self.graph.ve_plan.solve(
            [t.reshape(s) for t, s in zip(tables, self.graph.factor_shapes, strict=True)]
        )[1]

    def _ve(self, padded: np.ndarray) -> np.ndarray:
        g = self.graph
        tables = [padded[e, :s].reshape(sh) for e, (s, sh) in enumerate(
            zip(g.factor_sizes, g.factor_shapes, strict=True))]
        return g.ve_plan.solve(tables)[1]


class MAUCEPolicy(ExperiencePolicy):
    """MAUCE: ``argmax_a sum mu_e + sqrt(0.5 log(tA) sum r_e^2 / n_e)`` by UCVE."""

    name = "mauce"

    def __init__(
        self,
        graph: CoordinationGraph,
        reward_ranges: Sequence[float] | np.ndarray | None = None,
        seed: int = 0,
        experience: FactoredExperience | None = None,
        pruning: str = "envelope",
    ) -> None:
        super().__init__(graph, reward_ranges, seed, experience)
        self.ucve = UCVE(graph, pruning=pruning)
        self._r2 = (self.experience.reward_ranges**2)[:, None]

    def exploration_coefficient(self, t: int) -> float:
        """``c = 0.5 * log(t A)`` with ``log A = sum_i log A_i``."""
        return 0.5 * (np.log(t) + self.graph.log_joint_actions)

    def act(self) -> np.ndarray:
        first = self._explore_untried()
        if first is not None:
            return first
        exp = self.experience
        var = self._r2 / np.maximum(exp.counts, 1.0)
        c = self.exploration_coefficient(exp.timestep + 1)
        action, _, _ = self.ucve.solve_padded(exp.means, var, c)
        return action


class LLRPolicy(ExperiencePolicy):
    """LLR (Gai et al. 2012): VE over ``mu_e + r_e sqrt((L+1) ln t / n_e)``, ``L = 1``."""

    name = "llr"

    def __init__(
        self,
        graph: CoordinationGraph,
        reward_ranges: Sequence[float] | np.ndarray | None = None,
        seed: int = 0,
        experience: FactoredExperience | None = None,
        big_l: float = 1.0,
    ) -> None:
        super().__init__(graph, reward_ranges, seed, experience)
        self.big_l = float(big_l)

    def act(self) -> np.ndarray:
        first = self._explore_untried()
        if first is not None:
            return first
        exp = self.experience
        t = exp.timestep + 1
        bonus = exp.reward_ranges[:, None] * np.sqrt(
            (self.big_l + 1.0) * np.log(t) / np.maximum(exp.counts, 1.0)
        )
        return self._ve(exp.means + bonus)


class MATSPolicy(ExperiencePolicy):
    """Multi-Agent Thompson Sampling (Verstraeten et al. 2020).

    ``posterior="beta"``: every local arm's mean ~ ``Beta(1 + S, 1 + F)`` (rewards
    scaled to [0, 1] by the factor's range, binarised when not 0/1), rescaled.
    ``posterior="gaussian"``: Gaussian likelihood with unknown mean and variance
    and Jeffreys prior, so the mean ~ ``x̄ + sqrt(M2 / (n (n-1))) * t_{n-1}``; arms
    with fewer than 2 plays are explored first. Then VE on the sampled means.
    """

    name = "mats"
    POSTERIORS = ("beta", "gaussian")

    def __init__(
        self,
        graph: CoordinationGraph,
        reward_ranges: Sequence[float] | np.ndarray | None = None,
        seed: int = 0,
        experience: FactoredExperience | None = None,
        posterior: str = "beta",
        reward_low: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        if posterior not in self.POSTERIORS:
            raise ValueError(f"unknown posterior {posterior!r}; allowed: {list(self.POSTERIORS)}")
        super().__init__(graph, reward_ranges, seed, experience, reward_low)
        self.posterior = posterior

    def act(self) -> np.ndarray:
        exp = self.experience
        if self.posterior == "beta":
            theta = self.rng.beta(1.0 + exp.successes, 1.0 + exp.failures)
            sample = exp.reward_low[:, None] + exp.reward_ranges[:, None] * theta
            return self._ve(sample)
        few = (exp.counts < 2) & exp.valid
        if few.any():
            return self._ve(few * UNTRIED_BONUS + exp.means)
        n = exp.counts
        scale = np.sqrt(exp.m2 / (np.maximum(n, 1.0) * np.maximum(n - 1.0, 1.0)))
        t = self.rng.standard_t(np.maximum(n - 1.0, 1.0))
        return self._ve(exp.means + scale * t)


class SCQLPolicy(BanditPolicy):
    """Sparse Cooperative Q-learning, bandit form (Kok & Vlassis 2006).

    Local ``Q_e`` tables start at ``optimistic``; each round the joint action is
    uniformly random with probability ``epsilon(t) = max(0, eps0 - eps_decay * t)``
    and otherwise the VE argmax of ``sum_e Q_e``; then
    ``Q_e(a_e) += alpha (r_e - Q_e(a_e))``.
    """

    name = "scql"

    def __init__(
        self,
        graph: CoordinationGraph,
        seed: int = 0,
        alpha: float = 0.3,
        optimistic: float = 5.0,
        eps0: float = 0.05,
        eps_decay: float = 1.0 / 500.0,
    ) -> None:
        super().__init__(graph, seed)
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha, self.eps0, self.eps_decay = float(alpha), float(eps0), float(eps_decay)
        width = int(graph.factor_sizes.max())
        self.q = np.full((graph.n_factors, width), float(optimistic))
        self.t = 0
        self._rows = np.arange(graph.n_factors)

    def epsilon(self, t: int) -> float:
        return max(0.0, self.eps0 - self.eps_decay * t)

    def act(self) -> np.ndarray:
        if self.rng.random() < self.epsilon(self.t + 1):
            return self._random_action()
        g = self.graph
        tables = [self.q[e, :s].reshape(sh) for e, (s, sh) in enumerate(
            zip(g.factor_sizes, g.factor_shapes, strict=True))]
        return g.ve_plan.solve(tables)[1]

    def observe(self, joint_action: np.ndarray, factor_rewards: np.ndarray) -> None:
        local = self.graph.local_actions(joint_action)
        q = self.q[self._rows, local]
        self.q[self._rows, local] = q + self.alpha * (np.asarray(factor_rewards) - q)
        self.t += 1


#: algorithm names accepted by :func:`make_policy`
ALGORITHMS = ("mauce", "mats", "mats_beta", "mats_gaussian", "llr", "scql", "random")

#: SCQL settings of the reference experiments, per problem
SCQL_SETTINGS = {
    "chain0101": {"optimistic": 5.0, "eps0": 0.05, "eps_decay": 1.0 / 500.0},
    "gem_mining": {"optimistic": 10.0, "eps0": 0.05, "eps_decay": 1e-5},
    "wind_farm": {"optimistic": 5.0, "eps0": 0.05, "eps_decay": 1e-5},
}


def make_policy(
    algo: str,
    graph: CoordinationGraph,
    reward_ranges: Sequence[float] | np.ndarray,
    seed: int = 0,
    reward_kind: str = "bernoulli",
    problem: str = "chain0101",
    **kwargs: object,
) -> BanditPolicy:
    """Build policy ``algo`` (one of :data:`ALGORITHMS`) for a problem.

    ``mats`` picks its posterior from ``reward_kind``: Beta for ``bernoulli`` and
    ``binomial`` rewards, Gaussian (Student-t) for ``discrete``/continuous ones.
    """
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; allowed: {list(ALGORITHMS)}")
    if algo == "random":
        return RandomPolicy(graph, seed)
    if algo == "mauce":
        return MAUCEPolicy(graph, reward_ranges, seed, **kwargs)
    if algo == "llr":
        return LLRPolicy(graph, reward_ranges, seed, **kwargs)
    if algo == "scql":
        if problem not in SCQL_SETTINGS:
            raise ValueError(f"unknown problem {problem!r}; allowed: {list(SCQL_SETTINGS)}")
        return SCQLPolicy(graph, seed, **{**SCQL_SETTINGS[problem], **kwargs})
    if algo == "mats":
        posterior = "beta" if reward_kind in ("bernoulli", "binomial") else "gaussian"
    else:
        posterior = algo.removeprefix("mats_")
    return MATSPolicy(graph, reward_ranges, seed, posterior=posterior, **kwargs)
