"""Bandit policies: experience statistics, exploration order, learning on the chain
(regret studies through the experiment layer: tests/test_experiment_bandits.py)."""

from __future__ import annotations

import numpy as np
import pytest

from marl_envs.bandits.models import Chain0101Model
from policies.mauce.experience import FactoredExperience
from policies.mauce.policies import ALGORITHMS, MATSPolicy, MAUCEPolicy, make_policy
from policies.mauce.runner import run_one


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
