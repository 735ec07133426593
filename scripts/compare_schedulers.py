#!/usr/bin/env python
"""Compare FIFO, SJF, Packer, Tetris, DRF, A2C, PPO and FEN on resource_allocation vs load.

    python scripts/compare_schedulers.py --loads 0.3,0.7,1.1,1.5 --episodes 10 \
        --iterations 40 --fen-iterations 15 [--learners a2c,ppo,fen|none] \
        [--json results/resource_allocation.json]

Writes results/resource_allocation.{json,md,png}; each trained learner's evaluation is
cached under results/resource_allocation_runs/ and reused on the next call (see
policies/scheduler_comparison.py). Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

from policies.cli import fix_hash_seed, report_main  # noqa: E402
from policies.scheduler_comparison import parse_args, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return report_main("compare_schedulers.py", parse_args, run, argv)


if __name__ == "__main__":
    fix_hash_seed()  # one string-hash seed: the same config trains the same run
    raise SystemExit(main())
