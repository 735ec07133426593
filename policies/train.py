"""Train PPO, DQN or A2C on a FEN environment with RLlib (new API stack).

    python scripts/train.py --env job_scheduling --algo ppo --policy-mode independent \
        --iterations 50 --num-env-runners 1 --envs-per-runner 8 --seed 0 \
        --logdir runs/ppo_js [--address 127.0.0.1:6379] [--checkpoint-every 10] \
        [--resume runs/ppo_js/checkpoints/iter_000010] [--set lr=1e-3 ...]

Fast sampling with parameter sharing (PPO/A2C): ``--policy-mode shared --sampler vector``
(agents of ``--envs-per-runner`` env copies as one single-agent vector; see
docs/training.md).

Warm start (PPO/A2C on resource_allocation): ``--warm-start tetris`` fits the policy to a
scheduler's decisions before RL (policies/warm_start.py, DeepRM's supervised start).
DeepRM's time-dependent baseline (A2C/PPO, ``--sampler vector``): ``--baseline same_seed_mean``
(policies/same_seed_baseline.py).

Prints one progress line per iteration and a summary; TensorBoard:
``tensorboard --logdir runs/ppo_js``. Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import marl_envs
from policies.cli import (  # light: no Ray import before the checks
    ALGOS,
    MODELS,
    POLICY_MODES,
    TRAIN_ENVS,
    add_run_arguments,
    check_choice,
    check_env,
    check_warm_start,
    cli_errors,
    console_main,
    parse_env_kwargs,
    parse_with_config,
    run_settings,
)

SAMPLERS = ("multi_agent", "vector")  # policies.vector_sampler.SAMPLERS (no Ray import here)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default=None, help=f"one of {list(TRAIN_ENVS)} (required)")
    p.add_argument("--algo", default=None, help=f"one of {list(ALGOS)} (required)")
    p.add_argument("--policy-mode", default="independent", help=f"one of {list(POLICY_MODES)}")
    p.add_argument(
        "--env-kwargs", default="{}",
        help='JSON dict of environment keyword arguments, e.g. \'{"max_cycles": 200}\'',
    )
    p.add_argument(
        "--sampler", default="multi_agent",
        help="multi_agent (default): RLlib's MultiAgentEnvRunner; vector: agents of the env "
        "copies as one single-agent vector, one shared module (--policy-mode shared, ppo/a2c)",
    )
    p.add_argument(
        "--model", default="mlp",
        help="mlp (default): RLlib's MLP; slot_scoring: one network scores every job slot "
        "(ppo/a2c on resource_allocation, policies/slot_scoring.py)",
    )
    p.add_argument(
        "--warm-start", default=None, metavar="SCHEDULER",
        help="ppo/a2c on resource_allocation: pretrain the policy on this scheduler's "
        "decisions (fifo, sjf, packer, tetris, drf) before RL",
    )
    p.add_argument(
        "--baseline", default="critic",
        help="A2C's/PPO's advantage baseline: critic (GAE with the value function, default) or "
        "same_seed_mean (--sampler vector: the env copies replay the same seed and each "
        "step's baseline is the other copies' mean return, DeepRM's)",
    )
    p.add_argument("--warm-start-episodes", type=int, default=None,
                   help="demonstration episodes of --warm-start (default 50)")
    add_run_arguments(p)
    args = parse_with_config(p, argv)
    missing = [f"--{k}" for k in ("env", "algo") if getattr(args, k) is None]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)} (on the command "
                "line or in --config)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with cli_errors():
        check_env(args.env)
        check_choice("algorithm", args.algo, ALGOS)
        check_choice("policy mode", args.policy_mode, POLICY_MODES)
        check_choice("sampler", args.sampler, SAMPLERS)
        check_choice("model", args.model, MODELS)
        if args.sampler == "vector" and args.policy_mode != "shared":
            raise ValueError("--sampler vector needs --policy-mode shared")
        run = run_settings(args)
        check_warm_start(args.warm_start, args.warm_start_episodes, env=args.env,
                         algo=args.algo, resume=run["resume"])
        env_kwargs = parse_env_kwargs(args.env_kwargs)
        from policies.config import build_config

        if run["resume"] is not None:
            from policies.training import check_resume_compatible

            # missing path / another env's or algorithm's checkpoint -> exit 2
            check_resume_compatible(
                {"env": args.env, "algo": args.algo, "policy_mode": args.policy_mode,
                 "sampler": args.sampler},
                run["resume"],
            )
        logdir = run["logdir"] or f"runs/{args.algo}_{args.policy_mode}_{args.env}_s{args.seed}"
        config = build_config(
            args.env, args.algo, args.policy_mode,
            seed=run["seed"], num_env_runners=run["num_env_runners"],
            envs_per_runner=run["envs_per_runner"], overrides=run["overrides"],
            env_kwargs=env_kwargs, sampler=args.sampler, model=args.model,
            baseline=args.baseline,
        )
        from policies.training import init_ray, run_training

        warm_start = None
        if args.warm_start is not None:
            from policies.warm_start import DEMO_EPISODES, warm_start_from

            warm_start = warm_start_from(
                config, args.warm_start, seed=run["seed"],
                episodes=args.warm_start_episodes or DEMO_EPISODES)
        init_ray(run["address"])
        run_info = {
            "env": args.env, "algo": args.algo, "policy_mode": args.policy_mode,
            "sampler": args.sampler, "model": args.model, "baseline": args.baseline,
            "factory": "plain",
            "env_config": config.env_config,
            "seed": run["seed"],
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            # what unset values stand for: typing a default out resumes the same run
            "defaults": {"env_config": {"env_kwargs": marl_envs.default_kwargs(args.env)}},
        }
        summary = run_training(
            config, iterations=run["iterations"], logdir=logdir,
            checkpoint_every=run["checkpoint_every"], resume=run["resume"],
            run_info=run_info, verbose=not args.quiet, warm_start=warm_start,
        )
    summary.pop("result", None)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2, default=str))
    m, latest = summary["metrics"], summary.get("latest_metrics", {})
    at = summary.get("latest_metrics_iteration", {})
    parts = []
    for k in ("fairness/utilization", "fairness/cv", "fairness/min_utility",
              "fairness/max_utility", "episode/return_mean"):
        if k in m:
            parts.append(f"{k}={m[k]:.4g}")
        elif k in latest:  # no episode ended in the last iteration
            parts.append(f"{k}={latest[k]:.4g} (iteration {at[k]})")
    print("summary: " + ", ".join(parts))
    return 0


def entry_point() -> int:
    """The console script ``fairmarl-train``: what ``scripts/train.py`` runs."""
    return console_main(main)
