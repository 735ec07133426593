"""A killed env runner is replaced (restart_failed_env_runners on by default)."""

import os
import signal
import time

import ray

from policies.config import build_config
from policies.training import init_ray


def _pids(algo):
    return sorted(
        algo.env_runner_group.foreach_env_runner(lambda r: os.getpid(), local_env_runner=False)
    )


def test_killed_env_runner_is_replaced():
    init_ray(None, num_cpus=2)
    try:
        cfg = build_config(
            "job_scheduling", "a2c", "shared", seed=0, num_env_runners=2, envs_per_runner=1,
            overrides={"train_batch_size_per_learner": 100, "sample_timeout_s": 10.0},
            env_kwargs={"max_cycles": 25},
        )
        algo = cfg.build_algo()
        try:
            algo.train()
            before = _pids(algo)
            assert len(before) == 2
            os.kill(before[0], signal.SIGKILL)
            time.sleep(1.0)
            iteration = algo.iteration
            deadline = time.time() + 300  # a restart can take minutes on a loaded machine
            while True:
                result = algo.train()
                healthy = algo.env_runner_group.num_healthy_remote_workers()
                if healthy == 2 and algo.iteration >= iteration + 2:
                    break
                assert time.time() < deadline, f"runner not replaced (healthy={healthy})"
            after = _pids(algo)
            assert len(after) == 2 and before[0] not in after and before[1] in after
            assert algo.env_runner_group.num_remote_worker_restarts() >= 1
            assert result["env_runners"]["num_env_steps_sampled"] > 0
        finally:
            algo.stop()
    finally:
        ray.shutdown()
