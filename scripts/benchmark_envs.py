"""Agent-steps per second of each FEN environment under random actions.

Random actions are pre-generated with numpy in bulk before timing, so the figures
measure the environments, not the sampling (see :mod:`marl_envs.benchmark`).

    .venv/bin/python scripts/benchmark_envs.py --json results/env_throughput/README.json

prints one line per environment, writes ``results/env_throughput/README.md`` (table,
machine note and this exact command) and, with ``--json FILE``,
``{env_name: agent_steps_per_second}`` (the best of the repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marl_envs import ENV_NAMES  # noqa: E402
from marl_envs.benchmark import (  # noqa: E402
    FEN_ENV_NAMES,
    TARGET_AGENT_STEPS_PER_SECOND,
    benchmark_env,
    machine_note,
    markdown_report,
)
from policies.cli import nonneg_int, positive_int  # noqa: E402


def _command_line() -> str:
    """The command as typed from the repository root (interpreter path made relative)."""
    exe = Path(sys.executable)
    try:
        exe_str = os.path.relpath(exe, Path.cwd()) if ROOT in exe.parents else str(exe)
    except ValueError:
        exe_str = str(exe)
    return shlex.join([exe_str, *sys.argv])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(FEN_ENV_NAMES), choices=ENV_NAMES,
                        help="environments to time (default: the three FEN envs)")
    parser.add_argument("--steps", type=positive_int, default=20_000, help="env steps per repeat")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed repeats per env")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="seed of env and actions")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="write {env_name: agent_steps_per_second} here")
    parser.add_argument("--markdown", type=Path,
                        default=ROOT / "results" / "env_throughput" / "README.md",
                        metavar="FILE", help="markdown report (default: %(default)s)")
    args = parser.parse_args(argv)

    machine = machine_note()  # load average before the run
    results = []
    for name in args.envs:
        r = benchmark_env(name, steps=args.steps, repeats=args.repeats, seed=args.seed)
        results.append(r)
        below = r.best_agent_steps_per_second < TARGET_AGENT_STEPS_PER_SECOND
        flag = "  BELOW TARGET" if below else ""
        print(
            f"{name:22s} {r.best_agent_steps_per_second:>12,.0f} agent-steps/s "
            f"(median {r.median_agent_steps_per_second:,.0f}, "
            f"per CPU-s {r.best_agent_steps_per_cpu_second:,.0f}; {r.n_agents} agents, "
            f"{r.best_env_steps_per_second:,.0f} env-steps/s){flag}",
            flush=True,
        )

    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown_report(results, _command_line(), machine, args.repeats))
    print(f"wrote {args.markdown}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {r.env_name: round(r.best_agent_steps_per_second, 1) for r in results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
