"""Tests of the three FEN environments against ``../shared/specs/fen.md``.

PettingZoo's own checks run on every FEN env; the dynamics are pinned down by
small hand-built scenarios (internal numpy state set directly) and by naive
step-by-step reference implementations of the spec, replayed against the envs.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test

import marl_envs
from marl_envs import job_scheduling_v0, manufacturing_plant_v0, matthew_effect_v0
from marl_envs.benchmark import (
    FEN_ENV_NAMES,
    benchmark_env,
    markdown_report,
    random_action_dicts,
)
from marl_envs.job_scheduling_v0 import JobSchedulingEnv
from marl_envs.manufacturing_plant_v0 import ManufacturingPlantEnv
from marl_envs.matthew_effect_v0 import MatthewEffectEnv

MODULES = {
    "job_scheduling": job_scheduling_v0,
    "matthew_effect": matthew_effect_v0,
    "manufacturing_plant": manufacturing_plant_v0,
}
#: keyword arguments that keep each env's PettingZoo checks short
SHORT = {
    "job_scheduling": {"max_cycles": 300},
    "matthew_effect": {"max_cycles": 300},
    "manufacturing_plant": {"max_cycles": 300},
}
STAY, XM, XP, YM, YP = range(5)  # the five actions

# the plant keeps positions shifted by this much inside its padded grids
PLANT_SHIFT = 1


def _pettingzoo_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "pettingzoo" in w.filename]


def joint(env: Any, *acts: int) -> dict[str, int]:
    return dict(zip(env.possible_agents, acts, strict=True))


def stay(env: Any) -> dict[str, int]:
    return dict.fromkeys(env.possible_agents, STAY)


# ---------------------------------------------------------------- registry / API


def test_registry_lists_the_fen_envs() -> None:
    assert set(FEN_ENV_NAMES) <= set(marl_envs.ENV_NAMES)
    for name in FEN_ENV_NAMES:
        assert marl_envs.env_module(name) is MODULES[name]
        assert isinstance(marl_envs.make(name), MODULES[name].parallel_env().__class__)


def test_make_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown environment 'nope'.*job_scheduling"):
        marl_envs.make("nope")


@pytest.mark.parametrize(
    ("name", "n_agents", "obs_dim", "max_cycles", "c"),
    [
        ("job_scheduling", 4, 13, 1000, 0.25),
        ("matthew_effect", 10, 6, 1000, 0.15),
        ("manufacturing_plant", 5, 30, 10000, 0.003),
    ],
)
def test_paper_defaults(name: str, n_agents: int, obs_dim: int, max_cycles: int, c: float) -> None:
    env = marl_envs.make(name)
    assert env.possible_agents == [f"agent_{i}" for i in range(n_agents)]
    assert env.max_cycles == max_cycles
    assert env.max_fair_utility == pytest.approx(c)
    for agent in env.possible_agents:
        assert env.action_space(agent) == spaces.Discrete(5)
        assert env.observation_space(agent).shape == (obs_dim,)
        assert env.observation_space(agent).dtype == np.float32
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(infos) == set(env.possible_agents)
    for agent, o in obs.items():
        assert o.shape == (obs_dim,) and o.dtype == np.float32
        assert env.observation_space(agent).contains(o)


def test_plant_defaults() -> None:
    env = ManufacturingPlantEnv()
    assert env.requirements.tolist() == [[2, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 1, 2]]
    assert (env.grid_size, env.n_gems, env.n_gem_types, env.max_gems) == (8, 8, 3, 700)
    assert (env.gem_reward, env.product_reward) == (0.1, 1.0)
    m = MatthewEffectEnv()
    assert (m.n_ghosts, m.min_size, m.size_spread, m.base_speed, m.growth, m.max_size) == (
        3, 0.01, 0.04, 0.01, 0.005, 0.15,
    )
    assert JobSchedulingEnv().grid_size == 5


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_pettingzoo_parallel_api(name: str) -> None:
    env = marl_envs.make(name, **SHORT[name])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=SHORT[name]["max_cycles"])
    assert _pettingzoo_warnings(record) == []


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_pettingzoo_aec_api(name: str) -> None:
    env = MODULES[name].env(**SHORT[name])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        api_test(env, num_cycles=100)
    assert _pettingzoo_warnings(record) == []


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_pettingzoo_parallel_seed(name: str) -> None:
    module = MODULES[name]
    parallel_seed_test(lambda: module.parallel_env(**SHORT[name]), num_cycles=300)


#: small instances of every registered env, for PettingZoo's render_test
RENDER_KWARGS: dict[str, dict[str, Any]] = {
    **SHORT,
    "chain0101": {"n_agents": 4, "horizon": 50},
    "gem_mining": {"n_villages": 5, "horizon": 50},
    "wind_farm": {"horizon": 50},
    "resource_allocation": {"max_cycles": 30},
    "live_recommendation": {"n_users": 10, "n_streamers": 12, "days": 1},
}


def test_render_kwargs_cover_every_env() -> None:
    assert set(RENDER_KWARGS) == set(marl_envs.ENV_NAMES)


@pytest.mark.parametrize("name", marl_envs.ENV_NAMES)
def test_pettingzoo_render_test_as_is(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """PettingZoo's own render_test, unmodified, on the AEC form of every env: it builds the
    env with render_mode="human" first, then renders every mode of metadata["render_modes"]
    (human prints the ANSI frame and returns None)."""
    env_fn = functools.partial(marl_envs.env_module(name).env, **RENDER_KWARGS[name])
    assert env_fn().metadata["render_modes"] == ["human", "ansi", "rgb_array"]
    render_test(env_fn)
    printed = capsys.readouterr().out
    assert printed.count("\n") >= 5  # five frames printed by "human"


@pytest.mark.parametrize("name", marl_envs.ENV_NAMES)
def test_render_modes_human_ansi_rgb(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    frames = {}
    for mode in ("human", "ansi", "rgb_array"):
        env = marl_envs.make(name, render_mode=mode, **RENDER_KWARGS[name])
        env.reset(seed=0)
        env.step(dict.fromkeys(env.agents, 0))
        frames[mode] = env.render()
    assert frames["human"] is None
    assert capsys.readouterr().out == frames["ansi"]  # human prints the ANSI frame
    assert isinstance(frames["ansi"], str) and "\n" in frames["ansi"]
    img = frames["rgb_array"]
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_pettingzoo_render_content(name: str) -> None:
    render_test(
        functools.partial(MODULES[name].env, **SHORT[name]),
        custom_tests={
            "ansi": lambda res: isinstance(res, str) and "step" in res and "\n" in res,
            "rgb_array": lambda res: res.ndim == 3 and min(res.shape[:2]) >= 64,
        },
    )


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_render_none_and_bad_mode(name: str) -> None:
    env = marl_envs.make(name)
    env.reset(seed=0)
    assert env.render() is None
    with pytest.raises(ValueError, match="render_mode='rgb' is not supported.*human.*ansi"):
        marl_envs.make(name, render_mode="rgb")


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
@pytest.mark.parametrize("bad", [5, -1, 1.0, 2.5, True, "1", None, np.array([1]), np.float32(1)])
def test_invalid_action_value(name: str, bad: Any) -> None:
    env = marl_envs.make(name)
    env.reset(seed=0)
    actions: dict[str, Any] = stay(env)
    actions["agent_1"] = bad
    with pytest.raises(ValueError, match=r"agent 'agent_1'.*allowed: integers 0\.\.4"):
        env.step(actions)


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_numpy_integer_actions_accepted(name: str) -> None:
    env = marl_envs.make(name)
    env.reset(seed=0)
    actions: dict[str, Any] = {a: np.int64(i % 5) for i, a in enumerate(env.possible_agents)}
    actions["agent_0"] = np.array(4)  # 0-d array
    actions["agent_1"] = np.uint8(3)
    env.step(actions)


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_unknown_and_missing_agents(name: str) -> None:
    env = marl_envs.make(name)
    env.reset(seed=0)
    extra = {**stay(env), "agent_99": 0}
    with pytest.raises(ValueError, match=r"unknown agent id\(s\) \['agent_99'\].*agent_0"):
        env.step(extra)
    missing = stay(env)
    del missing["agent_2"]
    with pytest.raises(ValueError, match=r"missing action for agent\(s\) \['agent_2'\].*0\.\.4"):
        env.step(missing)
    with pytest.raises(ValueError, match="unknown agent id 'bob'"):
        env.observation_space("bob")
    with pytest.raises(ValueError, match="unknown agent id 'bob'"):
        env.action_space("bob")


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_unknown_keyword_argument(name: str) -> None:
    module = MODULES[name]
    for factory in (module.parallel_env, module.env, lambda **kw: marl_envs.make(name, **kw)):
        with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['colour'\].*allowed"):
            factory(colour="red")


def test_step_after_episode_end_raises() -> None:
    env = marl_envs.make("job_scheduling", max_cycles=1)
    env.reset(seed=0)
    env.step(stay(env))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(stay(env))


# ------------------------------------------------------------- reproducibility


def _rollout(name: str, seed: int, steps: int, **kw: Any) -> list[Any]:
    env = marl_envs.make(name, **kw)
    traj: list[Any] = [env.reset(seed=seed)]
    acts = np.random.default_rng(seed + 1).integers(0, 5, size=(steps, env.num_agents))
    for row in acts:
        if not env.agents:
            traj.append(env.reset())
        traj.append(env.step(joint(env, *row.tolist())))
    return traj


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_same_seed_same_trajectory(name: str) -> None:
    kw = {"max_gems": 40} if name == "manufacturing_plant" else {"max_cycles": 150}
    a = _rollout(name, 3, 400, **kw)
    b = _rollout(name, 3, 400, **kw)
    assert _same(a, b)
    c = _rollout(name, 4, 400, **kw)
    assert not _same(a, c)


@pytest.mark.parametrize("name", FEN_ENV_NAMES)
def test_reset_with_seed_restarts_the_episode(name: str) -> None:
    env = marl_envs.make(name)
    first = env.reset(seed=7)
    for _ in range(20):
        env.step(joint(env, *([XP] * env.num_agents)))
    assert _same(env.reset(seed=7), first)


# ------------------------------------------------------------- Job Scheduling


def job_with(positions: list[tuple[int, int]], resource: tuple[int, int], **kw: Any) -> Any:
    """A Job Scheduling env whose agents and resource sit where the test says."""
    env = marl_envs.make("job_scheduling", n_agents=len(positions), **kw)
    env.reset(seed=0)
    env._positions = np.array(positions, dtype=np.int64)
    env._resource = np.array(resource, dtype=np.int64)
    env._occupied[:] = False
    env._occupied[env._positions[:, 0], env._positions[:, 1]] = True
    env._holder = env._find_holder()
    return env


def job_positions(env: Any) -> list[tuple[int, int]]:
    return [tuple(p) for p in env.agent_positions.tolist()]


@pytest.mark.parametrize(
    ("start", "action", "end"),
    [
        ((3, 3), STAY, (3, 3)),
        ((3, 3), XM, (2, 3)),
        ((3, 3), XP, (4, 3)),
        ((3, 3), YM, (3, 2)),
        ((3, 3), YP, (3, 4)),
        ((1, 3), XM, (1, 3)),  # bounce at each border
        ((5, 3), XP, (5, 3)),
        ((3, 1), YM, (3, 1)),
        ((3, 5), YP, (3, 5)),
        ((1, 1), XM, (1, 1)),
        ((1, 1), YM, (1, 1)),
        ((5, 5), XP, (5, 5)),
        ((5, 5), YP, (5, 5)),
        ((1, 1), XP, (2, 1)),
    ],
)
def test_job_moves_and_border_bounce(
    start: tuple[int, int], action: int, end: tuple[int, int]
) -> None:
    env = job_with([start], resource=(4, 4))
    obs, *_ = env.step({"agent_0": action})
    assert job_positions(env) == [end]
    assert obs["agent_0"][:2].tolist() == list(end)


def test_job_blocked_by_standing_agent() -> None:
    env = job_with([(2, 2), (3, 2)], resource=(4, 4))
    env.step(joint(env, XP, STAY))
    assert job_positions(env) == [(2, 2), (3, 2)]


def test_job_cannot_enter_cell_an_earlier_agent_leaves() -> None:
    # agent_0 leaves (2, 2) for (3, 2); agent_1 tries to follow into (2, 2): blocked
    env = job_with([(2, 2), (1, 2)], resource=(4, 4))
    env.step(joint(env, XP, XP))
    assert job_positions(env) == [(3, 2), (1, 2)]
    # the cell is free on the next step
    env.step(joint(env, STAY, XP))
    assert job_positions(env) == [(3, 2), (2, 2)]


def test_job_cannot_enter_cell_a_later_agent_leaves() -> None:
    # agent_0 moves first, while agent_1 still stands in (2, 2)
    env = job_with([(1, 2), (2, 2)], resource=(4, 4))
    env.step(joint(env, XP, XP))
    assert job_positions(env) == [(1, 2), (3, 2)]


def test_job_conflict_for_a_free_cell_goes_to_lower_index() -> None:
    env = job_with([(4, 3), (2, 3)], resource=(4, 4))
    env.step(joint(env, XM, XP))  # both into (3, 3)
    assert job_positions(env) == [(3, 3), (2, 3)]
    env = job_with([(2, 3), (4, 3)], resource=(4, 4))
    env.step(joint(env, XP, XM))
    assert job_positions(env) == [(3, 3), (4, 3)]


def test_job_shared_start_cell_stays_occupied_when_one_leaves() -> None:
    env = job_with([(3, 3), (3, 3), (3, 4)], resource=(2, 2))
    env.step(joint(env, XP, STAY, STAY))  # agent_0 leaves, agent_1 is still on (3, 3)
    assert env._occupied[3, 3] and env._occupied[4, 3]
    env.step(joint(env, STAY, STAY, YM))  # agent_2 cannot enter (3, 3)
    assert job_positions(env) == [(4, 3), (3, 3), (3, 4)]
    expected = np.zeros_like(env._occupied)
    expected[[4, 3, 3], [3, 3, 4]] = True
    np.testing.assert_array_equal(env._occupied, expected)


def test_job_swap_is_blocked() -> None:
    env = job_with([(2, 2), (3, 2)], resource=(4, 4))
    env.step(joint(env, XP, XM))
    assert job_positions(env) == [(2, 2), (3, 2)]


def test_job_reward_only_on_the_resource() -> None:
    env = job_with([(2, 3), (5, 5), (1, 1), (5, 1)], resource=(3, 3))
    _, rewards, _, _, infos = env.step(stay(env))
    assert rewards == dict.fromkeys(env.possible_agents, 0.0)
    assert infos["agent_0"]["resource_holder"] is None
    _, rewards, _, _, infos = env.step(joint(env, XP, STAY, STAY, STAY))
    assert rewards == {"agent_0": 1.0, "agent_1": 0.0, "agent_2": 0.0, "agent_3": 0.0}
    assert all(i["resource_holder"] == "agent_0" for i in infos.values())
    assert [i["on_resource"] for i in infos.values()] == [True, False, False, False]
    # nobody can join the holder on the resource cell
    env._positions[1] = (3, 4)
    env._occupied[5, 5] = False
    env._occupied[3, 4] = True
    _, rewards, *_ = env.step(joint(env, STAY, YM, STAY, STAY))
    assert job_positions(env)[1] == (3, 4)
    assert sum(rewards.values()) == 1.0


def test_job_only_one_agent_rewarded_when_starting_together_on_resource() -> None:
    # agents may start on the same cell; only the lowest index holds the resource
    env = job_with([(5, 5), (3, 3), (1, 1), (3, 3)], resource=(3, 3))
    _, rewards, _, _, infos = env.step(stay(env))
    assert rewards == {"agent_0": 0.0, "agent_1": 1.0, "agent_2": 0.0, "agent_3": 0.0}
    assert infos["agent_3"]["resource_holder"] == "agent_1"
    _, rewards, *_ = env.step(joint(env, STAY, XP, STAY, STAY))  # agent_1 leaves
    assert rewards == {"agent_0": 0.0, "agent_1": 0.0, "agent_2": 0.0, "agent_3": 1.0}


def test_job_observation_layout() -> None:
    env = job_with([(1, 1), (2, 2), (1, 2), (5, 4)], resource=(3, 4))
    obs, *_ = env.step(stay(env))
    # own (x, y), (res - pos), then the 3x3 occupancy patch, x outer, y inner
    assert obs["agent_0"].tolist() == [1, 1, 2, 3, 0, 0, 0, 0, 1, 1, 0, 0, 1]
    assert obs["agent_3"].tolist() == [5, 4, -2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert obs["agent_1"].tolist() == [2, 2, 1, 2, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    for agent, o in obs.items():
        assert env.observation_space(agent).contains(o)


def test_job_initial_state_distribution() -> None:
    env = marl_envs.make("job_scheduling")
    resources, cells = set(), set()
    for seed in range(300):
        env.reset(seed=seed)
        resources.add(env.resource_position)
        cells.update(job_positions(env))
    assert resources == {(x, y) for x in (2, 3, 4) for y in (2, 3, 4)}  # inner 3x3
    assert cells == {(x, y) for x in range(1, 6) for y in range(1, 6)}


def test_job_utilization_is_fraction_of_occupied_steps() -> None:
    env = job_with([(3, 2), (1, 1), (5, 5), (1, 5)], resource=(3, 3), max_cycles=8)
    env.step(stay(env))  # nobody on it
    env.step(joint(env, YP, STAY, STAY, STAY))  # agent_0 on it from now on
    for _ in range(5):
        env.step(stay(env))
    env.step(joint(env, YM, STAY, STAY, STAY))  # leaves on the last step
    assert env.agents == []
    report = env.fairness_report()
    assert report.utilization == pytest.approx(6 / 8)
    assert report.per_agent_utility == {"agent_0": 0.75, "agent_1": 0, "agent_2": 0, "agent_3": 0}


def _job_reference_step(
    pos: list[list[int]], res: tuple[int, int], acts: list[int], g: int
) -> tuple[list[list[int]], list[float]]:
    """The spec's Job Scheduling step, written naively."""
    taken = {tuple(p) for p in pos}  # cells occupied now; entered cells are added
    moves = {1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}
    new = [list(p) for p in pos]
    for i, a in enumerate(acts):
        if a == STAY:
            continue
        x, y = pos[i][0] + moves[a][0], pos[i][1] + moves[a][1]
        if 1 <= x <= g and 1 <= y <= g and (x, y) not in taken:
            taken.add((x, y))
            new[i] = [x, y]
    rewards = [0.0] * len(pos)
    for i, p in enumerate(new):
        if tuple(p) == res:
            rewards[i] = 1.0
            break
    return new, rewards


def test_job_matches_reference_on_random_play() -> None:
    env = marl_envs.make("job_scheduling", max_cycles=3000)
    rng = np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed=seed)
        pos = env.agent_positions.tolist()
        res = env.resource_position
        # biased towards moving so that collisions are frequent
        for acts in rng.choice(5, p=[0.1, 0.225, 0.225, 0.225, 0.225], size=(1000, 4)).tolist():
            pos, ref_rewards = _job_reference_step(pos, res, acts, 5)
            obs, rewards, *_ = env.step(joint(env, *acts))
            assert env.agent_positions.tolist() == pos
            assert list(rewards.values()) == ref_rewards
            occ = {tuple(p) for p in pos}
            for i, agent in enumerate(env.possible_agents):
                x, y = pos[i]
                patch = [float((x + dx, y + dy) in occ) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
                assert obs[agent].tolist() == [x, y, res[0] - x, res[1] - y, *patch]


# ------------------------------------------------------------- Matthew effect


def matthew_with(
    positions: list[tuple[float, float]],
    sizes: list[float],
    ghosts: list[tuple[float, float]],
    **kw: Any,
) -> Any:
    env = marl_envs.make("matthew_effect", n_agents=len(positions), n_ghosts=len(ghosts), **kw)
    env.reset(seed=0)
    env._positions = np.array(positions, dtype=np.float64)
    env._size = np.array(sizes, dtype=np.float64)
    env._speed = 0.01 + env._size
    env._ghosts = np.array(ghosts, dtype=np.float64)
    return env


FAR = (0.05, 0.95)  # a corner no test ghost is near


def test_matthew_moves_by_speed_and_clips() -> None:
    env = matthew_with([(0.5, 0.5), (0.99, 0.02), (0.3, 0.3)], [0.02, 0.04, 0.03], [(0.9, 0.9)])
    env.step(joint(env, XP, XP, STAY))
    assert env._positions[0].tolist() == [0.5 + 0.03, 0.5]
    assert env._positions[1].tolist() == [1.0, 0.02]  # clipped to the square
    assert env._positions[2].tolist() == [0.3, 0.3]
    env.step(joint(env, YM, YM, XM))
    assert env._positions[1].tolist() == [1.0, 0.0]
    assert env._positions[2].tolist() == [0.3 - 0.04, 0.3]


def test_matthew_ghost_eaten_growth_speed_and_respawn() -> None:
    env = matthew_with([(0.5, 0.5), FAR], [0.05, 0.02], [(0.52, 0.5), (0.1, 0.1)])
    rng = copy.deepcopy(env.np_random)
    obs, rewards, _, _, infos = env.step(stay(env))
    assert rewards == {"agent_0": 1.0, "agent_1": 0.0}
    assert env._size.tolist() == [0.05 + 0.005, 0.02]
    assert env._speed.tolist() == [0.01 + (0.05 + 0.005), 0.03]
    # the eaten ghost respawns uniformly (the env's own generator), the other stays
    assert env._ghosts[0].tolist() == rng.random(2).tolist()
    assert env._ghosts[1].tolist() == [0.1, 0.1]
    assert infos["agent_0"]["ghosts_eaten"] == 1
    assert infos["agent_0"]["total_ghosts_eaten"] == 1
    assert infos["agent_0"]["size"] == pytest.approx(0.055)
    assert infos["agent_1"]["ghosts_eaten"] == 0
    assert obs["agent_0"][2] == np.float32(0.055) and obs["agent_0"][3] == np.float32(0.065)
    # the next step moves at the new speed
    env.step(joint(env, XP, STAY))
    assert env._positions[0, 0] == 0.5 + (0.01 + 0.055)


def test_matthew_eating_needs_distance_strictly_below_size() -> None:
    # 0.125 and 0.625 are exact in binary: squared distance == size ** 2 exactly
    env = matthew_with([(0.5, 0.5)], [0.125], [(0.625, 0.5)])
    _, rewards, *_ = env.step(stay(env))
    assert rewards == {"agent_0": 0.0}
    env._ghosts[0] = (0.6249, 0.5)
    _, rewards, *_ = env.step(stay(env))
    assert rewards == {"agent_0": 1.0}
    # the same boundary while another Pac-man eats a ghost in the same step
    env = matthew_with([(0.5, 0.5), (0.2, 0.2)], [0.125, 0.05], [(0.625, 0.5), (0.2, 0.21)])
    _, rewards, *_ = env.step(stay(env))
    assert rewards == {"agent_0": 0.0, "agent_1": 1.0}
    assert env._ghosts[0].tolist() == [0.625, 0.5]


@pytest.mark.parametrize(("size", "grown"), [(0.148, 0.15), (0.15, 0.15), (0.1, 0.105)])
def test_matthew_size_capped(size: float, grown: float) -> None:
    env = matthew_with([(0.5, 0.5)], [size], [(0.5, 0.5)])
    env.step(stay(env))
    assert env._size[0] == pytest.approx(grown)
    assert env._speed[0] == pytest.approx(0.01 + grown)
    for _ in range(40):  # keep feeding it: the size never passes the cap
        env._ghosts[0] = env._positions[0]
        env.step(stay(env))
    assert env._size[0] == 0.15 and env._speed[0] == pytest.approx(0.16)


def test_matthew_first_agent_in_order_eats() -> None:
    env = matthew_with([FAR, (0.5, 0.5), (0.51, 0.5)], [0.02, 0.05, 0.05], [(0.505, 0.5)])
    _, rewards, *_ = env.step(stay(env))
    assert rewards == {"agent_0": 0.0, "agent_1": 1.0, "agent_2": 0.0}
    assert env._size.tolist() == [0.02, 0.055, 0.05]


def test_matthew_two_ghosts_one_step() -> None:
    # ghost 1 is just out of reach of size 0.05 but inside after eating ghost 0:
    # ghosts are checked in order with the eater's updated size, reward stays 1
    env = matthew_with([(0.5, 0.5), FAR], [0.05, 0.02], [(0.5, 0.52), (0.553, 0.5)])
    _, rewards, _, _, infos = env.step(stay(env))
    assert rewards == {"agent_0": 1.0, "agent_1": 0.0}
    assert infos["agent_0"]["ghosts_eaten"] == 2
    assert env._size[0] == pytest.approx(0.06)
    # the other order: the far ghost first is not reached, the near one is
    env = matthew_with([(0.5, 0.5), FAR], [0.05, 0.02], [(0.553, 0.5), (0.5, 0.52)])
    env.step(stay(env))
    assert env._ghosts[0].tolist() == [0.553, 0.5]
    assert env._size[0] == pytest.approx(0.055)


def test_matthew_observation_layout() -> None:
    env = matthew_with([(0.2, 0.2), (0.8, 0.7)], [0.02, 0.03], [(0.9, 0.9), (0.3, 0.1), (0.7, 0.1)])
    obs, *_ = env.step(stay(env))
    np.testing.assert_array_equal(
        obs["agent_0"], np.array([0.2, 0.2, 0.02, 0.03, 0.3, 0.1], dtype=np.float32)
    )
    np.testing.assert_array_equal(
        obs["agent_1"], np.array([0.8, 0.7, 0.03, 0.04, 0.9, 0.9], dtype=np.float32)
    )


def test_matthew_initial_state_distribution() -> None:
    env = marl_envs.make("matthew_effect")
    sizes = []
    for seed in range(50):
        env.reset(seed=seed)
        sizes.append(env._size.copy())
        np.testing.assert_array_equal(env._speed, 0.01 + env._size)
        assert ((env._positions >= 0) & (env._positions <= 1)).all()
        assert ((env._ghosts >= 0) & (env._ghosts <= 1)).all()
    s = np.concatenate(sizes)
    assert s.min() >= 0.01 and s.max() < 0.05
    assert s.min() < 0.012 and s.max() > 0.048  # spread over the whole U(0, 0.04)


def test_matthew_matches_reference_on_random_play() -> None:
    env = marl_envs.make("matthew_effect", max_cycles=5000)
    env.reset(seed=1)
    pos = env._positions.tolist()
    size = env._size.tolist()
    speed = env._speed.tolist()
    ghosts = env._ghosts.tolist()
    rng = copy.deepcopy(env.np_random)
    moves = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}
    eaten_total = 0
    for acts in np.random.default_rng(2).integers(0, 5, size=(2000, 10)).tolist():
        for i, a in enumerate(acts):
            for d in (0, 1):
                pos[i][d] = min(max(pos[i][d] + moves[a][d] * speed[i], 0.0), 1.0)
        ref = [0.0] * 10
        for k in range(len(ghosts)):
            for j in range(10):
                dx, dy = ghosts[k][0] - pos[j][0], ghosts[k][1] - pos[j][1]
                if dx * dx + dy * dy < size[j] * size[j]:
                    ref[j] = 1.0
                    ghosts[k] = rng.random(2).tolist()
                    size[j] = min(size[j] + 0.005, 0.15)
                    speed[j] = 0.01 + size[j]
                    eaten_total += 1
                    break
        obs, rewards, *_ = env.step(joint(env, *acts))
        assert list(rewards.values()) == ref
        assert env._positions.tolist() == pos
        assert env._size.tolist() == size
        assert env._ghosts.tolist() == ghosts
        for j, agent in enumerate(env.possible_agents):
            d2 = [(g[0] - pos[j][0]) ** 2 + (g[1] - pos[j][1]) ** 2 for g in ghosts]
            near = ghosts[int(np.argmin(d2))]
            expected = np.array([*pos[j], size[j], speed[j], *near], dtype=np.float32)
            np.testing.assert_array_equal(obs[agent], expected)
    assert eaten_total > 20  # the comparison covered plenty of eating


# --------------------------------------------------------- Manufacturing Plant


def plant_with(
    positions: list[tuple[int, int]],
    gems: list[tuple[int, int]],
    types: list[int],
    possession: list[list[int]] | None = None,
    **kw: Any,
) -> Any:
    """A plant whose agents and gems sit at the given cells (1..grid_size)."""
    env = marl_envs.make("manufacturing_plant", n_gems=len(gems), **kw)
    env.reset(seed=0)
    env._positions = np.array(positions, dtype=np.int64) + PLANT_SHIFT
    env._gems = np.array(gems, dtype=np.int64) + PLANT_SHIFT
    env._gem_types = np.array(types, dtype=np.int64)
    env._occupied[:] = False
    env._occupied[env._positions[:, 0], env._positions[:, 1]] = True
    if possession is not None:
        env._possession[:] = possession
    env._paint_gems()
    return env


# five agents parked in the corner row, away from the test gems
PARK = [(8, 1), (8, 3), (8, 5), (8, 7), (1, 8)]


def parked(**moved: tuple[int, int]) -> list[tuple[int, int]]:
    cells = list(PARK)
    for agent, cell in moved.items():
        cells[int(agent.split("_")[1])] = cell
    return cells


def test_plant_gem_collection_and_respawn() -> None:
    env = plant_with(parked(agent_0=(3, 3)), gems=[(4, 3), (6, 6)], types=[0, 2])
    rng = copy.deepcopy(env.np_random)
    obs, rewards, _, _, infos = env.step(joint(env, XP, STAY, STAY, STAY, STAY))
    assert env._possession[0].tolist() == [1, 0, 0]
    assert rewards["agent_0"] == pytest.approx(0.1)  # 1 < requirement 2
    assert sum(rewards.values()) == pytest.approx(0.1)
    # respawn: new cell in the inner square, then a new type, from the env's generator
    new_cell = (rng.integers(2, 8, size=2) + PLANT_SHIFT).tolist()
    new_type = int(rng.integers(3))
    assert env._gems.tolist() == [new_cell, [6 + PLANT_SHIFT, 6 + PLANT_SHIFT]]
    assert env._gem_types.tolist() == [new_type, 2]
    assert infos["agent_0"]["gems_collected"] == 1
    assert infos["agent_0"]["possession"] == [1, 0, 0]
    assert all(i["total_gems"] == 1 for i in infos.values())
    assert obs["agent_0"][2:5].tolist() == [1, 0, 0]
    assert env.total_gems == 1


@pytest.mark.parametrize(
    ("agent", "before", "gem_type", "reward", "after", "products"),
    [
        (0, [0, 0, 0], 0, 0.1, [1, 0, 0], 0),  # 1 < 2: +0.1
        (0, [1, 0, 0], 0, 0.0, [2, 0, 0], 0),  # 2 reaches the requirement: no bonus
        (0, [0, 0, 0], 2, 0.0, [0, 0, 1], 0),  # type not required
        (1, [0, 0, 0], 0, 0.0, [1, 0, 0], 0),  # requirement 1: never "still below"
        (4, [0, 0, 0], 2, 0.1, [0, 0, 1], 0),
        (0, [2, 0, 0], 1, 1.0, [0, 0, 0], 1),  # completes [2, 1, 0]
        (4, [3, 1, 1], 2, 1.0, [3, 0, 0], 1),  # [0, 1, 2]: unrequired type untouched
        (1, [2, 0, 1], 0, 1.0, [2, 0, 0], 1),  # one product per completed set
        (2, [0, 3, 1], 2, 2.0, [0, 1, 0], 2),  # two sets complete at once
    ],
)
def test_plant_reward_rule_and_products(
    agent: int, before: list[int], gem_type: int, reward: float, after: list[int], products: int
) -> None:
    possession = [[0, 0, 0] for _ in range(5)]
    possession[agent] = before
    env = plant_with(parked(**{f"agent_{agent}": (3, 3)}), [(4, 3)], [gem_type], possession)
    acts = [STAY] * 5
    acts[agent] = XP
    _, rewards, _, _, infos = env.step(joint(env, *acts))
    name = f"agent_{agent}"
    assert rewards[name] == pytest.approx(reward)
    assert sum(rewards.values()) == pytest.approx(reward)
    assert env._possession[agent].tolist() == after
    assert infos[name]["products_made"] == products
    assert infos[name]["total_products"] == products
    assert env.products == products
    assert env.episode_stats()["products"] == products


def test_plant_two_gems_on_one_cell_are_both_collected() -> None:
    env = plant_with(parked(agent_0=(3, 3)), [(4, 3), (4, 3)], [0, 1])
    _, rewards, _, _, infos = env.step(joint(env, XP, STAY, STAY, STAY, STAY))
    assert infos["agent_0"]["gems_collected"] == 2
    # first gem: type 0 -> 1 < 2: +0.1; second: type 1 -> not below 1; no product yet
    assert rewards["agent_0"] == pytest.approx(0.1)
    assert env._possession[0].tolist() == [1, 1, 0]


def test_plant_first_agent_in_order_collects() -> None:
    # agents 2 and 3 start on the same cell (allowed at reset); the gem goes to agent_2
    env = plant_with(parked(agent_2=(5, 5), agent_3=(5, 5)), [(5, 5)], [1])
    _, rewards, *_ = env.step(stay(env))
    assert env._possession[:, 1].tolist() == [0, 0, 1, 0, 0]
    assert rewards["agent_3"] == 0.0


def test_plant_blocking_and_border() -> None:
    env = plant_with(parked(agent_0=(1, 1), agent_1=(2, 1)), [(5, 5)], [0])
    env.step(joint(env, XM, XM, STAY, STAY, STAY))  # bounce; blocked by agent_0
    assert (env._positions[:2] - PLANT_SHIFT).tolist() == [[1, 1], [2, 1]]
    env.step(joint(env, STAY, YM, STAY, STAY, XP))
    assert (env._positions[[1, 4]] - PLANT_SHIFT).tolist() == [[2, 1], [2, 8]]


def test_plant_observation_layout() -> None:
    env = plant_with(
        parked(agent_0=(1, 1)),
        gems=[(2, 3), (3, 1), (7, 7)],
        types=[2, 0, 1],
        possession=[[1, 0, 1], [0] * 3, [0] * 3, [0] * 3, [0] * 3],
    )
    obs, *_ = env.step(stay(env))
    o = obs["agent_0"]
    assert o.shape == (30,)
    assert o[:5].tolist() == [1, 1, 1, 0, 1]
    local = o[5:].reshape(5, 5)  # x outer (dx -2..2), y inner (dy -2..2); 0 off-grid
    expected = np.zeros((5, 5))
    expected[2 + 1, 2 + 2] = 3  # gem type 2 at (2, 3)
    expected[2 + 2, 2 + 0] = 1  # gem type 0 at (3, 1)
    np.testing.assert_array_equal(local, expected)
    last = obs["agent_3"]  # at (8, 7): the type-1 gem at (7, 7) is one cell up in x
    assert last[:2].tolist() == [8, 7]
    assert last[5:].reshape(5, 5)[2 - 1, 2].item() == 2
    for agent, ob in obs.items():
        assert env.observation_space(agent).contains(ob)


def test_plant_initial_state_distribution() -> None:
    env = marl_envs.make("manufacturing_plant")
    gem_cells, agent_cells, types = set(), set(), set()
    for seed in range(150):
        env.reset(seed=seed)
        gem_cells.update(map(tuple, (env._gems - PLANT_SHIFT).tolist()))
        agent_cells.update(map(tuple, (env._positions - PLANT_SHIFT).tolist()))
        types.update(env._gem_types.tolist())
        assert env._possession.sum() == 0 and env.total_gems == 0
    assert gem_cells == {(x, y) for x in range(2, 8) for y in range(2, 8)}  # inner 6x6
    assert agent_cells == {(x, y) for x in range(1, 9) for y in range(1, 9)}
    assert types == {0, 1, 2}


@pytest.mark.parametrize(("total_before", "ends"), [(3, True), (2, False)])
def test_plant_episode_ends_once_more_than_max_gems(total_before: int, ends: bool) -> None:
    env = plant_with(parked(agent_0=(3, 3)), [(4, 3)], [0], max_gems=3)
    env.total_gems = total_before
    _, _, terms, truncs, infos = env.step(joint(env, XP, STAY, STAY, STAY, STAY))
    assert infos["agent_0"]["total_gems"] == total_before + 1
    assert terms == dict.fromkeys(env.possible_agents, ends)
    assert truncs == dict.fromkeys(env.possible_agents, False)
    assert (env.agents == []) == ends


def test_plant_random_episode_ends_just_after_max_gems() -> None:
    env = marl_envs.make("manufacturing_plant", max_gems=30)
    env.reset(seed=5)
    acts = np.random.default_rng(5).integers(0, 5, size=(20_000, 5)).tolist()
    before = 0
    for row in acts:
        before = env.total_gems
        _, _, terms, truncs, _ = env.step(joint(env, *row))
        if not env.agents:
            break
    assert all(terms.values()) and not any(truncs.values())
    assert before <= 30 < env.total_gems
    assert env.num_steps < 10_000


def test_plant_matches_reference_on_random_play() -> None:
    req = [[2, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 1, 2]]
    env = marl_envs.make("manufacturing_plant", max_cycles=5000, max_gems=10_000)
    env.reset(seed=3)
    pos = (env._positions - PLANT_SHIFT).tolist()
    gems = (env._gems - PLANT_SHIFT).tolist()
    types = env._gem_types.tolist()
    have = [[0, 0, 0] for _ in range(5)]
    rng = copy.deepcopy(env.np_random)
    total_products = 0
    for acts in np.random.default_rng(4).integers(0, 5, size=(3000, 5)).tolist():
        pos, _ = _job_reference_step(pos, (0, 0), acts, 8)  # same movement rule on 8x8
        ref = [0.0] * 5
        for j in range(len(gems)):
            for i in range(5):
                if pos[i] == gems[j]:
                    t = types[j]
                    have[i][t] += 1
                    if have[i][t] < req[i][t]:
                        ref[i] += 0.1
                    gems[j] = rng.integers(2, 8, size=2).tolist()
                    types[j] = int(rng.integers(3))
                    break
        for i in range(5):
            k = min(have[i][t] // req[i][t] for t in range(3) if req[i][t])
            ref[i] += k
            total_products += k
            have[i] = [have[i][t] - k * req[i][t] for t in range(3)]
        obs, rewards, *_ = env.step(joint(env, *acts))
        assert list(rewards.values()) == pytest.approx(ref)
        assert (env._positions - PLANT_SHIFT).tolist() == pos
        assert (env._gems - PLANT_SHIFT).tolist() == gems
        assert env._possession.tolist() == have
        gem_map = {tuple(g): t + 1 for g, t in zip(gems, types, strict=True)}  # last wins
        for i, agent in enumerate(env.possible_agents):
            x, y = pos[i]
            local = [gem_map.get((x + dx, y + dy), 0) for dx in range(-2, 3) for dy in range(-2, 3)]
            assert obs[agent].tolist() == [x, y, *have[i], *local]
    assert env.products == total_products > 0


def test_truncation_at_max_cycles() -> None:
    for name in FEN_ENV_NAMES:
        env = marl_envs.make(name, max_cycles=5)
        env.reset(seed=0)
        for t in range(5):
            _, _, terms, truncs, _ = env.step(stay(env))
            assert not any(terms.values())
            assert all(truncs.values()) == (t == 4)
        assert env.agents == []


# ------------------------------------------------------------------ episode stats


def test_episode_stats_track_rewards() -> None:
    env = job_with([(3, 3), (1, 1), (5, 5), (1, 5)], resource=(3, 3), max_cycles=4)
    for _ in range(4):
        env.step(stay(env))
    stats = env.episode_stats()
    assert stats["utility/agent_0"] == 1.0 and stats["min_utility"] == 0.0
    assert stats["utilization"] == 1.0
    assert stats["cv"] == pytest.approx(np.std([1, 0, 0, 0], ddof=1) / 0.25)
    env.reset(seed=1)
    assert env.episode_stats()["average_utility"] == 0.0


# ------------------------------------------------------------------ benchmark


def test_benchmark_helpers() -> None:
    acts = random_action_dicts(["a", "b"], 5, 100, seed=0)
    assert len(acts) == 100 and all(set(a) == {"a", "b"} for a in acts)
    assert {v for a in acts for v in a.values()} == set(range(5))
    assert acts == random_action_dicts(["a", "b"], 5, 100, seed=0)
    result = benchmark_env("manufacturing_plant", steps=200, repeats=2, max_gems=5)
    assert result.n_agents == 5 and result.agent_steps == 1000 and result.episodes > 1
    assert result.best_agent_steps_per_second >= result.median_agent_steps_per_second > 0
    page = markdown_report([result], "python scripts/benchmark_envs.py", "test box", 2)
    assert "| manufacturing_plant | 5 |" in page and "python scripts/benchmark_envs.py" in page
    with pytest.raises(ValueError):
        benchmark_env("job_scheduling", steps=0)


def test_benchmark_script_writes_json(tmp_path: Any, load_script: Any) -> None:
    main: Callable[[list[str]], int] = load_script("benchmark_envs").main
    out, md = tmp_path / "t.json", tmp_path / "t.md"
    args = ["--envs", "job_scheduling", "--steps", "50", "--repeats", "1"]
    assert main([*args, "--json", str(out), "--markdown", str(md)]) == 0
    data = json.loads(out.read_text())
    assert list(data) == ["job_scheduling"] and data["job_scheduling"] > 0
    assert "job_scheduling" in md.read_text()
