"""Coordination graphs and (max-sum) variable elimination, in plain numpy.

A :class:`CoordinationGraph` describes a multi-agent multi-armed bandit's
structure: ``n`` agents, agent ``i`` with ``action_sizes[i]`` actions, and a list
of **factors**, each a tuple of agent indices. A *factor table* for factor ``e``
is an array of shape ``tuple(action_sizes[i] for i in factors[e])`` (axes in the
factor's agent order); its flat (C-order) index is the factor's *local action*.

Variable elimination (:class:`VEPlan`) finds ``argmax_a sum_e table_e(a_e)``
without enumerating the joint action space: agents are eliminated one at a time
in a greedy order (fewest joint neighbour actions first), each elimination
replacing the tables that touch the agent by one table over its neighbours that
holds the best response. The plan (order, axis permutations, reshapes) is
compiled once per graph, so one call costs a handful of numpy operations per
agent. Every algorithm of :mod:`policies.mauce` and the environments' optimal
values use this one implementation (it lives here so that environments do not
depend on the policies package).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np


class CoordinationGraph:
    """Agents, their action counts and the factors (tuples of agents) of a bandit."""

    def __init__(self, action_sizes: Sequence[int], factors: Sequence[Sequence[int]]) -> None:
        sizes = [int(a) for a in action_sizes]
        if not sizes:
            raise ValueError("a coordination graph needs at least one agent")
        for i, a in enumerate(sizes):
            if a < 1:
                raise ValueError(f"action_sizes[{i}] = {a}; every agent needs >= 1 action")
        n = len(sizes)
        norm: list[tuple[int, ...]] = []
        for e, f in enumerate(factors):
            scope = tuple(int(i) for i in f)
            if not scope:
                raise ValueError(f"factor {e} is empty; a factor needs >= 1 agent")
            bad = [i for i in scope if not 0 <= i < n]
            if bad:
                raise ValueError(
                    f"factor {e} = {scope} names agent(s) {bad}; allowed: 0..{n - 1}"
                )
            if len(set(scope)) != len(scope):
                raise ValueError(f"factor {e} = {scope} repeats an agent")
            norm.append(scope)
        self.action_sizes: tuple[int, ...] = tuple(sizes)
        self.factors: tuple[tuple[int, ...], ...] = tuple(norm)
        self.n_agents = n
        self.n_factors = len(norm)
        self.factor_shapes: tuple[tuple[int, ...], ...] = tuple(
            tuple(sizes[i] for i in f) for f in norm
        )
        self.factor_sizes = np.array([int(np.prod(s)) for s in self.factor_shapes], dtype=np.int64)
        #: sum_i log A_i = log of the joint action space size (never formed)
        self.log_joint_actions = float(np.sum(np.log(np.array(sizes, dtype=np.float64))))
        self.agent_factors: tuple[tuple[int, ...], ...] = tuple(
            tuple(e for e, f in enumerate(norm) if i in f) for i in range(n)
        )
        # padded agent/stride matrices for vectorised local indices
        width = max((len(f) for f in norm), default=1)
        self._pad_agents = np.zeros((self.n_factors, width), dtype=np.int64)
        self._pad_strides = np.zeros((self.n_factors, width), dtype=np.int64)
        for e, f in enumerate(norm):
            shape = self.factor_shapes[e]
            strides = np.cumprod((shape[1:] + (1,))[::-1])[::-1]
            self._pad_agents[e, : len(f)] = f
            self._pad_strides[e, : len(f)] = strides

    def __repr__(self) -> str:
        return (
            f"CoordinationGraph(n_agents={self.n_agents}, action_sizes={self.action_sizes}, "
            f"factors={self.factors})"
        )

    # ----------------------------------------------------------- structure
    def neighbours(self, agent: int) -> tuple[int, ...]:
        """Agents sharing at least one factor with ``agent`` (excluding itself)."""
        out = {j for e in self.agent_factors[agent] for j in self.factors[e]}
        out.discard(agent)
        return tuple(sorted(out))

    def components(self) -> list[tuple[int, ...]]:
        """Connected components of the agents (isolated agents are their own component)."""
        parent = list(range(self.n_agents))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for f in self.factors:
            for j in f[1:]:
                parent[find(j)] = find(f[0])
        groups: dict[int, list[int]] = {}
        for i in range(self.n_agents):
            groups.setdefault(find(i), []).append(i)
        return [tuple(g) for g in groups.values()]

    def elimination_order(self) -> list[int]:
        """Greedy order: next the agent whose neighbours have the fewest joint actions.

        Ties go to fewer neighbours, then to the lower index. Agents in no factor
        come first (they are independent).
        """
        return list(self._order)

    @cached_property
    def _order(self) -> tuple[int, ...]:
        scopes = [set(f) for f in self.factors]
        remaining = set(range(self.n_agents))
        order: list[int] = []
        sizes = self.action_sizes
        while remaining:
            best = None
            best_key: tuple[float, int, int] | None = None
            for i in sorted(remaining):
                nb: set[int] = set()
                for s in scopes:
                    if i in s:
                        nb |= s
                nb.discard(i)
                cost = float(np.prod([sizes[j] for j in nb])) if nb else 0.0
                key = (cost, len(nb), i)
                if best_key is None or key < best_key:
                    best, best_key = i, key
            assert best is not None
            merged: set[int] = set()
            keep = []
            for s in scopes:
                if best in s:
                    merged |= s
                else:
                    keep.append(s)
            merged.discard(best)
            if merged:
                keep.append(merged)
            scopes = keep
            remaining.discard(best)
            order.append(best)
        return tuple(order)

    # ------------------------------------------------------- local actions
    def local_actions(self, joint_action: Sequence[int] | np.ndarray) -> np.ndarray:
        """Flat local action index of every factor, shape ``(n_factors,)``."""
        a = np.asarray(joint_action, dtype=np.int64)
        return (a[self._pad_agents] * self._pad_strides).sum(axis=1)

    def check_joint_action(self, joint_action: Sequence[int] | np.ndarray) -> np.ndarray:
        """Validate a joint action; returns it as an int64 array."""
        a = np.asarray(joint_action)
        if a.shape != (self.n_agents,):
            raise ValueError(
                f"joint action has shape {a.shape}; expected ({self.n_agents},) "
                f"with agent i's action in 0..action_sizes[i]-1"
            )
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"joint action {a.tolist()} must hold integers")
        bad = [
            (i, int(x)) for i, x in enumerate(a) if not 0 <= int(x) < self.action_sizes[i]
        ]
        if bad:
            i, x = bad[0]
            raise ValueError(
                f"invalid action {x} for agent {i}; allowed: 0..{self.action_sizes[i] - 1}"
            )
        return a.astype(np.int64)

    def evaluate(self, tables: Sequence[np.ndarray], joint_action: Sequence[int]) -> float:
        """``sum_e tables[e][a_e]`` (tables flat or shaped)."""
        local = self.local_actions(joint_action)
        return float(sum(np.ravel(t)[k] for t, k in zip(tables, local, strict=True)))

    def check_tables(self, tables: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Tables reshaped to their factor shapes; ValueError on a size mismatch."""
        if len(tables) != self.n_factors:
            raise ValueError(f"got {len(tables)} factor tables; expected {self.n_factors}")
        out = []
        for e, t in enumerate(tables):
            t = np.asarray(t, dtype=np.float64)
            if t.size != self.factor_sizes[e]:
                raise ValueError(
                    f"table of factor {e} {self.factors[e]} has {t.size} entries; "
                    f"expected {self.factor_sizes[e]} (shape {self.factor_shapes[e]})"
                )
            out.append(t.reshape(self.factor_shapes[e]))
        return out

    # ------------------------------------------------------ elimination
    @cached_property
    def ve_plan(self) -> VEPlan:
        """The compiled max-sum variable-elimination plan of this graph."""
        return VEPlan(self)

    def max_sum(self, tables: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
        """``(max_a sum_e tables[e][a_e], argmax)`` by variable elimination."""
        return self.ve_plan.solve(self.check_tables(tables))


class _Step:
    """One elimination of a compiled :class:`VEPlan`."""

    __slots__ = ("agent", "inputs", "scope", "perms", "shapes", "out_id")

    def __init__(self, agent, inputs, scope, perms, shapes, out_id):
        self.agent = agent
        self.inputs = inputs
        self.scope = scope
        self.perms = perms
        self.shapes = shapes
        self.out_id = out_id


class VEPlan:
    """Max-sum variable elimination compiled for one :class:`CoordinationGraph`.

    Tables are identified by id: ``0..n_factors-1`` are the factors, later ids the
    tables created by eliminations. Step ``k`` eliminates ``agent``: it combines the
    input tables (each transposed/reshaped so its axes line up with
    ``(*scope, agent)``), keeps the best action of ``agent`` for every assignment
    of ``scope``, and creates table ``out_id`` over ``scope`` (a scalar when the
    scope is empty: a finished connected component).
    """

    def __init__(self, graph: CoordinationGraph) -> None:
        self.graph = graph
        live: dict[int, tuple[int, ...]] = dict(enumerate(graph.factors))
        next_id = graph.n_factors
        steps: list[_Step] = []
        for agent in graph.elimination_order():
            inputs = [t for t, s in live.items() if agent in s]
            union = sorted({j for t in inputs for j in live[t]} - {agent})
            axes = union + [agent]
            perms, shapes = [], []
            for t in inputs:
                s = live[t]
                perm = tuple(sorted(range(len(s)), key=lambda k, s=s: axes.index(s[k])))
                shape = tuple(graph.action_sizes[j] if j in s else 1 for j in axes)
                perms.append(perm)
                shapes.append(shape)
                del live[t]
            steps.append(_Step(agent, inputs, tuple(union), perms, shapes, next_id))
            live[next_id] = tuple(union)
            next_id += 1
        self.steps = steps
        self.n_tables = next_id

    def solve(self, tables: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
        """Max and argmax of ``sum_e tables[e]``; tables already in factor shape."""
        store: list = list(tables) + [None] * (self.n_tables - len(tables))
        best: list = []
        value = 0.0
        for inputs, ops, full, out_id, has_scope in self._fast:
            if not inputs:
                best.append(None)
                continue
            acc = None
            for t, (perm, shape) in zip(inputs, ops, strict=True):
                x = store[t]
                if perm is not None:
                    x = x.transpose(perm)
                x = x.reshape(shape)
                acc = x if acc is None else acc + x
            if acc.shape != full:
                acc = np.broadcast_to(acc, full)
            arg = acc.argmax(axis=-1)
            best.append(arg)
            if has_scope:
                store[out_id] = acc.max(axis=-1)
            else:
                value += float(acc[arg])
        action = np.zeros(self.graph.n_agents, dtype=np.int64)
        for (agent, scope), arg in zip(reversed(self._back), reversed(best), strict=True):
            if arg is None:
                continue
            action[agent] = arg[tuple(action[scope])] if scope is not None else arg
        return value, action

    @cached_property
    def _fast(self) -> list[tuple]:
        """Per step: inputs, (perm or None, shape) per input, full shape, out id, has scope."""
        sizes = self.graph.action_sizes
        out = []
        for st in self.steps:
            ops = [
                (None if perm == tuple(range(len(perm))) else perm, shape)
                for perm, shape in zip(st.perms, st.shapes, strict=True)
            ]
            full = tuple(sizes[j] for j in st.scope) + (sizes[st.agent],)
            out.append((st.inputs, ops, full, st.out_id, bool(st.scope)))
        return out

    @cached_property
    def _back(self) -> list[tuple[int, np.ndarray | None]]:
        return [
            (st.agent, np.array(st.scope, dtype=np.int64) if st.scope else None)
            for st in self.steps
        ]
