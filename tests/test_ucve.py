"""UCVE returns the exact MAUCE argmax: property tests against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from marl_envs.bandits.graph import CoordinationGraph
from policies.mauce.ucve import UCVE


def random_problem(rng: np.random.Generator):
    n = int(rng.integers(1, 7))
    sizes = rng.integers(1, 4, size=n)
    factors = [
        tuple(rng.choice(n, size=int(rng.integers(1, min(3, n) + 1)), replace=False))
        for _ in range(int(rng.integers(0, 7)))
    ]
    g = CoordinationGraph(sizes, factors)
    means = [rng.random(s) for s in g.factor_sizes]
    # heavy-tailed variances: a few barely tried arms next to well-known ones
    variances = [rng.random(s) ** 3 * rng.choice([0.01, 1.0, 10.0]) for s in g.factor_sizes]
    c = float(rng.choice([0.1, 1.0, 5.0, 20.0]))
    return g, means, variances, c


def objective(g, means, variances, c, a) -> float:
    return g.evaluate(means, a) + np.sqrt(c * g.evaluate(variances, a))


def brute_force(g, means, variances, c) -> float:
    return max(
        objective(g, means, variances, c, a)
        for a in itertools.product(*[range(k) for k in g.action_sizes])
    )


@pytest.mark.parametrize("pruning", ["envelope", "reference"])
@pytest.mark.parametrize("engine", ["python", "numpy"])
def test_ucve_matches_brute_force_on_random_graphs(pruning: str, engine: str) -> None:
    rng = np.random.default_rng(12345)
    for _ in range(120):
        g, means, variances, c = random_problem(rng)
        ucve = UCVE(g, pruning=pruning, engine=engine)
        a, m, v = ucve.solve(means, variances, c)
        best = brute_force(g, means, variances, c)
        assert objective(g, means, variances, c, a) == pytest.approx(best, abs=1e-9)
        # the returned vector is the chosen action's (mean, variance)
        assert m == pytest.approx(g.evaluate(means, a))
        assert v == pytest.approx(g.evaluate(variances, a))


def test_disconnected_components_are_coupled_by_the_square_root() -> None:
    # two independent pairs: each alone would pick its high-mean action, but the
    # square root over the *sum* of variances makes one exploratory pick worth more
    g = CoordinationGraph([2, 2, 2, 2], [(0, 1), (2, 3)])
    means = [np.array([1.0, 0.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.95])]
    variances = [np.array([0.0, 0.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 0.3])]
    c = 1.0
    for engine in ("python", "numpy"):
        a, _, _ = UCVE(g, engine=engine).solve(means, variances, c)
        assert objective(g, means, variances, c, a) == pytest.approx(
            brute_force(g, means, variances, c)
        )
        assert a.tolist()[2:] == [1, 1]


def test_envelope_never_keeps_more_than_reference() -> None:
    rng = np.random.default_rng(7)
    g = CoordinationGraph([3] * 8, [(i, i + 1) for i in range(7)] + [(0, 4), (2, 6)])
    for _ in range(20):
        means = [rng.random(s) for s in g.factor_sizes]
        variances = [rng.random(s) ** 2 for s in g.factor_sizes]
        env_u, ref_u = UCVE(g, "envelope", "numpy"), UCVE(g, "reference", "numpy")
        a1, _, _ = env_u.solve(means, variances, 3.0)
        a2, _, _ = ref_u.solve(means, variances, 3.0)
        assert objective(g, means, variances, 3.0, a1) == pytest.approx(
            objective(g, means, variances, 3.0, a2)
        )
        assert env_u.last_max_set_size <= ref_u.last_max_set_size


def test_engines_agree_on_a_long_chain() -> None:
    rng = np.random.default_rng(3)
    g = CoordinationGraph([2] * 30, [(i, i + 1) for i in range(29)])
    means = [rng.random(4) for _ in range(29)]
    variances = [rng.random(4) ** 3 for _ in range(29)]
    zs = [
        objective(g, means, variances, 8.0, UCVE(g, engine=e).solve(means, variances, 8.0)[0])
        for e in ("python", "numpy")
    ]
    assert zs[0] == pytest.approx(zs[1])


def test_bad_arguments() -> None:
    g = CoordinationGraph([2, 2], [(0, 1)])
    with pytest.raises(ValueError, match="unknown pruning 'fast'"):
        UCVE(g, pruning="fast")
    with pytest.raises(ValueError, match="unknown engine 'c'"):
        UCVE(g, engine="c")
    with pytest.raises(ValueError, match="must be >= 0"):
        UCVE(g).solve([np.zeros(4)], [np.zeros(4)], -1.0)


def test_solve_padded_equals_solve() -> None:
    rng = np.random.default_rng(5)
    g = CoordinationGraph([2, 3, 2, 4], [(0, 1), (1, 2, 3), (3,)])
    means = [rng.random(s) for s in g.factor_sizes]
    variances = [rng.random(s) for s in g.factor_sizes]
    width = int(g.factor_sizes.max())
    mp, vp = np.zeros((3, width)), np.zeros((3, width))
    for e, k in enumerate(g.factor_sizes):
        mp[e, :k], vp[e, :k] = means[e], variances[e]
    for engine in ("python", "numpy"):
        u = UCVE(g, engine=engine)
        a1, m1, v1 = u.solve(means, variances, 2.0)
        a2, m2, v2 = u.solve_padded(mp, vp, 2.0)
        assert (m1, v1) == pytest.approx((m2, v2))
        assert objective(g, means, variances, 2.0, a2) == pytest.approx(
            brute_force(g, means, variances, 2.0)
        )
