#!/usr/bin/env python
"""Train FEN (Fair-Efficient Network), a FEN variant or a fairness baseline on RLlib.

    python scripts/train_fen.py --env job_scheduling --variant fen --iterations 10

See ``policies/fen/train.py`` (or ``--help``) for every flag.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

from policies.cli import fix_hash_seed  # noqa: E402
from policies.fen.train import main  # noqa: E402

if __name__ == "__main__":
    fix_hash_seed()  # one string-hash seed: the same config trains the same run
    sys.exit(main())
