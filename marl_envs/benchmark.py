"""Throughput benchmark of the environments: agent-steps per second with random actions.

What is timed is the environment alone: the random actions are drawn with numpy in
one bulk call and turned into the per-step action dicts *before* the clock starts,
so neither action sampling nor dict building is counted. Inside the timed loop the
only work is ``env.step(actions)`` (and ``env.reset()`` whenever an episode ends,
which is part of running an environment and is counted). One agent-step is one
agent acting once, so a step of a 10-agent env counts 10.

The loop is single-threaded Python, so it runs on one core. The headline figure is
wall-clock time, best of several repeats: on a shared machine that is the run least
disturbed by other processes (the same convention as :mod:`timeit`). The median of
the repeats and the rate per second of the process's own CPU time (which excludes
time the scheduler gave to other processes) are reported beside it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import marl_envs

#: the environments of the FEN paper (the registry may hold others)
FEN_ENV_NAMES: tuple[str, ...] = ("job_scheduling", "matthew_effect", "manufacturing_plant")
#: agent-steps per second each environment should reach on one core
TARGET_AGENT_STEPS_PER_SECOND = 50_000


@dataclass(frozen=True)
class ThroughputResult:
    """Timing of one environment: ``steps`` env steps, repeated ``len(seconds)`` times."""

    env_name: str
    n_agents: int
    steps: int
    episodes: int
    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...] = ()

    @property
    def agent_steps(self) -> int:
        return self.steps * self.n_agents

    @property
    def best_agent_steps_per_second(self) -> float:
        return self.agent_steps / min(self.seconds)

    @property
    def median_agent_steps_per_second(self) -> float:
        return self.agent_steps / statistics.median(self.seconds)

    @property
    def best_env_steps_per_second(self) -> float:
        return self.steps / min(self.seconds)

    @property
    def best_agent_steps_per_cpu_second(self) -> float:
        """Agent-steps per second of this process's CPU time (blind to time-sharing)."""
        return self.agent_steps / min(self.cpu_seconds) if self.cpu_seconds else float("nan")


def random_action_dicts(
    agents: list[str], n_actions: int, steps: int, seed: int
) -> list[dict[str, int]]:
    """``steps`` joint actions, drawn in one numpy call, as ready-to-use action dicts."""
    table = np.random.default_rng(seed).integers(0, n_actions, size=(steps, len(agents)))
    return [dict(zip(agents, row, strict=True)) for row in table.tolist()]


def benchmark_env(
    env_name: str,
    steps: int = 20_000,
    repeats: int = 5,
    seed: int = 0,
    **env_kwargs: Any,
) -> ThroughputResult:
    """Step ``env_name`` with uniform random actions and time it.

    Each repeat resets the env with ``seed`` and replays the same pre-drawn actions,
    resetting (unseeded, continuing the env's generator) whenever an episode ends.
    """
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be >= 1, got {steps}, {repeats}")
    env = marl_envs.make(env_name, **env_kwargs)
    agents = list(env.possible_agents)
    n_actions = int(env.action_space(agents[0]).n)
    actions = random_action_dicts(agents, n_actions, steps, seed)
    seconds: list[float] = []
    cpu_seconds: list[float] = []
    episodes = 0
    for _ in range(repeats):
        env.reset(seed=seed)
        episodes = 1
        step = env.step
        reset = env.reset
        cpu_start = time.process_time()
        start = time.perf_counter()
        for joint in actions:
            if not env.agents:
                reset()
                episodes += 1
            step(joint)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    env.close()
    return ThroughputResult(
        env_name, len(agents), steps, episodes, tuple(seconds), tuple(cpu_seconds)
    )


def machine_note() -> str:
    """One line describing where the benchmark ran."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    loads = os.getloadavg() if hasattr(os, "getloadavg") else None
    load = ", ".join(f"{x:.2f}" for x in loads) if loads else "n/a"
    note = (
        f"{cpu}; {os.cpu_count()} logical CPUs (benchmark loop single-threaded, one core); "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"numpy {np.__version__}; load average before the run: {load}"
    )
    if loads and loads[0] > (os.cpu_count() or 1):
        note += (
            " -- more runnable processes than cores, so the wall-clock figures are cut by "
            "time-sharing with other work; the CPU-time column is the env's own cost"
        )
    return note


def markdown_report(
    results: list[ThroughputResult], command: str, machine: str, repeats: int
) -> str:
    """The ``results/env_throughput/README.md`` page: table, machine note and command."""
    target = TARGET_AGENT_STEPS_PER_SECOND
    lines = [
        "# Environment throughput",
        "",
        "Agent-steps per second when stepping each environment with uniform random "
        "actions. The actions are pre-generated with numpy in bulk (and packed into "
        "the per-step action dicts) before timing, so the figures measure the "
        "environment's `step` (plus `reset` at episode ends), not action sampling. "
        f"Wall-clock time, best and median of {repeats} repeats; the CPU column "
        "divides by the process's own CPU time instead (best repeat), which excludes "
        "time the scheduler gave to other processes. Target: "
        f">= {target:,} agent-steps/s per environment on one core (judged on the "
        "wall-clock best).",
        "",
        "| environment | agents | env steps timed | episodes | agent-steps/s (best) "
        "| agent-steps/s (median) | agent-steps per CPU-s | target met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ok = "yes" if r.best_agent_steps_per_second >= target else "**no**"
        lines.append(
            f"| {r.env_name} | {r.n_agents} | {r.steps:,} | {r.episodes} "
            f"| {r.best_agent_steps_per_second:,.0f} | {r.median_agent_steps_per_second:,.0f} "
            f"| {r.best_agent_steps_per_cpu_second:,.0f} | {ok} |"
        )
    lines += [
        "",
        f"Machine: {machine}. The machine is shared with other work, so the median "
        "can sit well below the best.",
        "",
        "Produced by (from the repository root):",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "FEN_ENV_NAMES",
    "TARGET_AGENT_STEPS_PER_SECOND",
    "ThroughputResult",
    "benchmark_env",
    "machine_note",
    "markdown_report",
    "random_action_dicts",
]
