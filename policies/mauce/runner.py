"""One regret run on a bandit benchmark (a trial of the ``bandit`` experiment kind,
``policies/experiments/bandit_trials.py``), and the benchmarks' envs by name.

One *run* is one seed of one algorithm on one problem instance: the policy plays
``horizon`` rounds of the PettingZoo env, and the exact expected regret
``E F(a*) - E F(a_t)`` is accumulated (divided by ``model.regret_scale``: ``n-1``
on the chain, 1 on the normalised problems). Time per step counts the policy only
(``act`` + ``observe``), not the environment: ``us_per_step`` is the process's CPU
time (``time.process_time``; robust on a shared machine), ``wall_us_per_step``
the elapsed time (inflated when other jobs compete for the cores).

Seeding: a ``numpy.random.SeedSequence`` of the run's seed gives independent streams
to the environment's reward draws and to the policy (and the Gem Mining instance is
drawn from it too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import marl_envs
from marl_envs.bandits.base import BanditEnv
from policies.mauce.policies import ALGORITHMS, make_policy

PROBLEMS = ("chain0101", "gem_mining", "wind_farm")


def make_problem(problem: str, agents: int | None, horizon: int, instance_seed: int) -> BanditEnv:
    """The env of a benchmark; ``agents`` = chain length / number of villages (None: default)."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; allowed: {list(PROBLEMS)}")
    if agents is not None and agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")
    if problem == "chain0101":
        return marl_envs.make("chain0101", n_agents=agents or 10, horizon=horizon)
    if problem == "gem_mining":
        return marl_envs.make(
            "gem_mining", instance_seed=instance_seed, n_villages=agents, horizon=horizon
        )
    if agents not in (None, 7):
        raise ValueError(f"wind_farm has 7 controllable turbines; got agents={agents} (allowed: 7)")
    return marl_envs.make("wind_farm", horizon=horizon)


@dataclass
class RunResult:
    algo: str
    seed: int
    regret: float  # cumulative (normalised) regret at the horizon
    us_per_step: float  # policy CPU time per round
    wall_us_per_step: float
    checkpoints: list[int] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)  # cumulative regret at the checkpoints


def run_one(
    problem: str,
    algo: str,
    seed: int,
    horizon: int,
    agents: int | None = None,
    n_points: int = 100,
) -> RunResult:
    """Play one run; returns its final regret, time per step and a regret curve."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; allowed: {list(ALGORITHMS)}")
    ss = np.random.SeedSequence(seed)
    env_seed, policy_seed, instance_seed = (int(x) for x in ss.generate_state(3) % (2**31))
    env = make_problem(problem, agents, horizon, instance_seed)
    model = env.model
    policy = make_policy(
        algo, model.graph, model.reward_ranges, policy_seed, model.reward_kind, problem
    )
    env.reset(seed=env_seed)
    agents_ids = env.possible_agents
    checkpoints = sorted({int(x) for x in np.linspace(1, horizon, n_points)})
    marks = set(checkpoints)
    curve: list[float] = []
    cum = 0.0
    cpu_time = wall_time = 0.0
    cpu, wall = time.process_time, time.perf_counter
    for t in range(1, horizon + 1):
        c0, w0 = cpu(), wall()
        a = policy.act()
        cpu_time += cpu() - c0
        wall_time += wall() - w0
        _, _, _, _, infos = env.step(dict(zip(agents_ids, a.tolist(), strict=True)))
        info = infos[agents_ids[0]]
        c0, w0 = cpu(), wall()
        policy.observe(a, info["factor_rewards"])
        cpu_time += cpu() - c0
        wall_time += wall() - w0
        cum += info["regret"]
        if t in marks:
            curve.append(cum / model.regret_scale)
    return RunResult(
        algo,
        seed,
        cum / model.regret_scale,
        1e6 * cpu_time / horizon,
        1e6 * wall_time / horizon,
        checkpoints,
        curve,
    )
