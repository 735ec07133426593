#!/usr/bin/env python
"""Train FEN (Fair-Efficient Network), a FEN variant or a fairness baseline on RLlib.

    python scripts/train_fen.py --env job_scheduling --variant fen --iterations 10

See ``policies/fen/train.py`` (or ``--help``) for every flag.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.fen.train import entry_point  # noqa: E402

if __name__ == "__main__":
    sys.exit(entry_point())
