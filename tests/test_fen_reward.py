"""The fair-efficient reward and the controller features."""

import numpy as np
import pytest

from policies.fen.reward import (
    controller_features,
    efficiency,
    fair_efficient_reward,
    relative_utility,
)


def test_reward_values_match_the_formula():
    u = np.array([0.1, 0.2, 0.3, 0.4])
    ubar = u.mean()  # 0.25
    c = 0.25
    expected = min(1.0, ubar / c) / (0.1 + np.abs(u / ubar - 1))
    np.testing.assert_allclose(fair_efficient_reward(u, ubar, c), expected)
    # the agent at the average gets the largest reward, 1 / eps at full utilization
    np.testing.assert_allclose(fair_efficient_reward(np.full(4, 0.25), 0.25, 0.25), 10.0)


def test_efficiency_is_clipped_to_one():
    assert efficiency(0.5, 0.25) == 1.0
    np.testing.assert_allclose(fair_efficient_reward(np.array([0.5, 0.5]), 0.5, 0.25), 10.0)


def test_zero_average_gives_zero_reward_without_nan():
    r = fair_efficient_reward(np.zeros(3), 0.0, 0.25)
    assert np.all(r == 0.0) and np.all(np.isfinite(r))
    assert np.all(relative_utility(np.zeros(3), 0.0) == 0.0)


def test_reward_punishes_deviation_both_ways():
    r = fair_efficient_reward(np.array([0.1, 0.2, 0.3]), 0.2, 0.2)
    assert r[1] > r[0] and r[1] > r[2]
    np.testing.assert_allclose(r[0], r[2])


def test_per_agent_average_estimates():
    u = np.array([0.1, 0.3])
    r = fair_efficient_reward(u, np.array([0.1, 0.3]), 0.25)
    np.testing.assert_allclose(r, [0.4 / 0.1, 1.0 / 0.1])


def test_efficiency_average_replaces_only_the_efficiency_term():
    u = np.array([0.1, 0.2, 0.3, 0.4])
    deviation = 0.1 + np.abs(u / 0.25 - 1)
    np.testing.assert_allclose(
        fair_efficient_reward(u, 0.25, 0.25, efficiency_average=0.125), 0.5 / deviation)
    assert np.all(fair_efficient_reward(u, 0.25, 0.25, efficiency_average=0.0) == 0.0)


def test_controller_features_layout():
    f = controller_features(np.array([0.0, 0.5]), 0.25, 0.25)
    assert f.shape == (2, 2) and f.dtype == np.float32
    np.testing.assert_allclose(f, [[-1.0, 1.0], [1.0, 1.0]])


def test_controller_features_of_a_scalar_average_equal_the_broadcast_ones():
    """The central estimate's scalar path (every env step) computes the same bits as
    the per-agent path, a zero average and negative zeros included."""
    from policies.fen.envs import AverageUtility

    rng = np.random.default_rng(0)
    central = AverageUtility(5)
    for trial in range(2000):
        u = rng.random(5) * rng.choice([0.0, 1e-3, 1.0, 100.0])
        if trial % 11 == 0:
            u[2] = 0.0
        c = float(rng.choice([0.25, 0.003, 1.0]))
        mean = central.central_mean(u)
        assert mean == u.mean()
        fast, broadcast = controller_features(u, mean, c), controller_features(u, central(u), c)
        assert fast.dtype == broadcast.dtype and np.array_equal(fast, broadcast)
        assert np.array_equal(np.signbit(fast), np.signbit(broadcast))
    assert AverageUtility(5, "gossip").central_mean(np.ones(5)) is None


def test_bad_constants_are_rejected():
    with pytest.raises(ValueError, match="c must be > 0"):
        fair_efficient_reward(np.ones(2), 1.0, 0.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        fair_efficient_reward(np.ones(2), 1.0, 1.0, eps=0.0)
