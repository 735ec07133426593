"""One training step of algorithms that update once per sampled batch (A2C, MAUCE/MATS).

    sample synchronously from every env runner -> one learner update on the whole
    batch (one epoch, no minibatches) -> broadcast the new weights/state to the runners
"""

from __future__ import annotations

from typing import Any

from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)


def single_pass_training_step(algo: Any) -> None:
    """Run one sample / single-update / sync step of the RLlib ``Algorithm`` ``algo``."""
    config = algo.config
    with algo.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
        budget_key = (
            "max_agent_steps" if config.count_steps_by == "agent_steps" else "max_env_steps"
        )
        episodes, env_runner_results = synchronous_parallel_sample(
            worker_set=algo.env_runner_group,
            sample_timeout_s=config.sample_timeout_s,
            _uses_new_env_runners=True,
            _return_metrics=True,
            **{budget_key: config.total_train_batch_size},
        )
        if not episodes:
            return
        algo.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)

    with algo.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
        learner_results = algo.learner_group.update(
            episodes=episodes,
            timesteps={
                NUM_ENV_STEPS_SAMPLED_LIFETIME: algo.metrics.peek(
                    (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)
                ),
                NUM_MODULE_STEPS_TRAINED_LIFETIME: algo.metrics.peek(
                    (LEARNER_RESULTS, ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME),
                    default=0,
                ),
            },
            num_epochs=1,
            minibatch_size=None,
            shuffle_batch_per_epoch=False,
        )
        algo.metrics.aggregate(learner_results, key=LEARNER_RESULTS)

    with algo.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
        modules = set(learner_results[0].keys()) - {ALL_MODULES}
        algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=algo.learner_group,
            policies=modules,
            inference_only=True,
        )
