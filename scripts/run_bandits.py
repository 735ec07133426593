"""Regret experiments of MAUCE and its baselines on the multi-agent bandit benchmarks.

    python scripts/run_bandits.py --problem chain0101 --agents 10 --horizon 10000 \\
        --runs 20 --algos mauce,mats,llr,scql,random --workers 2 \\
        --json results/bandits_chain0101.json

Runs every (algorithm, seed) in its own process (``--workers`` at a time),
prints progress, and writes ``results/bandits_<problem>.md`` (mean ± std of the
cumulative regret at the horizon, policy time per step, the exact command and
the wall time) and ``results/bandits_<problem>.png`` (mean cumulative regret
curves with a ±1 std band). ``--json FILE`` also writes
``{algo: {"regret_mean", "regret_std", "us_per_step", "wall_us_per_step", "runs"}}``
(``us_per_step`` is policy CPU time per round).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from policies.cli import nonneg_int, output_file, positive_int  # noqa: E402
from policies.mauce.policies import ALGORITHMS  # noqa: E402
from policies.mauce.runner import (  # noqa: E402
    PROBLEMS,
    RunResult,
    make_problem,
    run_many,
    summarise,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--problem", required=True, choices=PROBLEMS)
    p.add_argument(
        "--agents", type=positive_int, default=None,
        help="chain length / number of villages (default: 10 / random per instance; wind: 7)",
    )
    p.add_argument("--horizon", type=positive_int, default=10000, help="rounds per run (T)")
    p.add_argument("--runs", type=positive_int, default=20, help="seeds per algorithm")
    p.add_argument(
        "--algos", default="mauce,mats,llr,scql,random",
        help=f"comma-separated, from {','.join(ALGORITHMS)}",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="parallel processes")
    p.add_argument("--seed", type=nonneg_int, default=0, help="run r uses seed + r")
    p.add_argument("--json", type=output_file, default=None,
                   help="also write the summary as JSON here")
    p.add_argument("--out-dir", default="results", help="where the .md and .png go")
    p.add_argument("--tag", default="", help="suffix of the output names (bandits_<problem><tag>)")
    args = p.parse_args(argv)
    args.algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    bad = [a for a in args.algos if a not in ALGORITHMS]
    if bad:
        p.error(f"unknown algorithm(s) {bad}; allowed: {list(ALGORITHMS)}")
    if not args.algos:
        p.error(f"--algos names no algorithm; allowed: {list(ALGORITHMS)}")
    try:  # the problem's own checks (e.g. a chain of one agent), before any worker starts
        make_problem(args.problem, args.agents, args.horizon, args.seed)
    except ValueError as e:
        p.error(f"--agents {args.agents}: {e}")
    return args


def plot(results: dict[str, list[RunResult]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for algo, rs in results.items():
        x = np.array(rs[0].checkpoints)
        y = np.array([r.curve for r in rs])
        mean, std = y.mean(axis=0), y.std(axis=0)
        ax.plot(x, mean, label=algo)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("round t")
    ax.set_ylabel("cumulative (normalised) regret")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown(
    args: argparse.Namespace, summary: dict, command: str, wall: float, path: Path, png: Path
) -> None:
    agents = args.agents if args.agents is not None else "default"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"# Bandit regret: {args.problem} (agents {agents}, T = {args.horizon})",
        "",
        f"Command: `{command}`",
        "",
        f"Wall time: {wall:.0f} s with {args.workers} worker process(es) on "
        f"{os.cpu_count()} shared CPU core(s) ({platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}). Runs per algorithm: {args.runs} "
        f"(seeds {args.seed}..{args.seed + args.runs - 1}).",
        "",
        "Regret is the exact expected cumulative regret sum_t E F(a*) - E F(a_t) at t = T"
        + (", divided by n - 1 (the papers' normalisation)." if args.problem == "chain0101"
           else " (rewards normalised so the optimum earns 1 per round)."),
        "Time per step is the policy's act + observe (not the environment), averaged "
        "over all rounds and runs: CPU time of the process (`time.process_time`) and "
        "elapsed (wall) time. The machine was shared with other jobs (load average "
        f"{load}), so wall times are inflated; CPU time is the fairer figure.",
        "",
        "| algorithm | cumulative regret at T (mean ± std) | µs per step (CPU) "
        "| µs per step (wall) | runs |",
        "|---|---|---|---|---|",
    ]
    for algo, s in summary.items():
        lines.append(
            f"| {algo} | {s['regret_mean']:.1f} ± {s['regret_std']:.1f} | "
            f"{s['us_per_step']:.0f} | {s['wall_us_per_step']:.0f} | {s['runs']} |"
        )
    lines += ["", f"![cumulative regret]({png.name})", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = "python scripts/run_bandits.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    start = time.perf_counter()
    results = run_many(
        args.problem, args.algos, args.runs, args.horizon, args.agents, args.seed, args.workers
    )
    wall = time.perf_counter() - start
    summary = summarise(results)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bandits_{args.problem}{args.tag}"
    png = out / f"{stem}.png"
    plot(results, f"{args.problem}, T = {args.horizon}, {args.runs} runs", png)
    write_markdown(args, summary, command, wall, out / f"{stem}.md", png)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    for algo, s in summary.items():
        print(
            f"{algo:>14}: regret {s['regret_mean']:.1f} ± {s['regret_std']:.1f}, "
            f"{s['us_per_step']:.0f} us/step (CPU)"
        )
    print(f"wrote {out / (stem + '.md')} and {png} ({wall:.0f} s)")
    return summary


if __name__ == "__main__":
    main()
