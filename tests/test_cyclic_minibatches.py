"""policies/cyclic_minibatches.py yields RLlib's MiniBatchCyclicIterator's minibatches."""

import numpy as np
import pytest
import torch
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator

from policies.cyclic_minibatches import CyclicMinibatches, replaces


def _batch(rows):
    """Module batches of ``rows`` rows each: an id column (to see which rows) and
    columns of several dtypes and shapes."""
    batches = {}
    for k, (mid, n) in enumerate(rows.items()):
        batches[mid] = SampleBatch({
            "row": torch.arange(n) + 1000 * k,
            "obs": torch.randn(n, 3),
            "loss_mask": torch.rand(n) > 0.1,
        })
    return MultiAgentBatch(batches, env_steps=77)


def _minibatches(iterator, seed):
    np.random.seed(seed)  # noqa: NPY002 -- both shuffle with np.random, as RLlib does
    return [{mid: dict(b) for mid, b in mb.policy_batches.items()} | {"count": mb.count}
            for mb in iterator]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("rows,size,epochs", [
    ({"a": 100, "b": 37, "c": 64}, 32, 3),  # modules smaller than a minibatch wrap often
    ({"a": 10, "b": 300}, 64, 2),
    ({"a": 64}, 64, 2),  # a module exactly one minibatch long
])
def test_same_minibatches_as_rllibs_iterator(shuffle, rows, size, epochs):
    torch.manual_seed(0)
    batch = _batch(rows)
    kwargs = dict(num_epochs=epochs, minibatch_size=size, shuffle_batch_per_epoch=shuffle)
    ref_iter = MiniBatchCyclicIterator(batch.copy(), **kwargs)
    fast_iter = MiniBatchCyclicIterator(batch.copy(), **kwargs)
    assert replaces(fast_iter)
    want = _minibatches(ref_iter, 3)
    got = _minibatches(CyclicMinibatches(fast_iter), 3)
    assert len(got) == len(want) >= epochs
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys() and g["count"] == w["count"] == 77
        for mid in rows:
            assert g[mid].keys() == w[mid].keys()
            for k in w[mid]:
                assert torch.equal(g[mid][k], w[mid][k]), (mid, k)
    if shuffle:  # the shuffles happened (and were the same)
        rows_seen = torch.cat([mb["a"]["row"] for mb in got])
        assert not torch.equal(rows_seen[: rows["a"]].sort().values, rows_seen[: rows["a"]]) \
            or not torch.equal(rows_seen[rows["a"]: 2 * rows["a"]].sort().values,
                               rows_seen[rows["a"]: 2 * rows["a"]])


def test_what_it_does_not_replace():
    batch = _batch({"a": 20})
    fixed = MiniBatchCyclicIterator(batch, num_epochs=1, minibatch_size=8,
                                    num_total_minibatches=5)
    assert not replaces(fixed)  # multi-learner runs: a fixed number of minibatches
    numpy_batch = MultiAgentBatch({"a": SampleBatch({"x": np.arange(20)})}, env_steps=20)
    assert not replaces(MiniBatchCyclicIterator(numpy_batch, minibatch_size=8))
    sequences = _batch({"a": 20})
    sequences.policy_batches["a"]._slice_seq_lens_in_B = True
    assert not replaces(MiniBatchCyclicIterator(sequences, minibatch_size=8))

    class Custom(MiniBatchCyclicIterator):
        pass

    assert not replaces(Custom(batch, minibatch_size=8))
