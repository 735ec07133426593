"""Variable elimination on coordination graphs, shared by every bandit algorithm.

The implementation lives with the graph type in :mod:`marl_envs.bandits.graph`
(so environments can compute exact optimal values without importing the
policies); this module is its home on the policy side.

``graph.max_sum(tables)`` -> ``(max_a sum_e tables[e][a_e], argmax)``;
``graph.ve_plan.solve(shaped_tables)`` is the same without input checks.
"""

from marl_envs.bandits.graph import CoordinationGraph, VEPlan


def max_sum(graph: CoordinationGraph, tables: list) -> tuple:
    """``(max, argmax)`` of ``sum_e tables[e][a_e]`` over joint actions, by VE."""
    return graph.max_sum(tables)


__all__ = ["CoordinationGraph", "VEPlan", "max_sum"]
