#!/usr/bin/env python
"""Train PPO, DQN or A2C on a FEN environment with RLlib (new API stack); the flags and
what they do: ``policies/train.py`` (or ``--help``). Installed: ``fairmarl-train``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.train import entry_point  # noqa: E402

if __name__ == "__main__":
    sys.exit(entry_point())
