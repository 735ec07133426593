"""Argument validation of the environments (issue 24, items 4-6) and the shared helper.

The fuzz test over every argument of every env is ``tests/test_env_fuzz.py``; this file
holds the cases the issue names, the seed checks of ``reset`` and the live-recommendation
episodes in which nobody is online at first.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test

import marl_envs
from marl_envs.live_recommendation import LiveRecEnv
from marl_envs.live_recommendation_v0 import env as liverec_aec_env
from marl_envs.validation import (
    ArgumentTypeError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_int_pair,
    check_int_table,
    check_seed,
)

#: small, fast instances of every registered env
SMALL: dict[str, dict[str, Any]] = {
    "job_scheduling": {"max_cycles": 50},
    "matthew_effect": {"max_cycles": 50},
    "manufacturing_plant": {"max_cycles": 50},
    "chain0101": {"n_agents": 4, "horizon": 50},
    "gem_mining": {"n_villages": 5, "horizon": 50},
    "wind_farm": {"horizon": 50},
    "resource_allocation": {"max_cycles": 30},
    "live_recommendation": {"n_users": 10, "n_streamers": 12, "days": 1},
}


def _finite(x: Any) -> bool:
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    return bool(np.isfinite(np.asarray(x, dtype=np.float64)).all())


# ------------------------------------------------------------------ the helper
def test_check_int() -> None:
    assert check_int("n", 3, low=1) == 3
    assert type(check_int("n", np.int64(3), low=1)) is int
    assert check_int("n", None, none_ok=True) is None
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        check_int("n", 0, low=1)
    with pytest.raises(ValueError, match=r"^n must be an integer in 1\.\.4, got 5$"):
        check_int("n", 5, low=1, high=4)
    for bad in (True, np.bool_(True), 2.5, 2.0, math.nan, "3", None, [3], np.float64(2)):
        with pytest.raises(TypeError, match=r"^n must be an integer >= 1, got .* of type"):
            check_int("n", bad, low=1)
    # a type error is also a ValueError, for callers that catch ValueError
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


def test_check_float() -> None:
    assert check_float("x", 1, low=0.0) == 1.0 and type(check_float("x", 1)) is float
    assert check_float("x", np.float32(0.5), low=0.0, high=1.0) == 0.5
    for bad in (math.nan, math.inf, -math.inf, np.float64("nan"), 10**400):
        with pytest.raises(ValueError, match=r"^x must be a finite number > 0, got"):
            check_float("x", bad, low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"x must be a finite number in \(0, 1\], got 0$"):
        check_float("x", 0, low=0.0, high=1.0, low_open=True)
    with pytest.raises(ValueError, match=r"x must be a finite number in \[0, 1\), got 1$"):
        check_float("x", 1, low=0.0, high=1.0, high_open=True)
    for bad in ("1", None, True, [1.0], 1j):
        with pytest.raises(TypeError, match="x must be a finite number"):
            check_float("x", bad)


def test_check_bool_choice_pair_table_seed() -> None:
    assert check_bool("b", np.bool_(False)) is False
    for bad in (1, 0, "True", None):
        with pytest.raises(TypeError, match="b must be True or False"):
            check_bool("b", bad)
    assert check_choice("c", "a", ["a", "b"]) == "a"
    assert check_choice("c", None, ["a"], none_ok=True) is None
    with pytest.raises(ValueError, match=r"c='z' is not supported; allowed: \['a', 'b'\]$"):
        check_choice("c", "z", ["a", "b"])
    with pytest.raises(TypeError, match=r"c must be one of \['a'\], got 5"):
        check_choice("c", 5, ["a"])
    assert check_int_pair("p", [1, 2], low=1) == (1, 2)
    for bad in ((2, 1), (0, 1), (1, 2, 3), (1, 30)):
        with pytest.raises(ValueError, match=r"p must be a pair of integers \(lo, hi\)"):
            check_int_pair("p", bad, low=1, high=20)
    for bad in ((1.5, 2), (True, 2), "1,2", 3):
        with pytest.raises(TypeError, match=r"p must be a pair of integers"):
            check_int_pair("p", bad, low=1)
    assert check_int_table("t", [[1, 0], [np.int64(2), 1]]).tolist() == [[1, 0], [2, 1]]
    for bad in ([[True, 1]], [[1.0, 1]], "ab", 5, np.ones((2, 2))):
        with pytest.raises(TypeError, match="t must be a non-empty 2-D table of integers"):
            check_int_table("t", bad)
    for bad in ([], [[1], [1, 2]], [1, 2], [[-1, 1]], np.zeros((0, 2), dtype=int)):
        with pytest.raises(ValueError, match="t must be a non-empty 2-D table of integers"):
            check_int_table("t", bad)
    assert check_seed(None) is None and check_seed(np.uint32(7)) == 7


# ------------------------------------------------------- the cases (item 4)
@pytest.mark.parametrize(("name", "kwargs", "error", "match"), [
    ("job_scheduling", {"max_cycles": math.nan}, TypeError,
     r"max_cycles must be an integer >= 1, got nan"),
    ("job_scheduling", {"max_cycles": 0}, ValueError, r"max_cycles must be an integer >= 1"),
    ("job_scheduling", {"grid_size": 2}, ValueError, r"grid_size must be an integer >= 3"),
    ("wind_farm", {"wind_speed": math.nan}, ValueError,
     r"wind_speed must be a finite number > 0, got nan"),
    ("wind_farm", {"turbulence_intensity": -1}, ValueError,
     r"turbulence_intensity must be a finite number in \[0, 1\], got -1"),
    ("wind_farm", {"wind_speed_std": 10.0}, ValueError,
     r"wind_speed_std must be a finite number in \[0, 6\.24.*got 10\.0"),
    ("matthew_effect", {"growth": math.nan}, ValueError,
     r"growth must be a finite number in \[0, 1\], got nan"),
    ("matthew_effect", {"max_size": 0.005}, ValueError,
     r"max_size must be .*\(at least min_size=0\.01\)"),
    ("manufacturing_plant", {"gem_reward": math.nan}, ValueError,
     r"gem_reward must be a finite number >= 0, got nan"),
    ("manufacturing_plant", {"max_gems": -1}, ValueError,
     r"max_gems must be an integer >= 0, got -1"),
    ("manufacturing_plant", {"requirements": [[1.5, 1]]}, TypeError,
     r"requirements must be a non-empty 2-D table of integers"),
    ("gem_mining", {"n_villages": 2.5}, TypeError,
     r"n_villages must be None or an integer >= 1, got 2\.5"),
    ("gem_mining", {"instance_seed": -1}, ValueError, r"instance_seed must be an integer >= 0"),
    ("chain0101", {"n_agents": True}, TypeError, r"n_agents must be an integer >= 2, got True"),
    ("resource_allocation", {"load": math.inf}, ValueError,
     r"load must be a finite number > 0, got inf"),
    ("resource_allocation", {"team_reward": 1}, TypeError, r"team_reward must be True or False"),
    ("resource_allocation", {"n_slots": np.float64(3)}, TypeError,
     r"n_slots must be an integer >= 1, got 3\.0"),
    ("live_recommendation", {"like_bonus": math.nan}, ValueError,
     r"like_bonus must be a finite number in \[0, 1e\+06\], got nan"),
    ("live_recommendation", {"beta_pref": -math.inf}, ValueError, r"beta_pref must be"),
    ("live_recommendation", {"n_users": 2.5}, TypeError, r"n_users must be None or an integer"),
    ("live_recommendation", {"world_seed": -3}, ValueError, r"world_seed must be an integer >= 0"),
])
def test_bad_constructor_arguments_named(
    name: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as e:
        marl_envs.make(name, **kwargs)
    if error is ValueError:  # a bad value of the right type is not a TypeError
        assert not isinstance(e.value, TypeError)


def test_wind_speed_without_power_is_rejected() -> None:
    """Below the turbines' cut-in speed the farm makes no power: the rewards would be 0/0."""
    with pytest.raises(ValueError, match=r"wind_speed=1 m/s .* no power .* cut-in \(3 m/s\)"):
        marl_envs.make("wind_farm", wind_speed=1.0)


def test_numpy_scalars_accepted_like_python_ones() -> None:
    a = marl_envs.make("job_scheduling", n_agents=np.int64(3), grid_size=np.uint8(5),
                       max_cycles=np.int32(20))
    b = marl_envs.make("job_scheduling", n_agents=3, grid_size=5, max_cycles=20)
    assert a.reset(seed=1)[0].keys() == b.reset(seed=1)[0].keys()
    assert type(a.max_cycles) is int and a.grid_size == 5
    m = marl_envs.make("matthew_effect", growth=np.float32(0.25), max_cycles=np.int64(5))
    assert m.growth == 0.25 and type(m.growth) is float
    r = marl_envs.make("resource_allocation", small_duration=[1, 2], load=np.float16(0.5))
    assert r.small_duration == (1, 2)


def test_bandit_env_arguments_in_policies_style() -> None:
    """The calls policies/mauce makes (numpy-derived ints, None villages) still work."""
    seeds = np.random.SeedSequence(0).generate_state(3) % (2**31)
    env = marl_envs.make("gem_mining", instance_seed=int(seeds[2]), n_villages=None,
                         horizon=10)
    env2 = marl_envs.make("gem_mining", instance_seed=seeds[2], n_villages=np.int64(6),
                          horizon=np.int64(10))
    assert env.n_agents >= 5 and env2.n_agents == 6


# ------------------------------------------------------------------ seeds (item 6)
@pytest.mark.parametrize("name", marl_envs.ENV_NAMES)
def test_reset_seed_must_be_none_or_a_non_negative_int(name: str) -> None:
    env = marl_envs.make(name, **SMALL[name])
    for bad, error in ((-1, ValueError), (np.int64(-5), ValueError), ("abc", TypeError),
                       (1.5, TypeError), (True, TypeError), (math.nan, TypeError),
                       ([1], TypeError)):
        with pytest.raises(error, match=r"seed must be None or an integer >= 0, got") as e:
            env.reset(seed=bad)
        if error is ValueError:
            assert not isinstance(e.value, TypeError)
    first = env.reset(seed=np.uint32(3))
    again = env.reset(seed=3)
    assert first[0].keys() == again[0].keys()
    for a in first[0]:
        o1, o2 = first[0][a], again[0][a]
        if isinstance(o1, dict):
            o1, o2 = o1["observation"], o2["observation"]
        assert np.array_equal(o1, o2)
    env.reset(seed=None)  # keeps the stream


# --------------------------------------------- live recommendation: no one online (item 5)
def test_liverec_reset_with_nobody_online_over_many_seeds() -> None:
    """1 user x 2 streamers: in about a third of the draws nobody is online while a
    streamer is live (it used to raise IndexError at reset); the env redraws them."""
    env = marl_envs.make("live_recommendation", n_users=1, n_streamers=2)
    redrawn = 0
    for seed in range(150):
        obs, infos = env.reset(seed=seed)
        assert env.agents and set(obs) == set(infos) == set(env.agents), seed
        redrawn += env.redraws > 0
        steps = 0
        while env.agents:
            obs, rewards, terms, truncs, infos = env.step(dict.fromkeys(env.agents, 1))
            assert all(math.isfinite(r) for r in rewards.values())
            assert all(_finite(o) for o in obs.values())
            steps += 1
            assert steps <= env.max_slots + 1
        assert env.processed_slots >= 1
        assert all(math.isfinite(v) for v in env.episode_stats().values())
    assert redrawn >= 20  # the case did occur (and was handled)


def test_liverec_redrawn_episodes_are_seeded() -> None:
    a = marl_envs.make("live_recommendation", n_users=1, n_streamers=2)
    b = marl_envs.make("live_recommendation", n_users=1, n_streamers=2)
    for seed in range(30):
        oa, _ = a.reset(seed=seed)
        ob, _ = b.reset(seed=seed)
        assert a.redraws == b.redraws and a.slot == b.slot and a.agents == b.agents
        assert all(np.array_equal(oa[k], ob[k]) for k in oa)


@pytest.mark.parametrize("mask", [False, True])
def test_liverec_tiny_world_passes_pettingzoo_tests(mask: bool) -> None:
    env = marl_envs.make("live_recommendation", n_users=1, n_streamers=2, action_mask=mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sessions that never happen are not terminated
        for seed in range(4):
            env.reset(seed=seed)
            parallel_api_test(env, num_cycles=200)
        api_test(liverec_aec_env(n_users=1, n_streamers=2), num_cycles=100)


def _night_only_world(k: int = 3, n: int = 2) -> dict[str, Any]:
    return {
        "affinity": np.ones((n, k)),
        "days": np.ones((k, 7), dtype=bool),
        "start": np.zeros(k, dtype=np.int64),  # 00:00 ..
        "duration": np.full(k, 6, dtype=np.int64),  # .. 01:00, while users sleep
    }


def test_liverec_world_without_any_decision_slot_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"no slot of the day can have a user online while a "
                                         r"streamer is live .*streamers live at 00:00-01:"):
        LiveRecEnv(fitted=_night_only_world())
    world = _night_only_world()
    world["start"] = np.full(3, 70)  # 11:40: users are online then
    env = LiveRecEnv(fitted=world)
    env.reset(seed=0)
    assert env.agents


@pytest.mark.parametrize(("change", "match"), [
    ({"affinity": np.full((2, 3), np.nan)}, r"fitted\['affinity'\] must hold finite"),
    ({"start": np.full(3, 144)}, r"fitted\['start'\] must hold integers in 0\.\.143"),
    ({"duration": np.zeros(3, dtype=int)}, r"fitted\['duration'\] must hold integers >= 1"),
    ({"days": np.ones((3, 6), dtype=bool)}, r"fitted\['days'\] must be a \(3, 7\) table"),
    ({"start": np.full(3, 70.5)}, r"fitted\['start'\] must be 3 integers"),
])
def test_liverec_fitted_parameters_are_checked(change: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LiveRecEnv(fitted={**_night_only_world(), **change})
    with pytest.raises(TypeError, match="fitted must be None or a mapping"):
        LiveRecEnv(fitted=[1, 2])
