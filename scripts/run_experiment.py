#!/usr/bin/env python
"""Run, resume or report an experiment file on Ray Tune (policies/experiments/cli.py).

    python scripts/run_experiment.py results/fen_job_scheduling/experiment.yaml \
        --out results/fen_job_scheduling [--address HOST:PORT] [--max-concurrent N] \
        [--report-only]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.experiments.cli import entry_point  # noqa: E402

if __name__ == "__main__":
    sys.exit(entry_point())
