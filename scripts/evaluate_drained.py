#!/usr/bin/env python
"""Slowdown with every job finished: heuristics and cached A2C/PPO runs on drained episodes.

    python scripts/evaluate_drained.py \\
        results/resource_allocation_runs/a2c_load1.5_*.json \\
        [--drain-cycles 800] [--episodes 10] [--md FILE] [--json FILE]

Writes results/resource_allocation_drained_eval.{md,json} (see policies/drained_evaluation.py).
Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from policies.cli import report_main  # noqa: E402
from policies.drained_evaluation import parse_args, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return report_main("evaluate_drained.py", parse_args, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
