"""Regret experiments on the bandit benchmarks (the logic behind ``scripts/run_bandits.py``).

One *run* is one seed of one algorithm on one problem instance: the policy plays
``horizon`` rounds of the PettingZoo env, and the exact expected regret
``E F(a*) - E F(a_t)`` is accumulated (divided by ``model.regret_scale``: ``n-1``
on the chain, 1 on the normalised problems). Time per step counts the policy only
(``act`` + ``observe``), not the environment: ``us_per_step`` is the process's CPU
time (``time.process_time``; robust on a shared machine), ``wall_us_per_step``
the elapsed time (inflated when other jobs compete for the cores).

Seeding: run ``r`` uses ``seed + r``; a ``numpy.random.SeedSequence`` of it gives
independent streams to the environment's reward draws and to the policy (and the
Gem Mining instance is drawn from it too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
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


def run_many(
    problem: str,
    algos: list[str],
    runs: int,
    horizon: int,
    agents: int | None = None,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[str], None] | None = print,
) -> dict[str, list[RunResult]]:
    """All ``runs`` seeds of every algorithm, in ``workers`` processes."""
    bad = [a for a in algos if a not in ALGORITHMS]
    if bad:
        raise ValueError(f"unknown algorithm(s) {bad}; allowed: {list(ALGORITHMS)}")
    if runs < 1 or workers < 1 or horizon < 1:
        raise ValueError(
            f"runs, workers and horizon must be >= 1; got {runs}, {workers}, {horizon}"
        )
    jobs = [(problem, a, seed + r, horizon, agents) for a in algos for r in range(runs)]
    out: dict[str, list[RunResult]] = {a: [] for a in algos}
    start = time.perf_counter()

    def report(res: RunResult, done: int) -> None:
        if progress is not None:
            progress(
                f"[{done}/{len(jobs)}] {res.algo:>14} seed {res.seed}: regret {res.regret:9.2f}, "
                f"{res.us_per_step:8.1f} us/step CPU, {res.wall_us_per_step:8.1f} wall "
                f"({time.perf_counter() - start:6.1f} s)"
            )

    if workers == 1:
        for i, job in enumerate(jobs, 1):
            res = run_one(*job)
            out[res.algo].append(res)
            report(res, i)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_one, *job) for job in jobs]
            for i, fut in enumerate(as_completed(futures), 1):
                res = fut.result()
                out[res.algo].append(res)
                report(res, i)
    for a in algos:
        out[a].sort(key=lambda r: r.seed)
    return out


def summarise(results: dict[str, list[RunResult]]) -> dict[str, dict[str, float]]:
    """``{algo: {"regret_mean", "regret_std", "us_per_step", "wall_us_per_step", "runs"}}``."""
    out = {}
    for algo, rs in results.items():
        regrets = np.array([r.regret for r in rs])
        out[algo] = {
            "regret_mean": float(regrets.mean()),
            "regret_std": float(regrets.std(ddof=1)) if len(rs) > 1 else 0.0,
            "us_per_step": float(np.mean([r.us_per_step for r in rs])),
            "wall_us_per_step": float(np.mean([r.wall_us_per_step for r in rs])),
            "runs": len(rs),
        }
    return out
