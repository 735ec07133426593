"""Trial kind ``scheduler``: one heuristic scheduler evaluated on ``resource_allocation``.

A trial runs scheduler ``scheduler`` of :data:`policies.heuristics.schedulers.SCHEDULERS`
(``fifo``, ``sjf``, ``packer``, ``tetris``, ``drf``, ``central_sjf``) for ``episodes``
seeded episodes (episode ``i`` resets with seed ``eval_seed + i``, the test episodes of
the learner studies' ``evaluation.test_seed``) on ``resource_allocation`` made with
``env_kwargs`` (``load`` etc.), and reports the means over the episodes of the env's
``episode_stats`` as its ``metrics``: ``avg_slowdown`` (every job that spent a step in the
system; an unfinished one with its slowdown so far), ``avg_slowdown_completed`` (DeepRM's
completed-only average), ``cv`` of the tenants' shares of cluster resource-time,
``utilization``, ``completed_jobs``, ``unfinished_jobs``, ``refused_requests`` (requests
the cluster refused because the job no longer fit), ``dominant_share_spread``
(time-averaged max - min of the tenants' dominant shares) and ``makespan``. The summary
also keeps every episode's ``avg_slowdown`` and ``cv`` (``per_episode``), for paired
comparisons on the same episodes.

``drain_cycles`` > 0 evaluates *drained* episodes: jobs arrive for the episode's
``max_cycles`` steps (default 200), then the episode runs ``drain_cycles`` more steps
without arrivals, so every job counts with (nearly) its full slowdown (the env's
``arrival_cycles``; the first steps are those of the undrained episode with the same
seed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from policies.experiments.kinds import Param, TrialKind, int_at_least, keyword_arguments_of

ENV = "resource_allocation"
#: the episode_stats figures a trial reports (means over its episodes)
FIGURES = ("avg_slowdown", "avg_slowdown_completed", "cv", "utilization", "completed_jobs",
           "unfinished_jobs", "refused_requests", "dominant_share_spread", "makespan",
           "min_utility", "max_utility")
#: the figures kept per episode (``per_episode``)
PAIRED = ("avg_slowdown", "cv")
#: the env's episode length when env_kwargs do not set ``max_cycles``
DEFAULT_CYCLES = 200


def _check_scheduler(value: Any) -> None:
    from policies.heuristics.schedulers import SCHEDULERS

    if not isinstance(value, str) or value not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {value!r}; allowed: {list(SCHEDULERS)}")


def _check_env_kwargs(value: Any) -> None:
    from marl_envs.resource_allocation_v0 import ResourceAllocationEnv

    keyword_arguments_of(ResourceAllocationEnv)(value)
    if "arrival_cycles" in value:
        raise ValueError(f"{value!r}: set drain_cycles, not arrival_cycles (the trial sets "
                         "it from max_cycles)")


PARAMS: dict[str, Param] = {
    "scheduler": Param(None, _check_scheduler, "a scheduler of policies.heuristics.schedulers"),
    "env_kwargs": Param({}, _check_env_kwargs, "resource_allocation's keyword arguments"),
    "episodes": Param(10, int_at_least(1), "seeded episodes"),
    "eval_seed": Param(10_000, int_at_least(0), "the first episode's seed"),
    "drain_cycles": Param(0, int_at_least(0), "steps without arrivals after max_cycles"),
}


def episode_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """The env kwargs of a trial's episodes: ``env_kwargs``, drained as ``drain_cycles``
    says (the module docstring)."""
    kwargs = dict(params["env_kwargs"])
    drain = int(params["drain_cycles"])
    if drain:
        arrivals = int(kwargs.get("max_cycles", DEFAULT_CYCLES))
        kwargs.update(arrival_cycles=arrivals, max_cycles=arrivals + drain)
    return kwargs


def run(params: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run the scheduler on the trial's episodes; its summary (``metrics``, ``per_episode``,
    ``episodes``)."""
    import marl_envs
    from policies.heuristics.schedulers import make_scheduler

    env = marl_envs.make(ENV, **episode_kwargs(params))
    stats = []
    try:
        for i in range(params["episodes"]):
            scheduler = make_scheduler(params["scheduler"])
            obs, infos = env.reset(seed=params["eval_seed"] + i)
            while env.agents:
                obs, _, _, _, infos = env.step(scheduler.act(obs, infos))
            stats.append(env.episode_stats())
    finally:
        env.close()
    n = len(stats)
    return {
        "metrics": {k: float(sum(s[k] for s in stats) / n) for k in FIGURES},
        "per_episode": {k: [float(s[k]) for s in stats] for k in PAIRED},
        "episodes": f"{params['eval_seed']}..{params['eval_seed'] + n - 1}",
    }


METRICS = {"avg_slowdown": ".2f", "avg_slowdown_completed": ".2f", "cv": ".3f",
           "utilization": ".3f", "completed_jobs": ".1f", "unfinished_jobs": ".1f",
           "refused_requests": ".1f", "dominant_share_spread": ".3f"}



def _notes(experiment: Any, summaries: list[dict[str, Any]]) -> str:
    """The best of the issue's baselines per episode setting (the learners' target), and
    ``central_sjf``'s figure beside it."""
    from policies.heuristics.schedulers import TARGET_SCHEDULERS

    groups: dict[str, dict[str, float]] = {}
    for s in summaries:
        p = s["params"]
        kwargs = {k: v for k, v in p["env_kwargs"].items()
                  if not (k == "max_cycles" and v == DEFAULT_CYCLES)}
        load = kwargs.pop("load", "default")
        where = (f"load {load}" + (f", {json.dumps(kwargs, sort_keys=True)}" if kwargs else "")
                 + (f", drained {p['drain_cycles']}" if p.get("drain_cycles") else ""))
        groups.setdefault(where, {})[p["scheduler"]] = s["metrics"]["avg_slowdown"]
    lines = ["Best of the issue's baselines (" + ", ".join(TARGET_SCHEDULERS) + ") by average "
             "slowdown, the figure the learners' target compares with, and the cluster-wide "
             "`central_sjf` (a reference, not a baseline):", "",
             "| episodes | best baseline | central_sjf |", "|---|---|---|"]
    for where, figures in groups.items():
        base = {k: v for k, v in figures.items() if k in TARGET_SCHEDULERS}
        if not base:
            continue
        best = min(base, key=base.get)
        central = figures.get("central_sjf")
        lines.append(f"| {where} | {base[best]:.2f} ({best}) | "
                     + (f"{central:.2f}" if central is not None else "-") + " |")
    return "\n".join(lines)


SCHEDULER = TrialKind(name="scheduler", params=PARAMS, run=run, metrics=METRICS,
                      notes=_notes)
