"""Slowdown with every job finished: schedulers and trained learners on drained episodes.

The comparison of :mod:`policies.scheduler_comparison` ends every episode at step
``max_cycles`` and charges the jobs still queued their slowdown *so far*, so a policy that
leaves more work unfinished at the end looks better than it is. Here the same episodes
(episode ``i`` resets with seed ``eval_seed + i``) are *drained*: jobs stop arriving after
the training length (``arrival_cycles = max_cycles``), every scheduler keeps scheduling
until its queues are empty, and each job counts with its full slowdown (DeepRM's fixed
job sequence; ``marl_envs.resource_allocation_v0``, *Draining*). Each episode lasts
``drain_cycles`` steps more, and the jobs left at its end are reported.

The learners are evaluated from the checkpoints of cached comparison runs, sampling
their actions as the comparison does; their observations are those of training (waits
are scaled by ``arrival_cycles``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from policies.scheduler_comparison import (
    SCHEDULERS,
    TARGET_SCHEDULERS,
    arrival_steps,
    drain_steps,
    drained_env_kwargs,
    evaluate_heuristic,
    load_key,
    paired_difference,
    scheduler_env_kwargs,
    summarize,
)

#: the figures of each row of the report (summarize's names)
REPORTED = ("slowdown", "completed_jobs", "unfinished_jobs", "makespan", "utilization")


def read_runs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The cached comparison runs at ``paths`` (JSON files of ``runs_dir``); ValueError
    naming a file that is not one or whose checkpoint is missing, or when the runs'
    episodes have different arrival lengths."""
    runs = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ValueError(f"{str(path)!r} is not a cached run (no such file)")
        run = json.loads(path.read_text())
        missing = [k for k in ("learner", "load", "seed", "checkpoint", "env_kwargs")
                   if k not in run]
        if missing:
            raise ValueError(f"{str(path)!r} is not a cached comparison run: it lacks "
                             f"{missing}")
        if run["learner"] == "fen":
            raise ValueError(f"{str(path)!r} is a FEN run; drained evaluation covers the "
                             "heuristics and flat learners (a2c, ppo)")
        if not Path(run["checkpoint"]).exists():
            raise ValueError(f"the checkpoint of {str(path)!r} ({run['checkpoint']}) is "
                             "missing; train the run again with compare_schedulers.py")
        runs.append({**run, "name": path.stem})
    lengths = {arrival_steps(r["env_kwargs"]) for r in runs}
    if len(lengths) > 1:
        raise ValueError(f"the runs were trained with arrivals for {sorted(lengths)} steps; "
                         "the heuristics run the same episodes as the runs, so evaluate "
                         "runs of one arrival length per invocation")
    return runs


def evaluate_drained(runs: Sequence[Mapping[str, Any]], *, drain_cycles: int, episodes: int,
                     eval_seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """``{name: {load: summary}}`` of every heuristic at the runs' loads and of every run
    (named by :func:`run_label`) on drained episodes."""
    from policies.training import evaluate_checkpoint

    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"--episodes must be an integer >= 1, got {episodes!r}")
    if not runs:
        raise ValueError("no runs to evaluate: pass cached run JSON files")
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    loads = sorted({float(r["load"]) for r in runs})
    base = scheduler_env_kwargs(runs[0])
    for name in SCHEDULERS:
        for load in loads:
            kwargs = drained_env_kwargs({**base, "load": load}, drain_cycles)
            figures.setdefault(name, {})[load_key(load)] = evaluate_heuristic(
                name, kwargs, episodes, eval_seed)
        print(f"[{name}] " + ", ".join(f"load {lo}: slowdown {f['slowdown']:.2f}"
                                       for lo, f in figures[name].items()), flush=True)
    for run in runs:
        label = run_label(run)
        if load_key(run["load"]) in figures.get(label, {}):
            raise ValueError(f"two runs are {label!r} at load {run['load']}: evaluate one "
                             "setup per invocation")
        kwargs = drained_env_kwargs(run["env_kwargs"], drain_cycles)
        result = evaluate_checkpoint(run["checkpoint"], episodes=episodes, seed=eval_seed,
                                     env_kwargs={k: kwargs[k] for k in
                                                 ("arrival_cycles", "max_cycles")},
                                     sample=True)
        summary = summarize(result["per_episode"])
        figures.setdefault(label, {})[load_key(run["load"])] = {**summary, "run": run["name"]}
        print(f"[{label} load {run['load']}] slowdown {summary['slowdown']:.2f}, "
              f"unfinished {summary['unfinished_jobs']:.1f}", flush=True)
    return figures


def run_label(run: Mapping[str, Any]) -> str:
    """``<learner> seed <seed>``, with ``, trained drained <steps>`` for runs trained on
    drained episodes."""
    drain = drain_steps(run["env_kwargs"])
    return f"{run['learner']} seed {run['seed']}" + (
        f", trained drained {drain}" if drain else "")


def best_heuristic(figures: Mapping[str, Mapping[str, Mapping[str, Any]]], load: str) -> str:
    """The issue's baseline (:data:`TARGET_SCHEDULERS`) with the lowest slowdown at ``load``."""
    return min((s for s in TARGET_SCHEDULERS if load in figures.get(s, {})),
               key=lambda s: figures[s][load]["slowdown"])


def markdown_report(figures: Mapping[str, Mapping[str, Mapping[str, Any]]],
                    meta: Mapping[str, Any]) -> str:
    """Per load: every scheduler and run, with the learners' paired difference to the
    best heuristic over the same episodes."""
    loads = sorted({lo for by_load in figures.values() for lo in by_load}, key=float)
    out = ["# Resource allocation: slowdown with every job finished (drained episodes)", "",
           f"Command: `{meta['command']}`", "",
           f"Jobs arrive for {meta['arrival_cycles']} steps, as in training and in "
           "`results/resource_allocation.md`; then every scheduler keeps scheduling until "
           f"its queues are empty ({meta['drain_cycles']} more steps). The slowdown "
           "averages every job's full slowdown; `left` counts jobs still unfinished at the "
           f"end. {meta['episodes']} episodes (seeds {meta['eval_seed']}..."
           f"{meta['eval_seed'] + meta['episodes'] - 1}, the comparison's), learners' actions "
           "sampled. `makespan`: the step the last job finished. Utilisation averages over "
           "every step of the episode, the drain too.", ""]
    for load in loads:
        best = best_heuristic(figures, load)
        b = figures[best][load]
        out += [f"## Load {load}", "", "| scheduler | slowdown | vs best heuristic "
                f"({best}, paired SE) | completed | left | makespan | utilisation | run |",
                "|---|---|---|---|---|---|---|---|"]
        for name, by_load in figures.items():
            if load not in by_load:
                continue
            f = by_load[load]
            paired = None if name in SCHEDULERS else paired_difference(f, b)
            diff = "" if paired is None else f"{paired[0]:+.2f} ± {paired[1]:.2f}"
            run = f"`{f['run']}`" if "run" in f else ""
            out.append(f"| {name} | {f['slowdown']:.2f} | {diff} | {f['completed_jobs']:.1f} "
                       f"| {f['unfinished_jobs']:.1f} | {f['makespan']:.0f} "
                       f"| {f['utilization']:.2f} | {run} |")
        out.append("")
    return "\n".join(out)


def json_figures(figures: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """``{name: {load: {figure: value}}}`` of the :data:`REPORTED` figures, per-episode
    slowdowns and the run's name."""
    return {name: {load: {**{k: f[k] for k in REPORTED},
                          "slowdown_episodes": f["slowdown_episodes"],
                          **({"run": f["run"]} if "run" in f else {})}
                   for load, f in by_load.items()}
            for name, by_load in figures.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Heuristics and cached A2C/PPO runs of "
                                "compare_schedulers.py on drained resource_allocation episodes.")
    p.add_argument("runs", nargs="+", help="cached run JSONs of compare_schedulers.py")
    p.add_argument("--drain-cycles", type=int, default=800,
                   help="most steps after the arrivals stop (default 800)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per load")
    p.add_argument("--eval-seed", type=int, default=10_000, help="seed of the first episode")
    p.add_argument("--md", default="results/resource_allocation_drained_eval.md", metavar="FILE")
    p.add_argument("--json", default="results/resource_allocation_drained_eval.json",
                   metavar="FILE")
    return p.parse_args(argv)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Evaluate, write the markdown and JSON reports; return the JSON."""
    drained_env_kwargs({}, args.drain_cycles)  # bad --drain-cycles fails before any work
    runs = read_runs(args.runs)
    figures = evaluate_drained(runs, drain_cycles=args.drain_cycles, episodes=args.episodes,
                               eval_seed=args.eval_seed)
    meta = {"command": command, "drain_cycles": args.drain_cycles, "episodes": args.episodes,
            "eval_seed": args.eval_seed,
            "arrival_cycles": arrival_steps(runs[0]["env_kwargs"])}
    for path in (args.md, args.json):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text(markdown_report(figures, meta) + "\n")
    report = {**meta, "figures": json_figures(figures)}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.md}, {args.json}", flush=True)
    return report
