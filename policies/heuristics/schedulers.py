"""The schedulers operators run, for ``marl_envs.resource_allocation_v0`` (numpy only).

Every scheduler has ``act(observations, infos) -> {agent: action}`` and reads only the
environment's ``infos`` (``free_capacity``, ``allocation``, ``slot_filled``,
``slot_demands``, ``slot_durations``, ``slot_waits``), so it works in any PettingZoo
loop::

    env = marl_envs.make("resource_allocation", load=0.7)
    scheduler = make_scheduler("tetris")
    obs, infos = env.reset(seed=0)
    while env.agents:
        obs, rewards, terms, truncs, infos = env.step(scheduler.act(obs, infos))

Action ``k + 1`` starts the job in slot ``k``; 0 waits. A job *fits* when its demand is
at most the free units of every resource now.

Per-tenant schedulers (each tenant decides from its own info only, like independent
schedulers; simultaneous requests of several tenants can still be refused by the
cluster). Each picks the fitting job with the highest score, ties going to the
lowest slot, and waits when no job fits:

==========  ==========================================================================
``fifo``    the job that has waited longest
``sjf``     the shortest job (Shortest Job First)
``packer``  the largest dot product of demand and free units (Packer, DeepRM/Tetris)
``tetris``  ``w * pack / max pack + (1 - w) * (1/T) / max(1/T)`` over the fitting jobs,
            ``w = pack_weight`` (default 0.5): Tetris's mix of packing and SJF as in
            DeepRM's baseline
==========  ==========================================================================

Cluster-wide schedulers read every tenant's info and plan the whole step by
progressive filling on the free units: repeatedly, the fitting job of highest priority
among the tenants not yet granted a job this step is granted (the env starts at most
one job per tenant and step), until no such tenant has a job that fits. Every tenant's
action is its part of that plan; the plan fits the free units as a whole, so the
cluster never refuses one of its requests:

===============  =======================================================================
``drf``          Dominant Resource Fairness (Ghodsi et al. 2011), the multi-tenant
                 scheduler of real clusters: the tenant with the lowest dominant share
                 (after the jobs already granted this step; ties to the lower index)
                 gets its oldest fitting job (FIFO within a tenant)
``central_sjf``  a central Shortest Job First: the shortest fitting job of all tenants
                 (ties to the lower tenant index, then the lowest slot). Not one of the
                 issue's baselines: a reference for what coordinating the tenants'
                 requests is worth (the per-tenant schedulers lose steps to refused
                 requests)
===============  =======================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

WAIT = 0


def fitting(info: Mapping[str, Any], free: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the tenant's slots that hold a job fitting ``free`` (default: now)."""
    free = np.asarray(info["free_capacity"] if free is None else free)
    demands = np.asarray(info["slot_demands"])
    return np.asarray(info["slot_filled"], dtype=bool) & (demands <= free).all(axis=1)


def best_slot_action(scores: np.ndarray, mask: np.ndarray) -> int:
    """``1 + argmax`` of ``scores`` over ``mask`` (lowest slot on ties); WAIT if none."""
    if not mask.any():
        return WAIT
    masked = np.where(mask, np.asarray(scores, dtype=np.float64), -np.inf)
    return int(np.argmax(masked)) + 1


class TenantScheduler:
    """A per-tenant scheduler: every tenant starts its best-scoring fitting job."""

    name = "tenant"

    def scores(self, info: Mapping[str, Any], mask: np.ndarray) -> np.ndarray:
        """Score of every slot (only fitting slots, ``mask``, are compared)."""
        raise NotImplementedError

    def choose(self, info: Mapping[str, Any]) -> int:
        """The tenant's action from its own info."""
        mask = fitting(info)
        if not mask.any():
            return WAIT
        return best_slot_action(self.scores(info, mask), mask)

    def act(self, observations: Mapping[str, Any], infos: Mapping[str, Mapping[str, Any]]
            ) -> dict[str, int]:
        """Actions of every agent in ``observations``."""
        return {agent: self.choose(infos[agent]) for agent in observations}


class FIFO(TenantScheduler):
    """First In, First Out: the fitting job that has waited longest."""

    name = "fifo"

    def scores(self, info: Mapping[str, Any], mask: np.ndarray) -> np.ndarray:
        return np.asarray(info["slot_waits"], dtype=np.float64)


class SJF(TenantScheduler):
    """Shortest Job First among the fitting jobs."""

    name = "sjf"

    def scores(self, info: Mapping[str, Any], mask: np.ndarray) -> np.ndarray:
        return -np.asarray(info["slot_durations"], dtype=np.float64)


class Packer(TenantScheduler):
    """The fitting job with the largest ``demand . free`` (units)."""

    name = "packer"

    def scores(self, info: Mapping[str, Any], mask: np.ndarray) -> np.ndarray:
        return np.asarray(info["slot_demands"]) @ np.asarray(info["free_capacity"])


class Tetris(TenantScheduler):
    """Packing and SJF scores, each normalised by its maximum over the fitting jobs."""

    name = "tetris"

    def __init__(self, pack_weight: float = 0.5) -> None:
        if not 0.0 <= pack_weight <= 1.0:
            raise ValueError(f"pack_weight must be in [0, 1], got {pack_weight!r}")
        self.pack_weight = float(pack_weight)

    def scores(self, info: Mapping[str, Any], mask: np.ndarray) -> np.ndarray:
        pack = (np.asarray(info["slot_demands"]) @ np.asarray(info["free_capacity"])).astype(
            np.float64)
        durations = np.asarray(info["slot_durations"], dtype=np.float64)
        sjf = np.divide(1.0, durations, out=np.zeros_like(durations), where=durations > 0)
        pack_max, sjf_max = pack[mask].max(), sjf[mask].max()
        pack = pack / pack_max if pack_max > 0 else pack
        sjf = sjf / sjf_max if sjf_max > 0 else sjf
        return self.pack_weight * pack + (1.0 - self.pack_weight) * sjf


class ProgressiveFilling:
    """A cluster-wide plan (see module doc): grant the highest-priority fitting job of the
    tenants not yet granted one, until none fits."""

    name = "progressive_filling"

    def pick(self, index: int, info: Mapping[str, Any], share: float,
             mask: np.ndarray) -> tuple[tuple, int]:
        """``(priority key, action)`` of the tenant's best fitting job; the lowest key wins."""
        raise NotImplementedError

    def act(self, observations: Mapping[str, Any], infos: Mapping[str, Mapping[str, Any]]
            ) -> dict[str, int]:
        """Every agent's part of the progressive-filling plan for this step."""
        agents = list(observations)
        actions = dict.fromkeys(agents, WAIT)
        if not agents:
            return actions
        free = np.array(infos[agents[0]]["free_capacity"], dtype=np.int64)
        capacity = float(infos[agents[0]]["capacity"])
        alloc = {a: np.array(infos[a]["allocation"], dtype=np.int64) for a in agents}
        while True:
            best: tuple[tuple, str, int] | None = None
            for index, agent in enumerate(agents):
                if actions[agent] != WAIT:
                    continue
                info = infos[agent]
                mask = fitting(info, free)
                if not mask.any():
                    continue
                key, action = self.pick(index, info, alloc[agent].max() / capacity, mask)
                if best is None or key < best[0]:
                    best = (key, agent, action)
            if best is None:
                return actions
            _, agent, action = best
            demand = np.asarray(infos[agent]["slot_demands"][action - 1], dtype=np.int64)
            free -= demand
            alloc[agent] = alloc[agent] + demand
            actions[agent] = action


class DRF(ProgressiveFilling):
    """Dominant Resource Fairness over the tenants (lowest dominant share first)."""

    name = "drf"

    def pick(self, index: int, info: Mapping[str, Any], share: float,
             mask: np.ndarray) -> tuple[tuple, int]:
        return (share, index), best_slot_action(info["slot_waits"], mask)


class CentralSJF(ProgressiveFilling):
    """A central Shortest Job First over every tenant's fitting jobs."""

    name = "central_sjf"

    def pick(self, index: int, info: Mapping[str, Any], share: float,
             mask: np.ndarray) -> tuple[tuple, int]:
        durations = np.asarray(info["slot_durations"], dtype=np.float64)
        action = best_slot_action(-durations, mask)
        return (durations[action - 1], index), action


#: scheduler name -> class
SCHEDULERS: dict[str, type] = {
    "fifo": FIFO, "sjf": SJF, "packer": Packer, "tetris": Tetris, "drf": DRF,
    "central_sjf": CentralSJF,
}
#: the issue's baselines, which the learners' slowdown target is measured against
TARGET_SCHEDULERS: tuple[str, ...] = ("fifo", "sjf", "packer", "tetris", "drf")


def make_scheduler(name: str) -> TenantScheduler | ProgressiveFilling:
    """A scheduler by name; ValueError listing the allowed names otherwise."""
    try:
        return SCHEDULERS[name]()
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; allowed: {list(SCHEDULERS)}") from None
