"""The FEN sampling benchmark's floors run on the default config (kept working as RLlib
moves; their timings come from the script's runs under results/, not from here)."""

from __future__ import annotations

import math
from typing import Any


def test_floors_run_on_the_default_config_past_an_episode_end(load_script: Any) -> None:
    bench = load_script("benchmark_fen_sampling")
    config = bench.setup_config(bench.DEFAULT, 0)
    # 8 copies x 1,040 env steps (1,000 base steps + 40 controller steps) end an episode
    config.training(train_batch_size_per_learner=8 * 1040 + 8)
    env_s = bench.env_floor(config, iterations=1, seed=0)
    assert math.isfinite(env_s) and env_s > 0
    rows = {"ctrl": 64, "sub0": 100, "sub1": 50, "sub2": 30, "sub3": 20}
    learn_s = bench.learner_floor(config, minibatch_steps=2, module_rows=rows, threads=1,
                                  iterations=1, seed=0)
    assert math.isfinite(learn_s) and learn_s > 0
