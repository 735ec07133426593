"""The FEN sampling benchmark's floors run on the default config (kept working as RLlib
moves; their timings come from the script's runs under results/, not from here). The
stacked floor times the default learner's own StackedPPO steps, which
tests/test_fen_learner.py checks against PPOTorchLearner."""

from __future__ import annotations

import math
from typing import Any

import pytest

ROWS = {"ctrl": 64, "sub0": 100, "sub1": 50, "sub2": 30, "sub3": 20}


def test_floors_run_on_the_default_config_past_an_episode_end(load_script: Any) -> None:
    bench = load_script("benchmark_fen_sampling")
    config = bench.setup_config(bench.DEFAULT, 0)
    # 8 copies x 1,040 env steps (1,000 base steps + 40 controller steps) end an episode
    config.training(train_batch_size_per_learner=8 * 1040 + 8)
    env_s = bench.env_floor(config, iterations=1, seed=0)
    assert math.isfinite(env_s) and env_s > 0
    for stacked in (False, True):
        learn_s = bench.learner_floor(config, minibatch_steps=2, module_rows=ROWS, threads=1,
                                      iterations=1, seed=0, stacked=stacked)
        assert math.isfinite(learn_s) and learn_s > 0
    gemm_s = bench.gemm_floor(config, minibatch_steps=2, module_rows=ROWS, threads=1,
                              repeats=2, seed=0)
    assert math.isfinite(gemm_s) and gemm_s > 0


def test_product_floor_rejects_a_network_it_cannot_count(load_script: Any) -> None:
    import torch

    bench = load_script("benchmark_fen_sampling")
    with pytest.raises(ValueError, match="Linear/ReLU"):
        bench._linears(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh()))


@pytest.mark.parametrize("setup,frozen", [("unstacked", False), ("default", True)])
def test_time_training_times_sampling_and_learning(load_script: Any, local_ray: Any,
                                                   setup: str, frozen: bool) -> None:
    """One tiny iteration: its sampling and learner calls timed within its wall time, the
    learner class of the setup, and PPO's sampling function and the garbage collector's
    frozen objects given back afterwards."""
    import gc

    from ray.rllib.algorithms.ppo import ppo

    bench = load_script("benchmark_fen_sampling")
    config = bench.setup_config(setup, 0)
    config.training(train_batch_size_per_learner=200, minibatch_size=64, num_epochs=1)
    sample = ppo.synchronous_parallel_sample
    row = bench.time_training(config, iterations=1, warmup=0, frozen=frozen)
    assert ppo.synchronous_parallel_sample is sample
    assert gc.get_freeze_count() == 0
    assert row["env_steps"] >= 200 and row["minibatch_steps_per_iteration"] >= 1
    assert 0 < row["sampling_s_per_iteration"] and 0 < row["learner_update_s_per_iteration"]
    assert row["sampling_s_per_iteration"] + row["learner_update_s_per_iteration"] \
        <= row["s_per_iteration"]
    assert row["learner"] == ("UnstackedFENLearner" if setup == "unstacked"
                              else "FENPPOTorchLearner")
