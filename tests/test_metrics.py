"""Tests of the fairness metrics (``marl_envs.metrics``) against the FEN definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

import marl_envs
from marl_envs.metrics import (
    FairnessTracker,
    coefficient_of_variation,
    fairness_report,
    utilities,
    utilization,
)


def test_utilities_are_time_averages() -> None:
    np.testing.assert_allclose(utilities(np.array([3.0, 0.0, 1.5]), 6), [0.5, 0.0, 0.25])
    np.testing.assert_array_equal(utilities(np.array([2.0, 1.0]), 0), [0.0, 0.0])
    with pytest.raises(ValueError, match="steps must be >= 0"):
        utilities(np.zeros(2), -1)


def test_cv_zero_not_nan_when_all_utilities_zero() -> None:
    cv = coefficient_of_variation(np.zeros(4))
    assert cv == 0.0 and not math.isnan(cv)
    assert coefficient_of_variation(np.array([0.7])) == 0.0  # a single agent


@pytest.mark.parametrize(
    ("u", "expected"),
    [
        ([0.25, 0.25, 0.25, 0.25], 0.0),
        ([1.0, 0.0, 0.0, 0.0], math.sqrt(0.25) / 0.25),  # var(ddof=1) = 0.25, mean 0.25
        ([1.0, 3.0], math.sqrt(2.0) / 2.0),
        ([0.1, 0.2, 0.3], 0.1 / 0.2),
    ],
)
def test_cv_known_values(u: list[float], expected: float) -> None:
    # CV = sqrt(1/(n-1) * sum (u_i - ubar)^2) / ubar
    assert coefficient_of_variation(np.array(u)) == pytest.approx(expected)
    ubar = np.mean(u)
    by_hand = math.sqrt(sum((x - ubar) ** 2 for x in u) / (len(u) - 1)) / ubar
    assert coefficient_of_variation(np.array(u)) == pytest.approx(by_hand)


def test_cv_scale_invariant() -> None:
    u = np.array([0.1, 0.4, 0.2, 0.05])
    assert coefficient_of_variation(u * 7) == pytest.approx(coefficient_of_variation(u))


def test_cv_zero_mean_with_nonzero_utilities_is_inf() -> None:
    assert coefficient_of_variation(np.array([1.0, -1.0])) == math.inf


@pytest.mark.parametrize(
    ("u", "c", "expected"),
    [
        ([0.25, 0.25, 0.25, 0.25], 0.25, 1.0),
        ([0.5, 0.0, 0.0, 0.0], 0.25, 0.5),
        ([1.0, 1.0], 0.25, 1.0),  # clipped above
        ([-0.5, 0.0], 0.25, 0.0),  # clipped below
        ([0.0015, 0.0015], 0.003, 0.5),
    ],
)
def test_utilization_clipping(u: list[float], c: float, expected: float) -> None:
    assert utilization(np.array(u), c) == pytest.approx(expected)


def test_utilization_rejects_bad_c() -> None:
    with pytest.raises(ValueError, match="max_fair_utility must be > 0"):
        utilization(np.ones(2), 0.0)


def test_fairness_report_fields() -> None:
    r = fairness_report(["a", "b", "c", "d"], np.array([0.5, 0.25, 0.0, 0.25]), 0.25, 8)
    assert r.per_agent_utility == {"a": 0.5, "b": 0.25, "c": 0.0, "d": 0.25}
    assert r.average_utility == 0.25
    assert r.utilization == 1.0
    assert (r.min_utility, r.max_utility, r.steps) == (0.0, 0.5, 8)
    assert r.cv == pytest.approx(np.std([0.5, 0.25, 0, 0.25], ddof=1) / 0.25)
    d = r.as_dict()
    assert d["cv"] == r.cv and d["per_agent_utility"] == r.per_agent_utility
    with pytest.raises(ValueError, match="expected 4 utilities"):
        fairness_report(["a", "b", "c", "d"], np.zeros(3), 0.25, 1)


def test_tracker_accumulates() -> None:
    t = FairnessTracker(["a", "b"], max_fair_utility=0.5)
    assert t.report().cv == 0.0 and t.report().average_utility == 0.0  # before any step
    t.update({"a": 1.0, "b": 0.0})
    t.update({"a": 1.0})  # b missing: 0 this step
    t.update({"a": 0.0, "b": 1.0})
    t.update({"a": 0.0, "b": 0.0})
    assert t.steps == 4
    np.testing.assert_allclose(t.utilities, [0.5, 0.25])
    r = t.report()
    assert r.average_utility == pytest.approx(0.375)
    assert r.utilization == pytest.approx(0.75)
    assert r.cv == pytest.approx(np.std([0.5, 0.25], ddof=1) / 0.375)
    assert (r.min_utility, r.max_utility) == (0.25, 0.5)
    t.reset()
    assert t.steps == 0 and t.reward_sums.tolist() == [0.0, 0.0]


def test_tracker_unknown_agent_and_bad_construction() -> None:
    t = FairnessTracker(["a", "b"], 0.25)
    with pytest.raises(ValueError, match="unknown agent 'z'.*\\['a', 'b'\\]"):
        t.update({"z": 1.0})
    with pytest.raises(ValueError, match="at least one agent"):
        FairnessTracker([], 0.25)
    with pytest.raises(ValueError, match="max_fair_utility must be > 0"):
        FairnessTracker(["a"], -1.0)


def test_tracker_agrees_with_env_bookkeeping() -> None:
    env = marl_envs.make("job_scheduling", max_cycles=200)
    tracker = FairnessTracker(env.possible_agents, env.max_fair_utility)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    while env.agents:
        acts = dict(zip(env.agents, rng.integers(0, 5, len(env.agents)).tolist(), strict=True))
        _, rewards, *_ = env.step(acts)
        tracker.update(rewards)
    assert tracker.report() == env.fairness_report()


def test_report_scalars_are_flat_and_name_every_agent():
    from marl_envs.metrics import fairness_report

    report = fairness_report(["a", "b"], np.array([0.2, 0.6]), 0.5, 10)
    assert report.scalars() == {
        "utilization": report.utilization, "cv": report.cv,
        "average_utility": report.average_utility, "min_utility": 0.2, "max_utility": 0.6,
        "utility/a": 0.2, "utility/b": 0.6,
    }
