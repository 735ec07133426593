"""FEN's PPO learner: RLlib's ``PPOTorchLearner`` with its minibatch steps stacked and
the run's idle CPUs used.

PPO on the new API stack is synchronous: while the learner updates, every env runner
waits for the new weights. :class:`FENPPOTorchLearner` therefore runs its update with
as many torch threads as the run has CPUs on this machine for sampling and learning
together (:func:`update_threads`), and restores the process's thread count afterwards, so that
sampling in the same process (``num_env_runners=0``) keeps its single thread. Each
minibatch step runs through :class:`policies.stacked_ppo.StackedPPO` where it applies
(FEN's four sub-policies have one shape: one batched step instead of four), else
module by module as RLlib does, where two bookkeeping costs of ``TorchLearner`` are cut
without changing an update: Adam runs its fused implementation (one kernel per tensor),
and gradients are checked for NaN/inf once per step (one norm per tensor, fused)
instead of tensor by tensor twice; a step with a non-finite gradient goes through
RLlib's own handling. The train batch is built from the episodes by
:class:`policies.fen.train_batch.TrainBatchBuilder` (the learner connector pipeline's
batch at array speed) wherever the pipeline is PPO's default one with FEN's
discriminator reward (``tests/test_fen_train_batch.py``), and cut into RLlib's
minibatches by :class:`policies.cyclic_minibatches.CyclicMinibatches` (the same
minibatches as ``MiniBatchCyclicIterator``, with plain tensor slicing). Losses, train
batches, minibatches and the optimizer's arithmetic are PPOTorchLearner's
(``tests/test_fen_learner.py``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

from policies.cyclic_minibatches import CyclicMinibatches, replaces
from policies.fen.train_batch import TrainBatchBuilder
from policies.stacked_ppo import StackedPPO, stackable


def update_threads(config: Any, single_node: bool = True) -> int:
    """Torch threads of a learner's update: a remote learner's own CPUs; a local learner's
    are the run's main-process CPUs, plus those of its env runners when they all run on
    this machine (``single_node``: a one-node Ray; on a cluster they may be elsewhere) and
    wait for the update. At least 1, at most ``os.cpu_count()``."""
    if config.num_learners > 0:
        cpus = config.num_cpus_per_learner
        cpus = 1 if cpus == "auto" else cpus
    else:
        cpus = config.num_cpus_for_main_process
        if single_node:
            cpus += config.num_env_runners * config.num_cpus_per_env_runner
    return max(1, min(int(cpus), os.cpu_count() or 1))


def _single_node() -> bool:
    """Whether this process's Ray has one alive node (True without Ray)."""
    import ray

    if not ray.is_initialized():
        return True
    return sum(1 for node in ray.nodes() if node.get("Alive")) <= 1


class FENPPOTorchLearner(PPOTorchLearner):
    """``PPOTorchLearner`` updating with :func:`update_threads` threads and stacked
    minibatch steps (module doc)."""

    #: stack same-shaped modules' minibatch steps where :func:`stackable` allows (False:
    #: module by module, as RLlib; for comparisons, ``scripts/benchmark_fen_sampling.py``)
    stack_modules: bool = True

    def build(self) -> None:
        super().build()
        self._update_threads = update_threads(self.config, _single_node())
        self._stacked: StackedPPO | None = None
        self._last_minibatch: dict | None = None

    def update(self, *args: Any, **kwargs: Any) -> Any:
        before = torch.get_num_threads()
        fill = torch.utils.deterministic.fill_uninitialized_memory
        torch.set_num_threads(self._update_threads)
        # RLlib turns on torch's deterministic mode for a seeded run, whose debugging aid
        # fills every new tensor from torch.empty (oneDNN's outputs and copies included)
        # with NaN before it is written: a full pass over memory per tensor that no
        # result depends on (the update stays deterministic without it)
        torch.utils.deterministic.fill_uninitialized_memory = False
        self._stacked = StackedPPO(self) if self.stack_modules and stackable(self) else None
        try:
            return super().update(*args, **kwargs)
        finally:
            if self._stacked is not None:
                self._stacked.scatter()
            torch.set_num_threads(before)
            torch.utils.deterministic.fill_uninitialized_memory = fill

    def _make_batch_if_necessary(self, training_data: Any) -> Any:
        builder = self.batch_builder()
        if training_data.episodes is not None and builder is not None:
            batch = builder.build(self.module, training_data.episodes, self.metrics,
                                  self._device)
            if batch is not None:
                return batch
        return super()._make_batch_if_necessary(training_data)

    def _create_iterator_if_necessary(self, **kwargs: Any) -> Any:
        iterator = super()._create_iterator_if_necessary(**kwargs)
        return CyclicMinibatches(iterator) if replaces(iterator) else iterator

    def batch_builder(self) -> TrainBatchBuilder | None:
        """The builder of this learner's train batches, for its learner connector
        pipeline as it is now (a piece added after the build counts); None: RLlib's
        pipeline."""
        return TrainBatchBuilder.from_pipeline(self._learner_connector)

    def _update(self, batch: dict, **kwargs: Any) -> Any:
        stacked = self._stacked
        if stacked is not None and stacked.covers(batch):
            # RLlib logs the off-policyness of every minibatch with window 1: only the
            # update's last one counts, logged in after_gradient_based_update
            self._last_minibatch = batch
            return {}, stacked.step(batch), {}
        self._last_minibatch = None
        if stacked is not None:  # RLlib's step works on the modules themselves
            stacked.scatter()
            stacked.last_step = None
        return super()._update(batch, **kwargs)

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        if self._last_minibatch is not None:
            self._compute_off_policyness(self._last_minibatch)
            self._last_minibatch = None
        if self._stacked is not None:
            self._stacked.scatter()
            self._stacked.log_stats()  # PPO's KL coefficient update reads them
        super().after_gradient_based_update(timesteps=timesteps)

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        params = self.get_parameters(self._module[module_id])
        self.register_optimizer(module_id=module_id,
                                optimizer=torch.optim.Adam(params, fused=True),
                                params=params, lr_or_lr_schedule=config.lr)

    def apply_gradients(self, gradients_dict: dict) -> None:
        grads = list(gradients_dict.values())
        plain = self._grad_scalers is None and self._lr_scheduler_classes is None
        if not (plain and grads and bool(torch.stack(torch._foreach_norm(grads)).isfinite().all())):
            return super().apply_gradients(gradients_dict)
        # every gradient finite: what TorchLearner.apply_gradients does then
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()
