#!/usr/bin/env python
"""Greedy evaluation of a checkpoint made by scripts/train.py (or any run_training caller).

    python scripts/evaluate.py --checkpoint runs/ppo_js/checkpoints/iter_000050 \
        --episodes 10 [--render ansi] [--json eval.json] [--env job_scheduling] \
        [--sample] [--fix ctrl=0]

Prints per-agent utility, utilization, CV, min/max utility (means over episodes);
``--json`` writes {"utilization", "cv", "min_utility", "max_utility",
"per_agent_utility": {agent: ..}, "episodes", "actions", "fixed_actions"}. ``--sample``
draws actions from the policies' distributions instead of taking the greedy ones;
``--fix MODULE=ACTION`` (repeatable) makes every agent of that module take that action,
an ablation (FEN: ``--fix ctrl=0`` pins the shared controller to sub-policy 0). Bad
input: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

from policies.cli import (  # noqa: E402
    cli_errors,
    nonneg_int,
    output_file,
    parse_env_kwargs,
    positive_int,
)

JSON_KEYS = ("utilization", "cv", "min_utility", "max_utility", "per_agent_utility", "episodes",
             "actions", "fixed_actions")


def parse_fixed(items: list[str] | None) -> dict[str, int]:
    """``["ctrl=0"]`` -> ``{"ctrl": 0}``; a malformed item raises naming it."""
    fixed: dict[str, int] = {}
    for item in items or []:
        module_id, sep, action = item.partition("=")
        if not sep or not module_id.strip() or not action.strip().isdigit():
            raise ValueError(f"--fix expects MODULE=ACTION (an action index >= 0), got {item!r}")
        fixed[module_id.strip()] = int(action)
    return fixed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory")
    p.add_argument("--episodes", type=positive_int, default=5, help="episodes (default 5)")
    p.add_argument("--render", default=None, help="'ansi': print the first episode's frames")
    p.add_argument("--json", type=output_file, default=None, metavar="FILE",
                   help="write the figures as JSON")
    p.add_argument("--env", default=None, help="fail unless the checkpoint is of this env")
    p.add_argument("--seed", type=nonneg_int, default=10_000, help="seed of the first episode")
    p.add_argument(
        "--env-kwargs", default="{}", help="JSON dict overriding env kwargs (e.g. max_cycles)"
    )
    p.add_argument("--sample", action="store_true",
                   help="sample actions from the policies (seeded by --seed), not greedy")
    p.add_argument("--fix", action="append", metavar="MODULE=ACTION",
                   help="every agent of MODULE takes ACTION (repeatable; e.g. ctrl=0)")
    args = p.parse_args(argv)
    with cli_errors():
        env_kwargs = parse_env_kwargs(args.env_kwargs)
        fixed = parse_fixed(args.fix)
        from policies.training import evaluate_checkpoint, format_evaluation

        report = evaluate_checkpoint(
            args.checkpoint, episodes=args.episodes, seed=args.seed, env=args.env,
            render=args.render, env_kwargs=env_kwargs, sample=args.sample,
            fixed_actions=fixed,
        )
    print(format_evaluation(report))
    if args.json:
        Path(args.json).write_text(json.dumps({k: report[k] for k in JSON_KEYS}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
