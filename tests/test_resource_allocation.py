"""Tests of ``resource_allocation_v0``, its heuristic schedulers and the comparison script.

Dynamics are pinned down on hand-made states: arrivals are switched off
(``env.arrival_rate = 0``) after ``reset`` and jobs are put in the queues with
``env.enqueue``.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test

import marl_envs
from marl_envs import resource_allocation_v0
from marl_envs.resource_allocation_v0 import ResourceAllocationEnv
from policies.heuristics.schedulers import (
    DRF,
    FIFO,
    SJF,
    Packer,
    Tetris,
    make_scheduler,
)

WAIT = 0


def quiet_env(**kwargs: Any) -> ResourceAllocationEnv:
    """A reset env with empty queues and no arrivals (jobs are added by hand)."""
    env = ResourceAllocationEnv(**kwargs)
    env.reset(seed=0)
    env._init_state()
    env.arrival_rate = 0.0
    return env


def acts(env: ResourceAllocationEnv, **by_agent: int) -> dict[str, int]:
    return {a: by_agent.get(a, WAIT) for a in env.possible_agents}


# ---------------------------------------------------------------- API / PettingZoo


def test_registered_with_documented_defaults() -> None:
    env = marl_envs.make("resource_allocation")
    assert isinstance(env, ResourceAllocationEnv)
    assert env.possible_agents == [f"agent_{i}" for i in range(4)]
    assert env.action_space("agent_0") == spaces.Discrete(11)
    assert env.observation_space("agent_0").shape == (93,)
    assert env.max_cycles == 200 and env.max_fair_utility == 0.25
    assert env.capacity == 20 and env.n_resources == 2 and env.horizon == 20
    image = marl_envs.make("resource_allocation", obs_layout="image")
    assert image.observation_space("agent_0").shape == (20 * (2 * 20 * 11 + 3),)


@pytest.mark.parametrize("layout", ["flat", "image"])
def test_pettingzoo_parallel_api(layout: str) -> None:
    env = resource_allocation_v0.parallel_env(max_cycles=60, load=1.1, obs_layout=layout)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=60)
    assert [str(w.message) for w in record if "pettingzoo" in w.filename] == []


def test_pettingzoo_aec_api_and_seed() -> None:
    api_test(resource_allocation_v0.env(max_cycles=40), num_cycles=40)
    parallel_seed_test(lambda: resource_allocation_v0.parallel_env(max_cycles=60, load=1.1),
                       num_cycles=60)


def test_pettingzoo_render() -> None:
    render_test(functools.partial(resource_allocation_v0.env, max_cycles=30), custom_tests={
        "ansi": lambda res: isinstance(res, str) and "step" in res and "agent_3" in res,
        "rgb_array": lambda res: res.ndim == 3 and min(res.shape[:2]) >= 64,
    })


def test_same_seed_same_episode() -> None:
    def rollout(seed: int) -> list[float]:
        env = marl_envs.make("resource_allocation", max_cycles=50, load=1.5)
        env.reset(seed=seed)
        env.action_space("agent_0").seed(seed)
        while env.agents:
            env.step({a: env.action_space(a).sample() for a in env.agents})
        return list(env.episode_stats().values())

    assert rollout(3) == rollout(3)
    assert rollout(3) != rollout(4)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dominant_demand": (5, 25)}, r"impossible job demand.*capacity=20"),
    ({"other_demand": (1, 21)}, r"impossible job demand"),
    ({"load": 0.0}, r"load must be a finite number > 0"),
    ({"load": -1.0}, r"load must be"),
    ({"load": 4.0}, r"arrival probability of 1\.084 > 1.*largest load.*3\.69"),
    ({"obs_layout": "grid"}, r"obs_layout='grid' is not supported.*flat"),
    ({"small_duration": (3, 1)}, r"small_duration must be a pair"),
    ({"capacity": 0}, r"capacity must be an integer >= 1"),
    ({"max_cycles": 0}, r"max_cycles must be an integer >= 1, got 0"),
    ({"reward_scale": 0.0}, r"reward_scale must be a finite number > 0"),
    ({"arrival_cycles": 0}, r"arrival_cycles must be None or an integer in 1\.\.200, got 0"),
    ({"arrival_cycles": 201}, r"arrival_cycles must be .*got 201"),
    ({"arrival_cycles": 20.5}, r"arrival_cycles must be None or an integer .*got 20\.5"),
])
def test_bad_config(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        marl_envs.make("resource_allocation", **kwargs)


def test_unknown_kwarg_and_bad_actions() -> None:
    with pytest.raises(TypeError, match="unknown keyword argument.*'slots'"):
        marl_envs.make("resource_allocation", slots=3)
    env = marl_envs.make("resource_allocation")
    env.reset(seed=0)
    for bad in (11, -1, 1.5):
        with pytest.raises(ValueError, match=r"invalid action.*0\.\.10"):
            env.step(acts(env, agent_0=bad))
    with pytest.raises(ValueError, match="impossible"):
        env.enqueue(0, [21, 1], 3, 0)


# ---------------------------------------------------------------- arrivals and jobs


def test_job_distribution_and_arrival_rate_match_load() -> None:
    env = ResourceAllocationEnv(load=1.1)
    env.reset(seed=1)
    jobs = [env.draw_job() for _ in range(20_000)]
    durations = np.array([t for _, t in jobs])
    demands = np.array([d for d, _ in jobs])
    small = durations <= 3
    assert abs(small.mean() - 0.8) < 0.01
    assert set(durations[small]) == {1, 2, 3} and set(durations[~small]) == set(range(10, 16))
    assert set(demands.max(axis=1)) == set(range(5, 11)) and set(demands.min(axis=1)) == {1, 2}
    per_job = np.mean(durations * (demands / 20).mean(axis=1))
    assert abs(per_job - 0.9225) < 0.02
    assert env.arrival_rate == pytest.approx(1.1 / (4 * 0.9225))
    # arrivals while every tenant waits: rate p per tenant and step (dropped ones counted)
    env = ResourceAllocationEnv(load=1.1, max_cycles=3000)
    env.reset(seed=2)
    while env.agents:
        env.step(acts(env))
    stats = env.episode_stats()
    assert stats["arrived_jobs"] / (4 * 3001) == pytest.approx(env.arrival_rate, abs=0.01)
    assert stats["dropped_jobs"] > 0 and stats["completed_jobs"] == 0


def test_job_starts_occupies_and_finishes() -> None:
    env = quiet_env()
    env.enqueue(0, [5, 1], 3, 0)
    obs, rewards, *_, infos = env.step(acts(env, agent_0=1))
    assert infos["agent_0"]["started"] and not env._slot_filled[0, 0]
    assert env._alloc[0].tolist() == [5, 1] and env.free_capacity.tolist() == [15, 19]
    assert infos["agent_1"]["free_capacity"].tolist() == [15, 19]
    occupancy = obs["agent_1"][:40].reshape(20, 2)  # [h, r] for steps 1..20
    assert occupancy[:2].ravel().tolist() == pytest.approx([0.25, 0.05] * 2)
    assert not occupancy[2:].any()
    assert obs["agent_0"][40:42].tolist() == pytest.approx([0.25, 0.05])
    assert rewards["agent_0"] == pytest.approx(-1 / 3) and rewards["agent_1"] == 0
    env.step(acts(env))
    assert env._alloc[0].tolist() == [5, 1]
    env.step(acts(env))  # third step of the job: it completes at the end of it
    assert env._alloc[0].tolist() == [0, 0]
    stats = env.episode_stats()
    assert stats["completed_jobs"] == 1 and stats["avg_slowdown_completed"] == 1.0
    assert stats["slowdown/agent_0"] == 1.0 and stats["unfinished_jobs"] == 0
    # shares: 3 steps of mean(5/20, 1/20) over 3 steps; utilization = cluster utilisation
    assert env.utility_sums[0] == pytest.approx(3 * 0.15)
    assert stats["utilization"] == pytest.approx(0.15)


def test_slowdown_reward_values_on_a_hand_made_case() -> None:
    env = quiet_env()
    env.enqueue(0, [5, 1], 2, 0)  # slot 0
    env.enqueue(0, [5, 1], 4, 0)  # slot 1
    total = 0.0
    for action in (WAIT, WAIT, 1, WAIT, 2, WAIT, WAIT, WAIT):
        _, rewards, *_ = env.step(acts(env, agent_0=action))
        total += rewards["agent_0"]
    # job A waits 2 steps then runs 2: slowdown 4/2; job B waits 4, runs 4: slowdown 8/4
    assert env._completed[0] == 2
    stats = env.episode_stats()
    assert stats["avg_slowdown"] == pytest.approx(2.0) and stats["slowdown/agent_0"] == 2.0
    assert total == pytest.approx(-(2.0 + 2.0))
    env2 = quiet_env()
    env2.enqueue(1, [5, 1], 2, 0)
    env2.enqueue(1, [5, 1], 4, 0)
    _, rewards, *_ = env2.step(acts(env2))
    assert rewards["agent_1"] == pytest.approx(-0.75)


def test_reward_scale_scales_rewards_not_metrics() -> None:
    envs = [quiet_env(), quiet_env(reward_scale=0.02)]
    totals = []
    for env in envs:
        env.enqueue(0, [5, 1], 2, 0)
        total = 0.0
        for action in (WAIT, 1, WAIT, WAIT):
            _, rewards, *_ = env.step(acts(env, agent_0=action))
            total += rewards["agent_0"]
        totals.append(total)
    assert totals[1] == pytest.approx(0.02 * totals[0]) and totals[0] == pytest.approx(-1.5)
    assert envs[0].episode_stats() == envs[1].episode_stats()


def test_team_reward_gives_every_tenant_the_mean_not_other_metrics() -> None:
    envs = [quiet_env(), quiet_env(team_reward=True)]
    steps = []
    for env in envs:
        env.enqueue(0, [5, 1], 2, 0)
        env.enqueue(2, [1, 5], 4, 0)
        steps.append([env.step(acts(env, agent_0=a, agent_2=a))[1] for a in (1, WAIT, WAIT)])
    assert any(own["agent_0"] != own["agent_1"] for own in steps[0])  # own rewards differ
    for own, team in zip(*steps, strict=True):
        assert team == pytest.approx(dict.fromkeys(own, sum(own.values()) / len(own)))
    assert envs[0].episode_stats() == envs[1].episode_stats()


def test_refusal_when_it_does_not_fit() -> None:
    env = quiet_env()
    env.enqueue(0, [15, 1], 2, 0)
    env.enqueue(1, [10, 1], 2, 0)
    _, _, _, _, infos = env.step(acts(env, agent_0=1, agent_1=1))
    started = [infos[a]["started"] for a in ("agent_0", "agent_1")]
    refused = [infos[a]["refused"] for a in ("agent_0", "agent_1")]
    assert sorted(started) == [False, True] and refused == [not s for s in started]
    assert env.episode_stats()["refused_requests"] == 1
    # the refused job stays in its slot
    loser = 1 if started[0] else 0
    assert env._slot_filled[loser, 0]


def test_fair_random_tie_order() -> None:
    wins = np.zeros(4)
    for seed in range(400):
        env = ResourceAllocationEnv()
        env.reset(seed=seed)
        env._init_state()
        env.arrival_rate = 0.0
        for i in range(4):
            env.enqueue(i, [12, 1], 2, 0)  # only one of the four fits
        _, _, _, _, infos = env.step(acts(env, **dict.fromkeys(env.possible_agents, 1)))
        wins += [infos[a]["started"] for a in env.possible_agents]
    assert wins.sum() == 400
    assert (np.abs(wins / 400 - 0.25) < 0.07).all()


def test_empty_slot_is_a_counted_no_op() -> None:
    env = quiet_env()
    env.enqueue(0, [5, 1], 2, 0)
    _, rewards, _, _, infos = env.step(acts(env, agent_0=5, agent_1=1))
    assert infos["agent_0"]["empty_slot"] and infos["agent_1"]["empty_slot"]
    assert not infos["agent_0"]["started"] and env._slot_filled[0, 0]
    assert env.free_capacity.tolist() == [20, 20]
    assert env.episode_stats()["empty_slot_choices"] == 2


def test_backlog_moves_into_free_slots_and_drops_when_full() -> None:
    env = quiet_env(n_slots=2, backlog_size=1)
    for duration in (1, 2, 3):
        assert env.enqueue(0, [5, 1], duration, 0)
    assert not env.enqueue(0, [5, 1], 4, 0)
    assert env.episode_stats()["dropped_jobs"] == 1
    obs, _, _, _, infos = env.step(acts(env, agent_0=1))
    assert infos["agent_0"]["backlog"] == 0 and obs["agent_0"][-1] == 0.0
    assert infos["agent_0"]["slot_durations"].tolist() == [3, 2]
    assert infos["agent_0"]["slot_waits"].tolist() == [1, 1]  # arrival time is kept


def test_unfinished_jobs_and_dominant_share_spread() -> None:
    env = quiet_env(max_cycles=4)
    env.enqueue(0, [10, 2], 12, 0)
    env.enqueue(1, [1, 1], 2, 0)
    env.step(acts(env, agent_0=1))
    while env.agents:
        env.step(acts(env))
    stats = env.episode_stats()
    assert stats["unfinished_jobs"] == 2 and stats["completed_jobs"] == 0
    # job 0 ran 4 of 12 steps: 4/12; job 1 waited 4 steps of 2: 4/2
    assert stats["avg_slowdown"] == pytest.approx((4 / 12 + 2.0) / 2)
    assert stats["avg_slowdown_completed"] == 0.0
    assert stats["dominant_share_spread"] == pytest.approx(0.5)
    assert stats["dominant_share/agent_0"] == pytest.approx(0.5)


def test_drained_episode_extends_the_undrained_one_until_every_job_is_done() -> None:
    def rollout(**kwargs: Any) -> tuple[list[Any], dict[str, float], list[float]]:
        env = marl_envs.make("resource_allocation", load=1.1, **kwargs)
        obs, infos = env.reset(seed=5)
        sjf, trace, rewards = make_scheduler("sjf"), [], []
        while env.agents:
            obs, rew, _, _, infos = env.step(sjf.act(obs, infos))
            trace.append(obs["agent_0"])
            rewards.append(sum(rew.values()))
        return trace, env.episode_stats(), rewards

    plain, plain_stats, _ = rollout(max_cycles=60)
    drained, stats, rewards = rollout(max_cycles=400, arrival_cycles=60)
    assert len(drained) == 400  # a fixed length
    # the same jobs and decisions for the first 60 steps (waits scaled by arrival_cycles)
    assert all(np.array_equal(a, b) for a, b in zip(plain, drained[:60], strict=True))
    assert stats["arrived_jobs"] == plain_stats["arrived_jobs"]
    assert stats["unfinished_jobs"] == 0
    assert stats["completed_jobs"] == stats["arrived_jobs"] - stats["dropped_jobs"]
    assert stats["avg_slowdown"] == pytest.approx(stats["avg_slowdown_completed"])
    assert stats["avg_slowdown"] > plain_stats["avg_slowdown"]
    # once the last job is done the steps cost nothing; the return is the total slowdown
    assert 60 < stats["makespan"] < 400
    assert all(r == 0 for r in rewards[int(stats["makespan"]):])
    assert -sum(rewards) == pytest.approx(stats["avg_slowdown"] * stats["completed_jobs"])


def test_jobs_left_at_the_end_of_a_drained_episode_count_as_unfinished() -> None:
    env = quiet_env(max_cycles=5, arrival_cycles=2)
    env.enqueue(0, [10, 2], 12, 0)
    env.step(acts(env, agent_0=1))
    while env.agents:
        env.step(acts(env))
    assert env.num_steps == 5
    assert env.episode_stats()["unfinished_jobs"] == 1
    assert env.episode_stats()["makespan"] == 0


def test_drained_env_passes_the_parallel_api_test() -> None:
    parallel_api_test(resource_allocation_v0.parallel_env(max_cycles=120, arrival_cycles=30,
                                                          load=0.7), num_cycles=120)


def test_flat_and_image_observation_layouts() -> None:
    env = quiet_env()
    env.enqueue(2, [5, 2], 3, 0)
    obs = env._observations()[2]
    slot0 = obs[42:47]
    assert slot0.tolist() == pytest.approx([0.25, 0.1, 3 / 15, 0.0, 1.0])
    assert not obs[47:92].any()
    image = quiet_env(obs_layout="image")
    image.enqueue(0, [5, 2], 3, 0)
    image.enqueue(1, [4, 4], 2, 0)
    image.step(acts(image, agent_0=1, agent_1=1))
    img = image._observations()[0].reshape(20, image.image_width)
    # cluster block of resource 0: own 5 units (1.0) for 2 more steps, then the other
    # tenant's 4 (0.5) for 1 more step
    assert img[0, :9].tolist() == [1.0] * 5 + [0.5] * 4 and not img[0, 9:20].any()
    assert img[1, :5].tolist() == [1.0] * 5 and not img[1, 5:20].any()
    assert not img[2, :40].any()
    # agent_0's empty slots and backlog are blank; agent_1 sees its own units as 1.0
    assert not img[:, 40:].any()
    assert image._observations()[1].reshape(20, -1)[0, :9].tolist() == [1.0] * 4 + [0.5] * 5
    queued = quiet_env(obs_layout="image", backlog_size=60, n_slots=1)
    queued.enqueue(0, [5, 2], 3, 0)
    for _ in range(22):
        queued.enqueue(0, [1, 1], 1, 0)
    img = queued._observations()[0].reshape(20, queued.image_width)
    slot = img[:, 40:80]  # slot 0: resource 0 then resource 1, 20 units each
    assert slot[:3, :5].all() and not slot[3:, :5].any() and not slot[:, 5:20].any()
    assert slot[:3, 20:22].all() and not slot[:, 22:].any()
    backlog = img[:, 80:]  # 22 backlog jobs fill column 0 then 2 cells of column 1
    assert backlog[:, 0].all() and backlog[:2, 1].all() and not backlog[2:, 1:].any()


# ---------------------------------------------------------------- schedulers


def info(demands: list[list[int]], durations: list[int], waits: list[int],
         free: tuple[int, int] = (20, 20), alloc: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    n = len(durations)
    return {
        "capacity": 20, "free_capacity": np.array(free), "allocation": np.array(alloc),
        "slot_filled": np.ones(n, dtype=bool), "slot_demands": np.array(demands),
        "slot_durations": np.array(durations), "slot_waits": np.array(waits),
    }


def test_tenant_heuristics_pick_what_they_should() -> None:
    # slot 0: old, long, big; slot 1: short, small; slot 2: does not fit; slot 3: medium
    i = info([[9, 2], [2, 1], [12, 1], [6, 6]], [12, 1, 1, 5], [7, 2, 9, 4], free=(10, 10))
    obs = {"agent_0": None}
    assert FIFO().act(obs, {"agent_0": i}) == {"agent_0": 1}   # oldest fitting (slot 2 no fit)
    assert SJF().act(obs, {"agent_0": i}) == {"agent_0": 2}    # shortest fitting
    assert Packer().act(obs, {"agent_0": i}) == {"agent_0": 4}  # 120 > 110 > 30
    # tetris: pack/120 + (1/T)/1 halves: slot1 0.5*30/120+0.5=0.625, slot3 0.5+0.1=0.6
    assert Tetris().act(obs, {"agent_0": i}) == {"agent_0": 2}
    assert Tetris(pack_weight=1.0).act(obs, {"agent_0": i}) == {"agent_0": 4}
    none_fit = info([[12, 1]], [1], [0], free=(10, 10))
    for name in ("fifo", "sjf", "packer", "tetris", "drf", "central_sjf"):
        assert make_scheduler(name).act(obs, {"agent_0": none_fit}) == {"agent_0": WAIT}
    with pytest.raises(ValueError, match="unknown scheduler 'lifo'.*fifo"):
        make_scheduler("lifo")


def test_drf_progressive_filling() -> None:
    free = (10, 10)
    infos = {
        # a holds the largest dominant share: it only gets what is left
        "a": info([[4, 1]], [3], [9], free=free, alloc=(8, 0)),
        "b": info([[6, 1], [3, 3]], [3, 3], [5, 1], free=free, alloc=(0, 2)),
        "c": info([[1, 8]], [3], [0], free=free, alloc=(0, 4)),
    }
    obs = dict.fromkeys(infos)
    # b (share 0.1) takes its oldest fitting job (6,1); c (0.2) takes (1,8);
    # a (0.4) would need (4,1) but only (3,1) is left -> waits
    assert DRF().act(obs, infos) == {"a": 0, "b": 1, "c": 1}
    infos["c"]["slot_demands"] = np.array([[1, 10]])
    # c's job does not fit after b's; a gets (4, 1)? 10-6=4 units of r0 left: yes
    assert DRF().act(obs, infos) == {"a": 1, "b": 1, "c": 0}


def test_central_sjf_grants_the_shortest_fitting_jobs_of_all_tenants() -> None:
    free = (10, 10)
    infos = {
        "a": info([[4, 1], [2, 1]], [5, 9], [0, 0], free=free),
        "b": info([[6, 1], [5, 5]], [2, 1], [0, 0], free=free),
        "c": info([[3, 8]], [1], [0], free=free),
    }
    obs = dict.fromkeys(infos)
    # b's (5,5) and c's (3,8) are the shortest (T=1): the tie goes to the lower tenant
    # index, b (5,5 left); c's (3,8) no longer fits; then a's shortest fitting job, (4,1)
    assert make_scheduler("central_sjf").act(obs, infos) == {"a": 1, "b": 2, "c": 0}


@pytest.mark.parametrize("name", ["drf", "central_sjf"])
def test_cluster_wide_plans_are_never_refused_in_the_env(name: str) -> None:
    env = marl_envs.make("resource_allocation", load=1.5, max_cycles=100)
    obs, infos = env.reset(seed=0)
    scheduler = make_scheduler(name)
    while env.agents:
        obs, _, _, _, infos = env.step(scheduler.act(obs, infos))
    stats = env.episode_stats()
    assert stats["refused_requests"] == 0 and stats["completed_jobs"] > 0


def test_heuristics_do_not_import_ray() -> None:
    code = ("import sys, policies.heuristics.schedulers, marl_envs; "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- a learner


def test_a2c_one_iteration_greedy_sampled_and_drained_evaluation(tmp_path: Any) -> None:
    import ray

    from policies.config import build_config
    from policies.training import evaluate_checkpoint, init_ray, run_training

    init_ray(None, num_cpus=2)
    try:
        config = build_config("resource_allocation", "a2c", "shared", seed=1, num_env_runners=0,
                              envs_per_runner=2, env_kwargs={"max_cycles": 25},
                              overrides={"train_batch_size_per_learner": 100})
        summary = run_training(config, iterations=1, logdir=tmp_path,
                               run_info={"env": "resource_allocation", "algo": "a2c",
                                         "policy_mode": "shared"}, verbose=False)
        assert summary["env_steps"] > 0
        assert "fairness/avg_slowdown" in summary["metrics"]
        report = evaluate_checkpoint(summary["checkpoint"], episodes=1)
        assert "avg_slowdown" in report["per_episode"][0] and report["actions"] == "greedy"
        sampled = [evaluate_checkpoint(summary["checkpoint"], episodes=1, seed=5, sample=True)
                   for _ in range(2)]
        assert sampled[0]["actions"] == "sampled"
        assert sampled[0]["per_episode"] == sampled[1]["per_episode"]  # seeded
        # the checkpoint on drained episodes (the env kwargs override the checkpoint's)
        drained_report = evaluate_checkpoint(
            summary["checkpoint"], episodes=1, env_kwargs={"arrival_cycles": 25,
                                                           "max_cycles": 325})
        assert drained_report["per_episode"][0]["makespan"] > 25
    finally:
        ray.shutdown()
