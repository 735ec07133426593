#!/usr/bin/env python
"""Reproduce the FEN paper's tables: every variant and baseline x several seeds.

    python scripts/reproduce_fen.py --env job_scheduling --seeds 0,1,2 --iterations 50

Writes results/fen_<env>.md / .json / *.png; finished runs are reused and shorter ones
resumed, so re-running the command extends an experiment. See policies/fen/reproduce.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

from policies.cli import fix_hash_seed  # noqa: E402
from policies.fen.reproduce import main  # noqa: E402

if __name__ == "__main__":
    fix_hash_seed()  # one string-hash seed: the same config trains the same run
    sys.exit(main())
