"""RLlib's ``MiniBatchCyclicIterator`` on the batch's tensors directly.

PPO's learner cuts its train batch into minibatches with RLlib's
``MiniBatchCyclicIterator``: every module's rows are walked in order, wrapping around
(and reshuffled) at the end of each module's rows, until every module has seen
``num_epochs`` epochs. It slices and concatenates ``SampleBatch`` objects through
``dm-tree``, about 1.5 ms per minibatch step for FEN's five modules.
:class:`CyclicMinibatches` yields the same minibatches (the same rows in the same
order, the same calls to ``np.random.permutation`` for the shuffles, so the same
shuffles under the same seed) with plain tensor slicing: ``tests/test_fen_learner.py``
checks them against RLlib's iterator. It takes over only what it reproduces
(:func:`replaces`): a ``MiniBatchCyclicIterator`` over flat, non-recurrent module
batches without a fixed number of minibatches (which multi-learner setups use).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator


def replaces(iterator: Any) -> bool:
    """Whether :class:`CyclicMinibatches` reproduces this iterator: an RLlib
    ``MiniBatchCyclicIterator`` (not a subclass) without ``num_total_minibatches``, over
    module batches of plain tensors, none sliced by sequence, none holding infos."""
    if type(iterator) is not MiniBatchCyclicIterator or iterator._num_total_minibatches:
        return False
    for module_batch in iterator._batch.policy_batches.values():
        if module_batch._slice_seq_lens_in_B or SampleBatch.SEQ_LENS in module_batch or \
                Columns.INFOS in module_batch or len(module_batch) == 0:
            return False
        if not all(isinstance(v, torch.Tensor) for v in module_batch.values()):
            return False
    return True


class CyclicMinibatches:
    """The minibatches of a ``MiniBatchCyclicIterator`` that :func:`replaces` accepts."""

    def __init__(self, iterator: MiniBatchCyclicIterator) -> None:
        batch = iterator._batch
        self._env_steps = len(batch)
        self._columns = {mid: dict(b) for mid, b in batch.policy_batches.items()}
        self._size = iterator._minibatch_size
        self._num_epochs = iterator._num_epochs
        self._shuffle = iterator._shuffle_batch_per_epoch

    def __iter__(self) -> Iterator[MultiAgentBatch]:
        start = dict.fromkeys(self._columns, 0)
        epochs = dict.fromkeys(self._columns, 0)
        while min(epochs.values()) < self._num_epochs:
            minibatch = {}
            for mid, cols in self._columns.items():
                rows = len(next(iter(cols.values())))
                s, n = start[mid], self._size
                pieces = []
                # as RLlib: the rest of the rows, then (shuffled) from the start again
                while s + n >= rows:
                    pieces.append({k: v[s:] for k, v in cols.items()})
                    n -= rows - s
                    s = 0
                    epochs[mid] += 1
                    if self._shuffle:
                        perm = torch.from_numpy(np.random.permutation(rows))  # noqa: NPY002
                        cols = self._columns[mid] = {k: v[perm] for k, v in cols.items()}
                e = s + n
                if e > s:
                    pieces.append({k: v[s:e] for k, v in cols.items()})
                minibatch[mid] = SampleBatch(
                    pieces[0] if len(pieces) == 1 else
                    {k: torch.cat([p[k] for p in pieces]) for k in cols})
                start[mid] = e
            yield MultiAgentBatch(minibatch, self._env_steps)
