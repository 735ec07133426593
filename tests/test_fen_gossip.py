"""Gossip average consensus converges to the true mean."""

import numpy as np
import pytest

from policies.fen.gossip import GossipAverager, adjacency, metropolis_weights


@pytest.mark.parametrize("graph", ["complete", "ring"])
def test_fixed_graphs_converge_to_the_exact_mean(graph):
    rng = np.random.default_rng(0)
    values = rng.random(10)
    few = GossipAverager(10, graph, rounds=2).estimate(values)
    many = GossipAverager(10, graph, rounds=200).estimate(values)
    np.testing.assert_allclose(many, values.mean(), atol=1e-9)
    # the mean is preserved every round and the error shrinks with rounds
    np.testing.assert_allclose(few.mean(), values.mean())
    assert np.abs(many - values.mean()).max() <= np.abs(few - values.mean()).max() + 1e-12


def test_random_peer_variant_of_the_public_code_gets_close():
    rng = np.random.default_rng(1)
    values = rng.random(10)
    est = GossipAverager(10, "random3", rounds=30, rng=np.random.default_rng(2)).estimate(values)
    assert np.abs(est - values.mean()).max() < 0.1 * values.std()


def test_zero_rounds_is_each_agents_own_value():
    values = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(GossipAverager(3, "ring", rounds=0).estimate(values), values)


def test_metropolis_weights_are_doubly_stochastic():
    w = metropolis_weights(adjacency("ring", 6))
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_custom_graph_and_bad_input():
    adj = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    est = GossipAverager(3, adj, rounds=300).estimate(np.array([0.0, 3.0, 6.0]))
    np.testing.assert_allclose(est, 3.0, atol=1e-9)
    with pytest.raises(ValueError, match="unknown gossip graph"):
        GossipAverager(3, "star")
    with pytest.raises(ValueError, match="symmetric"):
        GossipAverager(3, np.array([[0, 1, 0], [0, 0, 1], [0, 1, 0]]))
    with pytest.raises(ValueError, match="expected 3 values"):
        GossipAverager(3).estimate(np.ones(4))
