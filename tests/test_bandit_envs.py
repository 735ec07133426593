"""Multi-agent bandit environments: PettingZoo API, graph, exact optimum and regret."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import marl_envs
from marl_envs.bandits.graph import CoordinationGraph
from marl_envs.bandits.models import Chain0101Model, GemMiningModel

try:
    import floris  # noqa: F401

    HAVE_FLORIS = True
except ImportError:
    HAVE_FLORIS = False

needs_floris = pytest.mark.skipif(
    not HAVE_FLORIS, reason="floris not installed (pip install fairmarl[wind])"
)

CASES = [
    ("chain0101", {"n_agents": 5, "horizon": 30}),
    ("gem_mining", {"instance_seed": 4, "horizon": 30}),
    pytest.param("wind_farm", {"horizon": 30}, marks=needs_floris),
]


def brute_force_optimum(model) -> float:
    g = model.graph
    return max(
        model.expected_reward(a) for a in itertools.product(*[range(n) for n in g.action_sizes])
    )


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_parallel_api_and_seed(name: str, kwargs: dict) -> None:
    parallel_api_test(marl_envs.make(name, **kwargs), num_cycles=40)
    parallel_seed_test(lambda: marl_envs.make(name, **kwargs))


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_infos_hold_factor_rewards_and_exact_regret(name: str, kwargs: dict) -> None:
    env = marl_envs.make(name, **kwargs)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    total = 0.0
    while env.agents:
        joint = [int(rng.integers(env.action_space(a).n)) for a in env.possible_agents]
        _, rewards, _, truncs, infos = env.step(dict(zip(env.possible_agents, joint, strict=True)))
        info = infos["agent_0"]
        assert info["factor_rewards"].shape == (len(env.factors),)
        assert rewards["agent_0"] == pytest.approx(info["factor_rewards"].sum())
        assert info["expected_reward"] == pytest.approx(env.expected_reward(joint))
        assert info["regret"] == pytest.approx(env.optimal_value - env.expected_reward(joint))
        assert info["regret"] >= -1e-12
        total += info["regret"]
    assert env.cumulative_regret == pytest.approx(total)
    assert all(truncs.values())


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_render_modes(name: str, kwargs: dict) -> None:
    env = marl_envs.make(name, render_mode="ansi", **kwargs)
    env.reset(seed=0)
    env.step(dict.fromkeys(env.possible_agents, 0))
    assert "regret" in env.render()
    env = marl_envs.make(name, render_mode="rgb_array", **kwargs)
    env.reset(seed=0)
    env.step(dict.fromkeys(env.possible_agents, 0))
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


def test_chain_structure_and_optimum() -> None:
    env = marl_envs.make("chain0101", n_agents=7)
    assert env.factors == tuple((i, i + 1) for i in range(6))
    assert env.optimal_value == pytest.approx(6.0)
    assert env.model.optimal_action.tolist() == [0, 1, 0, 1, 0, 1, 0]
    assert env.model.regret_scale == 6
    assert env.model.optimal_value == pytest.approx(brute_force_optimum(env.model))


def test_chain_rewards_are_bernoulli_with_the_table_means() -> None:
    model = Chain0101Model(3)
    rng = np.random.default_rng(0)
    draws = np.array([model.sample([0, 1, 1], rng) for _ in range(4000)])
    assert set(np.unique(draws)) <= {0.0, 1.0}
    # factor 0 (even): (0,1) -> 1.0; factor 1 (odd): (1,1) -> 0.9
    np.testing.assert_allclose(draws.mean(axis=0), [1.0, 0.9], atol=0.02)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gem_mining_instances(seed: int) -> None:
    model = GemMiningModel(seed=seed, n_villages=6)
    g = model.graph
    assert g.n_agents == 6 and g.n_factors == 9
    assert all(2 <= a <= 4 for a in g.action_sizes) and g.action_sizes[-1] == 4
    assert model.optimal_value == pytest.approx(1.0)  # normalised
    assert model.optimal_value == pytest.approx(brute_force_optimum(model))
    raw = GemMiningModel(seed=seed, n_villages=6, normalise=False)
    assert raw.optimal_value == pytest.approx(brute_force_optimum(raw))
    rng = np.random.default_rng(0)
    r = raw.sample(raw.optimal_action, rng)
    assert np.all(r == np.round(r)) and np.all(r >= 0)


def test_gem_mining_instance_depends_on_seed_only() -> None:
    a, b = GemMiningModel(seed=7), GemMiningModel(seed=7)
    assert a.graph.factors == b.graph.factors
    np.testing.assert_array_equal(a.productivity, b.productivity)
    assert GemMiningModel(seed=8).graph.factors != a.graph.factors or not np.array_equal(
        GemMiningModel(seed=8).productivity, a.productivity
    )


@needs_floris
def test_wind_farm_graph_and_optimum() -> None:
    env = marl_envs.make("wind_farm", horizon=5)
    assert env.graph.n_agents == 7 and env.graph.n_factors == 11
    assert all(a == 3 for a in env.graph.action_sizes)
    assert env.optimal_value == pytest.approx(1.0)
    assert env.optimal_value == pytest.approx(brute_force_optimum(env.model))
    # wake steering pays: the optimum beats everyone at yaw 0 (action 1)
    assert env.expected_reward([1] * 7) < env.optimal_value - 0.01


def test_wind_farm_without_floris_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['floris'] = None\n"
        "import marl_envs\n"
        "try:\n    marl_envs.make('wind_farm')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install fairmarl[wind]" in out.stdout


def test_bad_actions_and_kwargs_are_rejected() -> None:
    env = marl_envs.make("chain0101", n_agents=3, horizon=5)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="agent_1.*allowed: integers 0..1"):
        env.step({"agent_0": 0, "agent_1": 2, "agent_2": 0})
    with pytest.raises(ValueError, match="missing action"):
        env.step({"agent_0": 0})
    with pytest.raises(ValueError, match="unknown agent"):
        env.step({"agent_0": 0, "agent_1": 0, "agent_2": 0, "bob": 1})
    with pytest.raises(TypeError, match="unknown keyword"):
        marl_envs.make("chain0101", agents=3)
    with pytest.raises(ValueError, match="n_agents must be an integer >= 2, got 1"):
        marl_envs.make("chain0101", n_agents=1)
    with pytest.raises(ValueError, match="invalid action 5 for agent 0"):
        env.expected_reward([5, 0, 0])


def test_coordination_graph_validation_and_ve() -> None:
    with pytest.raises(ValueError, match=r"names agent\(s\) \[3\]"):
        CoordinationGraph([2, 2, 2], [(0, 3)])
    with pytest.raises(ValueError, match="action_sizes"):
        CoordinationGraph([2, 0], [(0, 1)])
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(1, 6))
        sizes = rng.integers(1, 4, size=n)
        factors = [
            tuple(rng.choice(n, size=int(rng.integers(1, min(3, n) + 1)), replace=False))
            for _ in range(int(rng.integers(0, 6)))
        ]
        g = CoordinationGraph(sizes, factors)
        tables = [rng.normal(size=s) for s in g.factor_sizes]
        value, arg = g.max_sum(tables)
        best = max(
            g.evaluate(tables, a) for a in itertools.product(*[range(k) for k in sizes])
        )
        assert value == pytest.approx(best)
        assert g.evaluate(tables, arg) == pytest.approx(best)
    assert sorted(len(c) for c in CoordinationGraph([2] * 5, [(0, 1), (3, 4)]).components()) == [
        1, 2, 2
    ]
