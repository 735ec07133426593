"""Decentralised estimates of the average utility by gossip (average consensus).

Agents of FEN need ``ubar`` without a central server. :class:`GossipAverager` runs
``rounds`` synchronous rounds of average consensus over a communication graph:
in each round every agent replaces its estimate with
``self_weight * x_i + (1 - self_weight) * mean(x_i, x_j for j in its neighbours)``.

Graphs: ``"complete"``, ``"ring"``, ``"random3"`` (the authors' commented-out
variant in synchronous form: each round every agent averages with 3 agents drawn
at random and keeps 0.02 of its own value, which preserves the mean only
approximately), or an explicit adjacency matrix. On a
fixed connected graph the symmetric Metropolis weights are used instead, which
preserve the mean exactly and converge to it geometrically.
"""

from __future__ import annotations

import numpy as np

GRAPHS = ("complete", "ring", "random3")


def adjacency(graph: str | np.ndarray, n: int) -> np.ndarray | None:
    """Boolean adjacency of a named or explicit graph (``None`` for ``random3``)."""
    if isinstance(graph, str):
        if graph == "complete":
            adj = ~np.eye(n, dtype=bool)
        elif graph == "ring":
            adj = np.zeros((n, n), dtype=bool)
            idx = np.arange(n)
            adj[idx, (idx + 1) % n] = True
            adj[idx, (idx - 1) % n] = True
            np.fill_diagonal(adj, False)
        elif graph == "random3":
            return None
        else:
            raise ValueError(f"unknown gossip graph {graph!r}; allowed: {list(GRAPHS)} or a matrix")
        return adj
    adj = np.asarray(graph, dtype=bool)
    if adj.shape != (n, n):
        raise ValueError(f"adjacency matrix must have shape ({n}, {n}), got {adj.shape}")
    if not np.array_equal(adj, adj.T):
        raise ValueError("adjacency matrix must be symmetric (undirected graph)")
    return adj & ~np.eye(n, dtype=bool)


def metropolis_weights(adj: np.ndarray) -> np.ndarray:
    """Doubly stochastic Metropolis-Hastings weights of an undirected graph."""
    deg = adj.sum(axis=1)
    w = np.where(adj, 1.0 / (1.0 + np.maximum(deg[:, None], deg[None, :])), 0.0)
    np.fill_diagonal(w, 1.0 - w.sum(axis=1))
    return w


class GossipAverager:
    """Estimates the mean of the agents' values by gossip; see the module docstring."""

    def __init__(
        self,
        n_agents: int,
        graph: str | np.ndarray = "ring",
        rounds: int = 10,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        if rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {rounds}")
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        self.n_agents = n_agents
        self.rounds = rounds
        self.noise = noise
        self.rng = rng if rng is not None else np.random.default_rng()
        adj = adjacency(graph, n_agents)
        self.weights = None if adj is None else metropolis_weights(adj)

    def estimate(self, values: np.ndarray) -> np.ndarray:
        """Each agent's estimate of ``mean(values)`` after ``rounds`` rounds."""
        x = np.asarray(values, dtype=np.float64).copy()
        if x.shape != (self.n_agents,):
            raise ValueError(f"expected {self.n_agents} values, got shape {x.shape}")
        for _ in range(self.rounds):
            if self.weights is not None:
                x = self.weights @ x
            else:  # the public code's variant: 3 random peers, 0.02 self + 0.98 local mean
                peers = self.rng.integers(0, self.n_agents, size=(self.n_agents, 3))
                local = (x + x[peers].sum(axis=1)) / 4.0
                x = 0.02 * x + 0.98 * local
            if self.noise:
                x += (self.rng.random(self.n_agents) - 0.5) * self.noise
        return x
