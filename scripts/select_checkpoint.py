#!/usr/bin/env python
"""Choose a cached run's checkpoint on validation episodes (FEN's fairness target).

    python scripts/select_checkpoint.py \\
        results/resource_allocation_runs/fen_load0.7_*_T10.json \\
        [--reference drf] [--slowdown-ratio 1.1] [--validation-seed 20000] [--episodes 30]

Writes results/resource_allocation_fen_selection.{md,json} (see
policies/checkpoint_selection.py). Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from policies.checkpoint_selection import parse_args, run  # noqa: E402
from policies.cli import report_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return report_main("select_checkpoint.py", parse_args, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
