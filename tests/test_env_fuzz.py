"""Fuzz every environment's constructor, ``reset`` and ``step`` with generated bad values.

For each constructor argument of each env, :data:`SPECS` states what it accepts (its
kind and range); :func:`bad_values` generates values outside that (nan, +-inf, -1, 0 or
the value just past a bound, 2.5 and True for integers, strings, None where it is not
allowed, ...) with the error each must raise: a ``TypeError`` for a value of the wrong
type, a ``ValueError`` (and not a ``TypeError``) for a value of the right type out of
range, whose message names the argument and shows the value. The boundary values of the
same spec must construct an env that runs with finite rewards and observations.
``step`` gets unknown and missing agents, out-of-range actions, nan, wrong types and
non-dict actions; after them the env must be exactly as before (a failed ``step``
changes nothing). Every construction and run is under a deadline (no hang).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import marl_envs
from marl_envs.validation import show

NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class Int:
    low: int | None = None
    high: int | None = None
    none_ok: bool = False


@dataclass(frozen=True)
class Float:
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none_ok: bool = False
    #: valid values to run instead of the boundaries (where the env's range is narrower
    #: than a static bound can say, e.g. wind speeds the turbines make power at)
    valid: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Bool:
    pass


@dataclass(frozen=True)
class Choice:
    choices: tuple[Any, ...]
    none_ok: bool = False


@dataclass(frozen=True)
class Pair:
    low: int
    high: int | None = None


@dataclass(frozen=True)
class Table:
    pass


@dataclass(frozen=True)
class Fitted:
    pass


RENDER = Choice(("human", "ansi", "rgb_array"), none_ok=True)
LIM = 1e6


def _fitted(n: int = 3, k: int = 4, start: int = 70) -> dict[str, Any]:
    return {"affinity": np.ones((n, k)), "days": np.ones((k, 7), dtype=bool),
            "start": np.full(k, start), "duration": np.full(k, 12)}


#: per env: the keyword arguments every construction starts from, and every argument's spec
SPECS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "job_scheduling": ({"max_cycles": 20}, {
        "n_agents": Int(1), "grid_size": Int(3), "max_cycles": Int(1), "render_mode": RENDER,
    }),
    "matthew_effect": ({"max_cycles": 20}, {
        "n_agents": Int(1), "n_ghosts": Int(1),
        "min_size": Float(0.0, 1.0, low_open=True), "size_spread": Float(0.0, 1.0),
        "base_speed": Float(0.0, 1.0), "growth": Float(0.0, 1.0),
        "max_size": Float(0.01, 1.0),  # low: min_size
        "max_cycles": Int(1), "max_fair_utility": Float(0.0, low_open=True),
        "render_mode": RENDER,
    }),
    "manufacturing_plant": ({"max_cycles": 20}, {
        "requirements": Table(), "grid_size": Int(3), "n_gems": Int(1),
        "gem_reward": Float(0.0), "product_reward": Float(0.0), "max_gems": Int(0),
        "max_cycles": Int(1), "max_fair_utility": Float(0.0, low_open=True),
        "render_mode": RENDER,
    }),
    "chain0101": ({"n_agents": 4, "horizon": 20}, {
        "n_agents": Int(2), "horizon": Int(1), "render_mode": RENDER,
    }),
    "gem_mining": ({"n_villages": 5, "horizon": 20}, {
        "instance_seed": Int(0), "n_villages": Int(1, none_ok=True), "normalise": Bool(),
        "horizon": Int(1), "render_mode": RENDER,
    }),
    "wind_farm": ({"horizon": 20}, {
        "wind_speed": Float(0.0, low_open=True, valid=(3.0, 25.0)),
        "wind_speed_std": Float(0.0, 8.0 / 1.2816),  # high: every sampled speed >= 0
        "turbulence_intensity": Float(0.0, 1.0), "horizon": Int(1), "render_mode": RENDER,
    }),
    "resource_allocation": ({}, {
        "n_agents": Int(1), "load": Float(0.0, low_open=True), "n_resources": Int(1),
        "capacity": Int(1), "n_slots": Int(1), "backlog_size": Int(0), "horizon": Int(1),
        "max_cycles": Int(1), "arrival_cycles": Int(1, 200, none_ok=True),
        "obs_layout": Choice(("flat", "image")), "small_job_prob": Float(0.0, 1.0),
        "small_duration": Pair(1), "large_duration": Pair(1),
        "dominant_demand": Pair(0, 20), "other_demand": Pair(0, 20),
        "reward_scale": Float(0.0, low_open=True), "team_reward": Bool(),
        "action_mask": Bool(), "render_mode": RENDER,
    }),
    "live_recommendation": ({"n_users": 10, "n_streamers": 12, "days": 1}, {
        "n_users": Int(1, none_ok=True), "n_streamers": Int(2, none_ok=True),
        "days": Int(1, none_ok=True), "preset": Choice(("default", "large")),
        "n_topics": Int(1), "sessions_per_day": Int(1, 4), "action_mask": Bool(),
        "patience": Int(1), "min_exposure": Int(0), "like_bonus": Float(0.0, LIM),
        "like_threshold": Float(-LIM, LIM), "beta_pref": Float(-LIM, LIM),
        "beta_quality": Float(-LIM, LIM), "beta_repeat": Float(-LIM, LIM),
        "beta_audience": Float(-LIM, LIM), "outside_utility": Float(-LIM, LIM),
        "schedule_jitter": Int(0, 143), "initial_history": Int(0),
        "exposure_fairness": Float(0.0, LIM), "world_seed": Int(0), "fitted": Fitted(),
        "render_mode": RENDER,
    }),
}

#: other arguments a valid boundary value needs (the constraints between arguments),
#: by (env, argument, shown value)
JOINT: dict[tuple[str, str, str], dict[str, Any]] = {
    ("matthew_effect", "min_size", "1.0"): {"max_size": 1.0},
    ("resource_allocation", "capacity", "1"): {"dominant_demand": (0, 1),
                                               "other_demand": (0, 1)},
    ("resource_allocation", "arrival_cycles", "200"): {"max_cycles": 200},
    # small jobs: the default load would need more than one arrival per step
    ("resource_allocation", "dominant_demand", "(0, 0)"): {"load": 0.3},
}


def bad_values(spec: Any) -> list[tuple[Any, type[Exception]]]:
    """``(value, error)`` pairs: TypeError for a wrong type, ValueError for a bad value."""
    t, v = TypeError, ValueError
    out: list[tuple[Any, type[Exception]]] = []
    if isinstance(spec, Int):
        out += [(x, t) for x in (NAN, INF, -INF, 2.5, 3.0, np.float64(2.0), True, False, "3",
                                 [1], 1j)]
        if not spec.none_ok:
            out.append((None, t))
        if spec.low is not None:
            lows = [spec.low - 1, spec.low - 10**30, np.int64(spec.low - 1)]
            lows += [x for x in (-1, 0) if x < spec.low - 1]
            out += [(x, v) for x in lows]
        if spec.high is not None:
            out += [(spec.high + 1, v), (10**30, v)]
    elif isinstance(spec, Float):
        out += [(x, t) for x in ("0.5", [0.5], True, 1j)]
        if not spec.none_ok:
            out.append((None, t))
        out += [(x, v) for x in (NAN, INF, -INF, np.float32("nan"), np.float64(-np.inf))]
        if spec.low is not None:
            out.append((spec.low if spec.low_open else spec.low - 1, v))
            if -1 < spec.low or (-1 == spec.low and spec.low_open):
                out.append((-1, v))
        if spec.high is not None:
            out.append((spec.high if spec.high_open else spec.high + 1, v))
    elif isinstance(spec, Bool):
        out += [(x, t) for x in (1, 0, 1.0, "True", None)]
    elif isinstance(spec, Choice):
        out += [("nope", v), (5, t), (b"ansi", t)]
        if not spec.none_ok:
            out.append((None, t))
    elif isinstance(spec, Pair):
        out += [(x, t) for x in (5, "1,2", None, (1.5, 2), (True, 2), (spec.low, NAN))]
        out += [((spec.low - 1, spec.low), v), ((spec.low + 1, spec.low), v),
                ((spec.low, spec.low, spec.low), v), ((spec.low,), v)]
        if spec.high is not None:
            out.append(((spec.low, spec.high + 1), v))
    elif isinstance(spec, Table):
        out += [(x, t) for x in (5, "ab", None, [[1.5, 1]], [[True, 1]], [["1"]])]
        out += [(x, v) for x in ([], [[-1, 1]], [1, 2], [[1], [1, 2]], [[0, 0]])]
    elif isinstance(spec, Fitted):
        out += [("x", t), (5, t), ([1], t)]
        out += [({}, v), ({**_fitted(), "affinity": np.full((3, 4), np.nan)}, v),
                ({**_fitted(), "start": np.full(4, -1)}, v),
                ({**_fitted(), "days": np.ones((4, 3))}, v)]
    else:  # pragma: no cover - a spec kind without a generator
        raise AssertionError(spec)
    return out


def valid_values(spec: Any) -> list[Any]:
    """The boundary values of a spec (they must construct and run)."""
    if isinstance(spec, Int):
        return [x for x in (spec.low, spec.high) if x is not None] + (
            [None] if spec.none_ok else [])
    if isinstance(spec, Float):
        if spec.valid is not None:
            return list(spec.valid)
        out = []
        if spec.low is not None:
            out.append(spec.low + 1e-9 if spec.low_open else spec.low)
        if spec.high is not None:
            out.append(spec.high - 1e-9 if spec.high_open else spec.high)
        return out
    if isinstance(spec, Bool):
        return [True, False]
    if isinstance(spec, Choice):
        return list(spec.choices) + ([None] if spec.none_ok else [])
    if isinstance(spec, Pair):
        return [(spec.low, spec.low)] + ([(spec.low, spec.high)] if spec.high is not None else [])
    if isinstance(spec, Table):
        return [[[1]], [[0, 2], [1, 0]]]
    if isinstance(spec, Fitted):
        return [None, _fitted()]
    raise AssertionError(spec)  # pragma: no cover


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no result within {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _observation(o: Any) -> np.ndarray:
    return np.asarray(o["observation"] if isinstance(o, dict) else o, dtype=np.float64)


def run_checked(env: Any, seed: int, steps: int) -> None:
    """Reset and play random actions for up to ``steps`` steps: everything finite."""
    obs, infos = env.reset(seed=seed)
    assert env.agents and set(obs) == set(env.agents)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        assert all(np.isfinite(_observation(o)).all() for o in obs.values())
        if not env.agents:
            break
        actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        assert all(math.isfinite(r) for r in rewards.values()), rewards


def _cases(kind: str) -> list[Any]:
    out = []
    for name, (_, specs) in SPECS.items():
        for arg, spec in specs.items():
            values = bad_values(spec) if kind == "bad" else [(v, None) for v in valid_values(spec)]
            for value, error in values:
                out.append(pytest.param(name, arg, value, error, id=f"{name}-{arg}-{show(value)}"))
    return out


@pytest.mark.parametrize("name", marl_envs.ENV_NAMES)
def test_specs_cover_every_constructor_argument(name: str) -> None:
    base, specs = SPECS[name]
    cls = type(marl_envs.make(name, **base))
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert set(specs) == set(params)


@pytest.mark.parametrize(("name", "arg", "value", "error"), _cases("bad"))
def test_bad_argument_is_rejected_by_name(name: str, arg: str, value: Any,
                                          error: type[Exception]) -> None:
    base, _ = SPECS[name]
    with deadline(20), pytest.raises((TypeError, ValueError)) as e:
        marl_envs.make(name, **{**base, arg: value})
    assert isinstance(e.value, error), f"{type(e.value).__name__}: {e.value}"
    if error is ValueError:
        assert not isinstance(e.value, TypeError), f"{type(e.value).__name__}: {e.value}"
    msg = str(e.value)
    assert arg in msg, msg
    if isinstance(value, str | int | float | type(None)):
        assert show(value) in msg, msg  # the message shows the value it got


@pytest.mark.parametrize(("name", "arg", "value", "error"), _cases("valid"))
def test_boundary_values_construct_and_run(name: str, arg: str, value: Any,
                                           error: None, capsys: Any) -> None:
    base, _ = SPECS[name]
    kwargs = {**base, arg: value, **JOINT.get((name, arg, show(value)), {})}
    if name == "live_recommendation" and arg == "fitted" and value is not None:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("n_users", "n_streamers")}
    with deadline(30):
        env = marl_envs.make(name, **kwargs)
        run_checked(env, seed=0, steps=25)
        run_checked(env, seed=1, steps=25)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("name", marl_envs.ENV_NAMES)
def test_bad_steps_and_seeds_are_rejected_and_change_nothing(name: str) -> None:
    base, _ = SPECS[name]
    env, twin = marl_envs.make(name, **base), marl_envs.make(name, **base)
    env.reset(seed=0)
    twin.reset(seed=0)
    good = dict.fromkeys(env.agents, 0)
    first = env.agents[0]
    n = env.action_space(first).n
    cases: list[tuple[Any, type[Exception], str]] = [
        ([0] * len(good), TypeError, "actions"),
        (None, TypeError, "actions"),
        ("agent_0", TypeError, "actions"),
        ({**good, "bob": 0}, ValueError, "'bob'"),
        ({a: x for a, x in good.items() if a != first}, ValueError, first),
        ({}, ValueError, first),
    ]
    for bad, error in ((n, ValueError), (-1, ValueError), (10**30, ValueError),
                       (np.int64(n), ValueError), (NAN, TypeError), (1.5, TypeError),
                       ("0", TypeError), (None, TypeError), (True, TypeError),
                       ([0], TypeError), (np.array([0]), TypeError), (np.float32(0), TypeError),
                       (INF, TypeError)):
        cases.append(({**good, first: bad}, error, first))
    with deadline(20):
        for actions, error, named in cases:
            with pytest.raises((TypeError, ValueError)) as e:
                env.step(actions)
            assert isinstance(e.value, error), f"{actions!r}: {type(e.value).__name__} {e.value}"
            if error is ValueError:
                assert not isinstance(e.value, TypeError), f"{actions!r}: {e.value}"
            assert named in str(e.value), str(e.value)
        for seed, error in ((-1, ValueError), ("abc", TypeError), (1.5, TypeError),
                            (NAN, TypeError), (False, TypeError)):
            with pytest.raises(error, match=rf"seed must be None or an integer >= 0, got "
                                            rf"{show(seed)}"):
                env.reset(seed=seed)
        # nothing above changed the episode: the same step gives the same result
        assert _same(env.step(good), twin.step(good))
        run_checked(env, seed=2, steps=30)
