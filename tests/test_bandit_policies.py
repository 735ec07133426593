"""Bandit policies: experience statistics, exploration order, learning on the chain."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marl_envs.bandits.models import Chain0101Model
from policies.mauce.experience import FactoredExperience
from policies.mauce.policies import ALGORITHMS, MATSPolicy, MAUCEPolicy, make_policy
from policies.mauce.runner import run_many, run_one, summarise


def test_experience_incremental_statistics() -> None:
    model = Chain0101Model(3)
    exp = FactoredExperience(model.graph, model.reward_ranges)
    rewards = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])]
    for r in rewards:
        exp.record([0, 1, 1], r)
    # factor 0 local action (0,1) = 1, factor 1 local action (1,1) = 3
    assert exp.counts[0, 1] == 3 and exp.counts[1, 3] == 3 and exp.counts.sum() == 6
    assert exp.means[0, 1] == pytest.approx(2 / 3)
    assert exp.m2[0, 1] == pytest.approx(np.var([1, 0, 1]) * 3)
    assert exp.successes[0, 1] == 2 and exp.failures[0, 1] == 1
    assert exp.timestep == 3
    other = FactoredExperience(model.graph, model.reward_ranges)
    other.set_state(exp.state())
    np.testing.assert_array_equal(other.means, exp.means)
    assert other.timestep == 3
    with pytest.raises(ValueError, match="factor_rewards has shape"):
        exp.record([0, 1, 1], np.zeros(3))


def test_untried_local_actions_come_first() -> None:
    model = Chain0101Model(4)
    policy = MAUCEPolicy(model.graph, model.reward_ranges, seed=0)
    rng = np.random.default_rng(0)
    rounds = 0
    while policy.experience.n_untried() > 0:
        before = policy.experience.n_untried()
        a = policy.act()
        policy.observe(a, model.sample(a, rng))
        assert policy.experience.n_untried() < before  # each round tries a new local arm
        rounds += 1
    assert rounds <= 4 * 3


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_policies_are_seeded_and_valid(algo: str) -> None:
    model = Chain0101Model(5)

    def play(seed: int) -> list[list[int]]:
        p = make_policy(algo, model.graph, model.reward_ranges, seed, model.reward_kind)
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(40):
            a = p.act()
            assert a.shape == (5,) and set(a.tolist()) <= {0, 1}
            p.observe(a, model.sample(a, rng))
            out.append(a.tolist())
        return out

    assert play(1) == play(1)


def test_learning_policies_beat_random_on_the_chain() -> None:
    res = summarise(
        run_many("chain0101", ["mauce", "mats", "llr", "random"], 2, 1000, 6, progress=None)
    )
    for algo in ("mauce", "mats", "llr"):
        assert res[algo]["regret_mean"] < 0.5 * res["random"]["regret_mean"], res
    assert res["mats"]["regret_mean"] < res["llr"]["regret_mean"]


def test_mauce_finds_the_optimum_of_the_chain() -> None:
    r = run_one("chain0101", "mauce", seed=0, horizon=3000, agents=5)
    # the regret curve flattens: the last 1000 rounds cost far less than the first 1000
    curve = np.array(r.curve)
    steps = np.array(r.checkpoints)
    late = curve[-1] - np.interp(2000, steps, curve)
    early = np.interp(1000, steps, curve)
    assert late < 0.25 * early


def test_make_policy_rejects_unknown_names() -> None:
    model = Chain0101Model(3)
    with pytest.raises(ValueError, match="unknown algorithm 'ucb'"):
        make_policy("ucb", model.graph, model.reward_ranges)
    with pytest.raises(ValueError, match="unknown posterior"):
        MATSPolicy(model.graph, model.reward_ranges, posterior="poisson")


def test_run_bandits_script_writes_results(tmp_path) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "run_bandits.py"
    spec = importlib.util.spec_from_file_location("run_bandits", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    js = tmp_path / "out.json"
    summary = mod.main([
        "--problem", "gem_mining", "--agents", "5", "--horizon", "200", "--runs", "2",
        "--algos", "mauce,scql,random", "--workers", "2", "--json", str(js),
        "--out-dir", str(tmp_path),
    ])
    data = json.loads(js.read_text())
    assert set(data) == {"mauce", "scql", "random"} and data["mauce"]["runs"] == 2
    assert data == summary
    md = (tmp_path / "bandits_gem_mining.md").read_text()
    assert "run_bandits.py --problem gem_mining" in md and "| mauce |" in md
    assert (tmp_path / "bandits_gem_mining.png").stat().st_size > 1000
