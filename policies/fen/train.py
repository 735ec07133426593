"""Command line of ``scripts/train_fen.py``: train FEN, a variant or a baseline.

    python scripts/train_fen.py --env job_scheduling --variant fen --iterations 10 \
        --logdir runs/fen_js [--policy-mode shared] [--period 25] [--subpolicies 4] \
        [--gossip-graph ring --gossip-rounds 10] [--intrinsic-reward log_p] \
        [--warm-start central_sjf --controller-sub0-prob 0.7] \
        [--address HOST:PORT] [--checkpoint-every 5] [--resume CHECKPOINT] [--set lr=1e-4]

Prints one progress line per iteration, then the final fairness table and where the
TensorBoard logs are. Bad input: one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import marl_envs
from policies.cli import (
    MODELS,
    add_run_arguments,
    check_choice,
    check_warm_start,
    cli_errors,
    console_main,
    parse_env_kwargs,
    parse_with_config,
    run_settings,
)
from policies.fen.discriminator import REWARDS
from policies.fen.envs import CONTROLLER_HORIZONS, SEGMENT_ENDS
from policies.fen.gossip import GRAPHS
from policies.fen.reward import EFFICIENCY_WINDOWS
from policies.fen.variants import (
    DEFAULT_POLICY_MODE,
    POLICY_MODES,
    PRESETS,
    VARIANTS,
    preset_options,
    resolved_defaults,
)

FEN_ENVS = tuple(DEFAULT_POLICY_MODE)


def add_fen_arguments(p: argparse.ArgumentParser) -> None:
    """The FEN options (T, M, gossip, intrinsic reward, controller input and entropy)."""
    g = p.add_argument_group("FEN")
    g.add_argument("--preset", default=None,
                   help=f"named option set: {list(PRESETS)} (authors: the authors' code, rhat "
                        "over the whole episode, each period's segment terminated, fen_gossip on "
                        "random 3-peer gossip; the flags below override it). Default: rhat over "
                        "the period just ended, segments truncated, gossip on a ring "
                        "(results/fen_job_scheduling/report.md)")
    g.add_argument("--period", type=int, default=None, help="controller period T")
    g.add_argument("--subpolicies", type=int, default=None, help="number of sub-policies M")
    g.add_argument("--gossip-graph", default=None, help=f"fen_gossip graph: {list(GRAPHS)}")
    g.add_argument("--gossip-rounds", type=int, default=None, help="fen_gossip rounds per step")
    g.add_argument("--intrinsic-reward", default=None,
                   help=f"sub-policies' reward: {list(REWARDS)} (default log_p)")
    g.add_argument("--feature-scale", type=float, default=None,
                   help="multiply (u_i - ubar)/ubar in the controller's observation (default 1)")
    g.add_argument("--controller-entropy", type=float, default=None,
                   help="entropy coefficient of the controllers (default: the common 0.03)")
    g.add_argument("--controller-sub0-prob", type=float, default=None, metavar="P",
                   help="the controllers start choosing sub-policy 0 (the one trained on the "
                        "environment reward) with probability P in (0, 1), the others evenly "
                        "(default: RLlib's initialisation, about uniform); e.g. with "
                        "--warm-start, see policies/fen/controller_prior.py")
    g.add_argument("--subpolicy0-entropy", type=float, default=None,
                   help="entropy coefficient of sub-policy 0 (module sub0), the one trained on "
                        "the environment reward (default: the common 0.03)")
    g.add_argument("--efficiency", default=None,
                   help=f"what rhat's efficiency term averages over: {list(EFFICIENCY_WINDOWS)} "
                        "(default period: the controller period just ended; episode: the "
                        "paper's, see policies/fen/reward.py)")
    g.add_argument("--controller-horizon", default=None,
                   help=f"what a controller decision is credited with: {list(CONTROLLER_HORIZONS)} "
                        "(default period: its period's rhat, gamma 0 as in the authors' code; "
                        "episode: the discounted sum of rhat to the episode's end, the paper's "
                        "objective, with the common gamma per decision)")
    g.add_argument("--segment-end", default=None,
                   help=f"how a sub-policy's segment ends with its period: {list(SEGMENT_ENDS)} "
                        "(default truncate: cut by the period, PPO bootstraps from the "
                        "sub-policy's value of the last observation; terminate: an episode of "
                        "its own, as in the authors' code)")
    g.add_argument("--model", default=None,
                   help="network of the sub-policies (and flat policies): mlp (default) or "
                        "slot_scoring (envs with job slots, policies/slot_scoring.py)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train FEN (or a fairness baseline) with RLlib.")
    p.add_argument("--env", default="job_scheduling", help=f"one of {list(FEN_ENVS)}")
    p.add_argument("--variant", default="fen", help=f"one of {list(VARIANTS)}")
    p.add_argument("--policy-mode", default=None,
                   help=f"one of {list(POLICY_MODES)} (default: shared for job_scheduling and "
                        "matthew_effect, independent for manufacturing_plant)")
    add_fen_arguments(p)
    p.add_argument("--env-kwargs", default="{}",
                   help='JSON dict of environment keyword arguments, e.g. \'{"max_cycles": 200}\'')
    p.add_argument("--warm-start", default=None, metavar="SCHEDULER",
                   help="resource_allocation: pretrain sub-policy 0 (trained on the environment "
                        "reward) on this scheduler's decisions before RL (policies/warm_start.py)")
    p.add_argument("--warm-start-episodes", type=int, default=None,
                   help="demonstration episodes of --warm-start (default 50)")
    p.add_argument("--sampler", default="auto",
                   help="auto (default): vector wherever it applies, else multi_agent; "
                        "vector (fen and fen_gossip with the mlp model and no action mask: the "
                        "hierarchy sampled in batches, the same episodes reach the learner, "
                        "policies/fen/vector_runner.py); multi_agent (RLlib's "
                        "MultiAgentEnvRunner)")
    add_run_arguments(p)
    # FEN samples in this process by default: with PPO's synchronous updates a remote
    # runner only adds the transfer of its episodes (results/fen_sampling/README.md)
    p.set_defaults(num_env_runners=0)
    p.add_argument("--main-cpus", type=int, default=2,
                   help="CPUs of the main process (default 2): it samples with "
                        "--num-env-runners 0 (the default), and PPO's update runs with these "
                        "(plus the env runners' CPUs on a one-node Ray) as torch threads, "
                        "capped by the machine's")
    return parse_with_config(p, argv)


def fen_options(args: argparse.Namespace, variant: str | None = None) -> dict[str, Any]:
    """The FEN options of the flags and ``--preset``, validated, without those equal to
    the defaults (``variant``: only the preset's options it uses)."""
    from policies.config import OVERRIDE_RANGES, check_in_range  # imports RLlib

    if args.gossip_graph is not None and args.gossip_graph not in GRAPHS:
        raise ValueError(f"unknown --gossip-graph {args.gossip_graph!r}; allowed: {list(GRAPHS)}")
    if args.intrinsic_reward is not None and args.intrinsic_reward not in REWARDS:
        raise ValueError(
            f"unknown --intrinsic-reward {args.intrinsic_reward!r}; allowed: {list(REWARDS)}"
        )
    for flag, value in (("--period", args.period), ("--subpolicies", args.subpolicies),
                        ("--gossip-rounds", args.gossip_rounds)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.feature_scale is not None:
        check_in_range("--feature-scale", args.feature_scale, ("real", 0.0, None, False, True))
    for flag, value in (("--controller-entropy", args.controller_entropy),
                        ("--subpolicy0-entropy", args.subpolicy0_entropy)):
        if value is not None:
            check_in_range(flag, value, OVERRIDE_RANGES["entropy_coeff"])
    if args.controller_sub0_prob is not None and not 0 < args.controller_sub0_prob < 1:
        raise ValueError(f"--controller-sub0-prob must be in (0, 1), got "
                         f"{args.controller_sub0_prob}")
    if args.model is not None:
        check_choice("--model", args.model, MODELS)
    if args.efficiency is not None:
        check_choice("--efficiency", args.efficiency, EFFICIENCY_WINDOWS)
    if args.controller_horizon is not None:
        check_choice("--controller-horizon", args.controller_horizon, CONTROLLER_HORIZONS)
    if args.segment_end is not None:
        check_choice("--segment-end", args.segment_end, SEGMENT_ENDS)
    given = {
        "period": args.period,
        "n_subpolicies": args.subpolicies,
        "gossip_graph": args.gossip_graph,
        "gossip_rounds": args.gossip_rounds,
        "intrinsic_reward": args.intrinsic_reward,
        "feature_scale": args.feature_scale,
        "controller_entropy": args.controller_entropy,
        "controller_sub0_prob": args.controller_sub0_prob,
        "subpolicy0_entropy": args.subpolicy0_entropy,
        "efficiency": args.efficiency,
        # the authors' one-step decisions are the default: naming them changes nothing
        "controller_horizon": None if args.controller_horizon == "period"
        else args.controller_horizon,
        "segment_end": args.segment_end,
        "model": args.model,
    }
    given = {k: v for k, v in given.items() if v is not None}
    # a default named explicitly changes nothing (and no row label); the preset's options
    # apply to the variants that use them, under the flags given
    return preset_options(args.preset, given, variant)


#: the final table's columns: (heading, metric name, format)
TABLE_COLUMNS = (("utilization", "utilization", "{:.3f}"), ("CV", "cv", "{:.3f}"),
                 ("min utility", "min_utility", "{:.3f}"), ("max utility", "max_utility", "{:.3f}"),
                 ("products/agent", "products_per_agent", "{:.1f}"))


def fairness_table(metrics: dict[str, float],
                   references: list[tuple[str, dict[str, float]]] = ()) -> str:
    """The final fairness figures of a run (``fairness/<name>`` metrics) as a text table,
    with ``references`` (:func:`policies.fen.references.reference_rows`) as rows beneath
    it, then each agent's utility and how often the controllers picked each sub-policy."""
    run = {k.removeprefix("fairness/"): v for k, v in metrics.items()
           if k.startswith("fairness/")}
    # the run's figures and the references' (a run in which no episode has ended has none)
    columns = [c for c in TABLE_COLUMNS
               if c[1] in run or any(c[1] in figures for _, figures in references)]
    rows = [("this run", run), *references]
    width = max(len(name) for name, _ in rows)
    lines = ["  ".join([" " * width, *(f"{h:>11}" for h, _, _ in columns)])]
    for name, figures in rows:
        cells = [fmt.format(figures[m]) if m in figures else "-" for _, m, fmt in columns]
        lines.append("  ".join([f"{name:<{width}}", *(f"{c:>11}" for c in cells)]))
    if "fair_efficient_reward" in run:
        lines.append(f"\nfair-efficient reward {run['fair_efficient_reward']:.4f}")
    agents = sorted(k.removeprefix("utility/") for k in run if k.startswith("utility/"))
    if agents:
        lines.append("utility per agent: " + ", ".join(
            f"{a} {run['utility/' + a]:.4f}" for a in agents))
    choices = sorted(k for k in run if k.startswith("controller/choice_freq/"))
    if choices:
        lines.append("controllers pick: " + ", ".join(
            f"{k.rsplit('/', 1)[1]} {run[k]:.3f}" for k in choices))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with cli_errors():
        from policies.fen.config import build_fen_config, sampler_of
        from policies.training import check_resume_compatible, init_ray, run_training

        run = run_settings(args)
        check_warm_start(args.warm_start, args.warm_start_episodes, env=args.env, algo="ppo",
                         resume=run["resume"])
        options = fen_options(args, args.variant)
        env_kwargs = parse_env_kwargs(args.env_kwargs)
        if args.policy_mode is not None and args.policy_mode not in POLICY_MODES:
            raise ValueError(
                f"unknown --policy-mode {args.policy_mode!r}; allowed: {list(POLICY_MODES)}")
        config = build_fen_config(
            args.env, args.variant, policy_mode=args.policy_mode, seed=run["seed"],
            num_env_runners=run["num_env_runners"], envs_per_runner=run["envs_per_runner"],
            env_kwargs=env_kwargs, fen_options=options, overrides=run["overrides"],
            sampler=args.sampler, main_cpus=args.main_cpus,
        )
        run_info = {
            "env": args.env, "variant": args.variant, "algo": "ppo",
            "policy_mode": args.policy_mode or DEFAULT_POLICY_MODE[args.env],
            "factory": config.env_config["factory"], "env_config": config.env_config,
            "seed": run["seed"], "sampler": sampler_of(config),
            "command": " ".join(["train_fen.py", *sys.argv[1:]]),
            # what unset values stand for: typing a default out resumes the same run
            "defaults": {"env_config": {"env_kwargs": marl_envs.default_kwargs(args.env),
                                        "fen": resolved_defaults(args.env)}},
        }
        if run["resume"] is not None:
            check_resume_compatible(run_info, run["resume"])  # before starting Ray
        warm_start = None
        if args.warm_start is not None:
            from policies.warm_start import DEMO_EPISODES, warm_start_from

            warm_start = warm_start_from(config, args.warm_start, seed=run["seed"],
                                         episodes=args.warm_start_episodes or DEMO_EPISODES)
        logdir = run["logdir"] or f"runs/fen_{args.variant}_{args.env}_s{run['seed']}"
        init_ray(run["address"])
        summary = run_training(
            config, iterations=run["iterations"], logdir=logdir,
            checkpoint_every=run["checkpoint_every"], resume=run["resume"],
            run_info=run_info, verbose=not args.quiet, warm_start=warm_start,
        )
    summary.pop("result", None)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2, default=str))
    latest = summary["latest_metrics"]  # an iteration in which no episode ended has none
    at = summary["latest_metrics_iteration"].get("fairness/utilization")
    as_of = (f"fairness of the last 20 episodes as of iteration {at}" if at is not None else
             "no episode has ended yet, so this run has no fairness figures (train more "
             "iterations)")
    print(f"\nFEN variant {args.variant!r} on {args.env}, after {summary['training_iteration']} "
          f"iterations ({summary['env_steps']} env steps, {summary['wall_time_s']:.0f} s); "
          f"{as_of}:")
    from policies.fen.references import reference_rows

    print(fairness_table(latest, reference_rows(args.env, env_kwargs)))
    print(f"\ncheckpoint: {summary['checkpoint']}")
    print(f"TensorBoard: tensorboard --logdir {summary['logdir']}")
    return 0


def entry_point() -> int:
    """The console script ``fairmarl-train-fen``: what ``scripts/train_fen.py`` runs."""
    return console_main(main)
