"""Resource Allocation: tenants' schedulers share one CPU/memory cluster (DeepRM, multi-agent).

| | |
|---|---|
| Agents | ``n_agents`` tenants (default 4): ``agent_0`` .. ``agent_3``, each the scheduler of its own job queue |
| Actions | ``Discrete(n_slots + 1)`` (default 11): 0 wait, ``k`` = start the job in visible slot ``k - 1`` |
| Observation | ``obs_layout="flat"`` (default): ``Box(n_resources*horizon + n_resources + n_slots*(n_resources+3) + 1,)`` float32 in [0, 1] (93 by default), see *Observation*; ``obs_layout="image"``: DeepRM's image, flattened, ``Box(horizon*width,)`` |
| Reward | ``-reward_scale * sum(1 / T_j)`` over the tenant's jobs in the system during the step (DeepRM; ``reward_scale`` default 1): the return is minus the sum of its jobs' slowdowns (times ``reward_scale``); ``team_reward=True``: every tenant gets the mean of all tenants' rewards (a cooperative objective: the return is then minus the cluster's job slowdowns, over ``n_agents``) |
| Action mask | ``action_mask=True``: observations are ``{"observation": <above>, "action_mask": int8 (n_slots + 1,)}`` (PettingZoo's convention): 1 for wait and for every visible job that fits the free units now; masked actions stay legal (a refusal or a no-op, as below) |
| Episode | ``max_cycles`` steps (default 200), then truncated; with ``arrival_cycles < max_cycles`` jobs stop arriving after ``arrival_cycles`` steps and the rest of the episode drains the queues (DeepRM's fixed job sequence), see *Draining* |
| c (max fair utility) | ``1 / n_agents``; utility = the tenant's share of cluster resource-time, so utilization = cluster utilisation |

**Cluster and jobs.** ``n_resources`` resource types (default 2: CPU, memory), each of
``capacity`` integer units (default 20). A job has a duration ``T`` (steps) and an
integer demand per resource. DeepRM's distribution (default): with probability
``small_job_prob`` = 0.8 ``T`` is uniform in ``small_duration`` = 1..3, else in
``large_duration`` = 10..15; one resource, uniform among the types, is dominant with a
demand uniform in ``dominant_demand`` = 5..10 units (0.25-0.5 of capacity), the others
uniform in ``other_demand`` = 1..2 units (0.05-0.1). A demand above ``capacity`` is an
impossible job and raises ``ValueError`` at construction.

**Load** (DeepRM's cluster load): the average resource demand offered per step relative
to the cluster capacity, summed over tenants and averaged over resource types::

    load = n_agents * p * E[T * mean_r(demand_r / capacity)]

Each tenant has its own Bernoulli arrival stream (at most one job per step) with rate
``p = load / (n_agents * E[T * mean_r(demand_r / capacity)])``; with the defaults the
expectation is 4.1 * 0.225 = 0.9225 job-resource-time, so ``load = 0.7`` gives
``p = 0.19``. A load that needs ``p > 1`` raises ``ValueError`` naming the largest
possible load. ``load > 1`` offers more work than the cluster can run (queues grow).

**Arguments** are checked with :mod:`marl_envs.validation` (``ValueError`` for a bad
value, ``TypeError`` for a bad type, naming the argument): ``n_agents``,
``n_resources``, ``capacity``, ``n_slots``, ``horizon``, ``max_cycles`` integers >= 1,
``backlog_size`` >= 0, ``arrival_cycles`` None or 1..max_cycles; ``load`` and
``reward_scale`` finite > 0, ``small_job_prob`` in [0, 1]; the duration pairs integers
``1 <= lo <= hi``, the demand pairs ``0 <= lo <= hi <= capacity``; ``obs_layout`` one
of ``"flat"``/``"image"``; ``team_reward`` and ``action_mask`` bools.

**Queues.** A tenant's arriving job enters its first empty visible slot (``n_slots``,
default 10), else its backlog (``backlog_size``, default 60); when the backlog is full
the job is dropped and counted (``dropped_jobs``). When a slot empties, the oldest
backlog job moves into it at the end of the step.

**A step** (every tenant acts at every step, time advances every step):

1. Every tenant's request (start the job in its chosen slot) is handled in a uniformly
   random order drawn each step (fair to every tenant): a job that fits the free units of
   every resource starts now and holds its demand for ``T`` steps; one that does not fit
   is refused (it stays in its slot; ``refused_requests``). Choosing an empty slot is a
   counted no-op (``empty_slot_choices``), not an error; an action outside
   ``Discrete(n_slots + 1)`` raises ``ValueError``.
2. Rewards: every job of the tenant that is waiting (slot or backlog) or running during
   this step costs ``1 / T``. Fairness utility gain: the tenant's allocated units
   during this step, ``mean_r(alloc_r / capacity)``.
3. Time advances: jobs that have run ``T`` steps complete (slowdown
   ``(completion - arrival) / T >= 1``); new jobs arrive (arrival time = the next step);
   backlog jobs fill empty slots.

**Observation** (``flat``, all in [0, 1]), in order: cluster occupancy of every resource
for the next ``horizon`` (default 20) steps from the running jobs, ``[h, r]`` h-major
(``n_resources*horizon``); the tenant's own allocation per resource (``n_resources``);
per visible slot ``[demand_r / capacity for r, T / max duration, min(1, wait /
arrival_cycles), filled]`` (``n_slots*(n_resources+3)``); backlog length / ``backlog_size``.
``image``: DeepRM's picture, a ``(horizon, width)`` array flattened row-major with
``width = n_resources*capacity*(1 + n_slots) + ceil(backlog_size / horizon)``: the
cluster block of every resource (row h = step ``t+h``; the tenant's own units 1.0,
other tenants' units 0.5), then each slot's job as a ``T x demand_r`` block of ones per
resource, then the backlog as filled cells (column-major).

**Draining** (``arrival_cycles``, default ``max_cycles``: arrivals never stop). The last
arrivals come with step ``arrival_cycles`` (the jobs a ``max_cycles = arrival_cycles``
episode ends with); for the remaining ``max_cycles - arrival_cycles`` steps the tenants
keep scheduling their queues, and once every job is done the steps cost nothing (the
episode keeps its fixed length, so it suits samplers that need one). Its first
``arrival_cycles`` steps are those of the undrained episode of the same seed and actions,
so with, e.g., ``arrival_cycles=200, max_cycles=1000`` every job counts with its full
slowdown instead of its slowdown so far at step 200: the return is minus the total
slowdown of all the jobs, and a policy gains nothing by leaving work unfinished at the
end (DeepRM's objective). The observation scales waits by ``arrival_cycles``, so a
policy trained on ``max_cycles=200`` episodes sees the same features. ``utilization``
and ``cv`` cover the drain steps too; ``makespan`` is the step the last job completed.

**Slowdown of unfinished jobs.** ``avg_slowdown`` averages over every job that spent at
least one step in the system: completed jobs with their slowdown, jobs still queued or
running at the end with their slowdown so far, ``(end - arrival) / T`` (a lower bound;
minus the sum of rewards over the same jobs). This matches the reward and does not
reward starving long jobs. ``avg_slowdown_completed`` is DeepRM's average over
completed jobs only, and ``unfinished_jobs`` counts the jobs left.

``episode_stats()`` adds: ``makespan`` (the step the last completed job finished),
``avg_slowdown``, ``slowdown/<agent>``,
``avg_slowdown_completed``, ``completed_jobs``, ``unfinished_jobs``, ``arrived_jobs``,
``dropped_jobs``, ``refused_requests``, ``empty_slot_choices``,
``dominant_share_spread`` (time average of max - min of the tenants' dominant shares)
and ``dominant_share/<agent>`` (time-averaged). ``utilization`` is the cluster
utilisation and ``cv`` the CV of the tenants' resource shares.

``infos[agent]`` (what the heuristic schedulers of :mod:`policies.heuristics.schedulers`
read): ``tenant`` (index), ``capacity`` (int), ``free_capacity`` (units free per
resource now), ``allocation`` (units the tenant holds per resource),
``dominant_shares`` (every tenant's current dominant share), ``slot_filled``, ``slot_demands`` (``(n_slots, n_resources)`` units),
``slot_durations``, ``slot_waits`` (steps waited so far), ``backlog`` (count), and the
outcome of the tenant's last request: ``started``, ``refused``, ``empty_slot`` (bools).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from gymnasium import spaces

from marl_envs.parallel_base import RENDER_MODES
from marl_envs.resource_env import AGENT_COLOURS, ResourceEnv, constructors, paint_cells
from marl_envs.validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_int_pair,
)

OBS_LAYOUTS = ("flat", "image")

#: a queued job: (demand per resource, duration, arrival step)
Job = tuple[np.ndarray, int, int]


def expected_resource_time(
    n_resources: int,
    capacity: int,
    small_job_prob: float,
    small_duration: tuple[int, int],
    large_duration: tuple[int, int],
    dominant_demand: tuple[int, int],
    other_demand: tuple[int, int],
) -> float:
    """``E[T * mean_r(demand_r / capacity)]`` of one job (duration and demand independent)."""
    mean_t = small_job_prob * sum(small_duration) / 2 + (1 - small_job_prob) * sum(
        large_duration) / 2
    mean_demand = (sum(dominant_demand) / 2 + (n_resources - 1) * sum(other_demand) / 2)
    return mean_t * mean_demand / n_resources / capacity


class ResourceAllocationEnv(ResourceEnv):
    """Parallel multi-tenant cluster scheduling (DeepRM); see the module docstring."""

    metadata = {
        "name": "resource_allocation_v0",
        "render_modes": list(RENDER_MODES),
        "render_fps": 10,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        n_agents: int = 4,
        load: float = 0.7,
        n_resources: int = 2,
        capacity: int = 20,
        n_slots: int = 10,
        backlog_size: int = 60,
        horizon: int = 20,
        max_cycles: int = 200,
        arrival_cycles: int | None = None,
        obs_layout: str = "flat",
        small_job_prob: float = 0.8,
        small_duration: tuple[int, int] = (1, 3),
        large_duration: tuple[int, int] = (10, 15),
        dominant_demand: tuple[int, int] = (5, 10),
        other_demand: tuple[int, int] = (1, 2),
        reward_scale: float = 1.0,
        team_reward: bool = False,
        action_mask: bool = False,
        render_mode: str | None = None,
    ) -> None:
        n_agents = check_int("n_agents", n_agents, low=1)
        load = check_float("load", load, low=0.0, low_open=True)
        n_resources = check_int("n_resources", n_resources, low=1)
        capacity = check_int("capacity", capacity, low=1)
        n_slots = check_int("n_slots", n_slots, low=1)
        backlog_size = check_int("backlog_size", backlog_size, low=0)
        horizon = check_int("horizon", horizon, low=1)
        max_cycles = check_int("max_cycles", max_cycles, low=1)
        arrival_cycles = check_int("arrival_cycles", arrival_cycles, low=1, high=max_cycles,
                                   none_ok=True, note=f"at most max_cycles={max_cycles}")
        obs_layout = check_choice("obs_layout", obs_layout, OBS_LAYOUTS)
        small_job_prob = check_float("small_job_prob", small_job_prob, low=0.0, high=1.0)
        small_duration = check_int_pair("small_duration", small_duration, low=1)
        large_duration = check_int_pair("large_duration", large_duration, low=1)
        impossible = (f"an impossible job demand: at most capacity={capacity} units per "
                      "resource are allowed")
        dominant_demand = check_int_pair("dominant_demand", dominant_demand, low=0,
                                         high=capacity, note=impossible)
        other_demand = check_int_pair("other_demand", other_demand, low=0, high=capacity,
                                      note=impossible)
        reward_scale = check_float("reward_scale", reward_scale, low=0.0, low_open=True)
        team_reward = check_bool("team_reward", team_reward)
        per_job = expected_resource_time(n_resources, capacity, small_job_prob,
                                         small_duration, large_duration,
                                         dominant_demand, other_demand)
        if per_job <= 0:
            raise ValueError("the job distribution demands no resources: dominant_demand="
                             f"{dominant_demand} and other_demand={other_demand} are all 0")
        rate = load / (n_agents * per_job)
        if rate > 1.0:
            raise ValueError(
                f"load={load} needs an arrival probability of {rate:.3f} > 1 per tenant and "
                f"step; the largest load with n_agents={n_agents} and this job distribution "
                f"is {n_agents * per_job:.4f}"
            )
        self.n_actions = n_slots + 1
        self.n_resources = n_resources
        self.capacity = capacity
        self.n_slots = n_slots
        self.backlog_size = backlog_size
        self.horizon = horizon
        self.obs_layout = obs_layout
        self.arrival_cycles = max_cycles if arrival_cycles is None else arrival_cycles
        self.load = load
        # learners fit values far better at returns of tens than of thousands (Adam moves a
        # value head by ~lr per update): the metrics never depend on it
        self.reward_scale = reward_scale
        # a cooperative learner's signal; utilities and metrics do not depend on it
        self.team_reward = team_reward
        self.arrival_rate = float(rate)
        self.small_job_prob = small_job_prob
        self.small_duration = small_duration
        self.large_duration = large_duration
        self.dominant_demand = dominant_demand
        self.other_demand = other_demand
        self.max_duration = max(self.small_duration[1], self.large_duration[1])
        d, m = self.n_resources, self.n_slots
        self.flat_dim = d * horizon + d + m * (d + 3) + 1
        self.image_width = d * capacity * (1 + m) + math.ceil(backlog_size / horizon)
        dim = self.flat_dim if obs_layout == "flat" else horizon * self.image_width
        space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        super().__init__(n_agents, space, max_cycles, render_mode, action_mask)
        self.max_fair_utility = 1.0 / n_agents
        self._init_state()

    # ---------------------------------------------------------------- state
    def _init_state(self) -> None:
        n, m, d = self.n_agents, self.n_slots, self.n_resources
        self._slot_filled = np.zeros((n, m), dtype=bool)
        self._slot_demand = np.zeros((n, m, d), dtype=np.int64)
        self._slot_duration = np.zeros((n, m), dtype=np.int64)
        self._slot_arrival = np.zeros((n, m), dtype=np.int64)
        self._backlog: list[deque[Job]] = [deque() for _ in range(n)]
        #: running jobs: tenant, demand, duration, arrival, end step (exclusive)
        self._running: list[tuple[int, np.ndarray, int, int, int]] = []
        self._alloc = np.zeros((n, d), dtype=np.int64)  # units held per tenant
        self._inv_duration = np.zeros(n)  # sum of 1/T over the tenant's jobs in the system
        self._in_system = np.zeros(n, dtype=np.int64)  # the tenant's jobs in the system
        self._share_gain = np.zeros(n)
        self._completed = np.zeros(n, dtype=np.int64)
        self._slowdown_sum = np.zeros(n)
        self._makespan = 0
        self._arrived = np.zeros(n, dtype=np.int64)
        self._dropped = np.zeros(n, dtype=np.int64)
        self._refused = np.zeros(n, dtype=np.int64)
        self._empty_choices = np.zeros(n, dtype=np.int64)
        self._dominant_sum = np.zeros(n)
        self._spread_sum = 0.0
        self._outcome = np.zeros(n, dtype=np.int64)  # 0 none/wait, 1 started, 2 refused, 3 empty

    def _reset_state(self) -> None:
        self._init_state()
        self._arrivals(0)

    @property
    def free_capacity(self) -> np.ndarray:
        """Free units of every resource now."""
        return self.capacity - self._alloc.sum(axis=0)

    def dominant_shares(self) -> np.ndarray:
        """Every tenant's current dominant share ``max_r alloc_r / capacity``."""
        return self._alloc.max(axis=1) / self.capacity

    def draw_job(self) -> tuple[np.ndarray, int]:
        """One job of the configured distribution: (demand per resource, duration)."""
        rng = self.np_random
        lo, hi = self.small_duration if rng.random() < self.small_job_prob else (
            self.large_duration)
        duration = int(rng.integers(lo, hi + 1))
        demand = rng.integers(self.other_demand[0], self.other_demand[1] + 1,
                              size=self.n_resources)
        dominant = int(rng.integers(self.n_resources))
        demand[dominant] = rng.integers(self.dominant_demand[0], self.dominant_demand[1] + 1)
        return demand.astype(np.int64), duration

    def enqueue(self, tenant: int, demand: Any, duration: int, arrival: int) -> bool:
        """Put a job in the tenant's first empty slot, else its backlog; False if dropped."""
        demand = np.asarray(demand, dtype=np.int64)
        if demand.shape != (self.n_resources,) or (demand < 0).any() or (
                demand > self.capacity).any():
            raise ValueError(f"job demand {demand.tolist()} is impossible: need "
                             f"{self.n_resources} integers in 0..{self.capacity}")
        duration = check_int("job duration", duration, low=1)
        self._arrived[tenant] += 1
        empty = np.flatnonzero(~self._slot_filled[tenant])
        if empty.size:
            k = empty[0]
            self._slot_filled[tenant, k] = True
            self._slot_demand[tenant, k] = demand
            self._slot_duration[tenant, k] = duration
            self._slot_arrival[tenant, k] = arrival
        elif len(self._backlog[tenant]) < self.backlog_size:
            self._backlog[tenant].append((demand, int(duration), int(arrival)))
        else:
            self._dropped[tenant] += 1
            return False
        self._inv_duration[tenant] += 1.0 / duration
        self._in_system[tenant] += 1
        return True

    def _arrivals(self, arrival: int) -> None:
        hits = self.np_random.random(self.n_agents) < self.arrival_rate
        for i in np.flatnonzero(hits):
            demand, duration = self.draw_job()
            self.enqueue(int(i), demand, duration, arrival)

    def _step_state(self, actions: np.ndarray) -> np.ndarray:
        t = self.num_steps
        self._outcome[:] = 0
        free = self.free_capacity
        for i in self.np_random.permutation(self.n_agents).tolist():
            a = int(actions[i])
            if a == 0:
                continue
            k = a - 1
            if not self._slot_filled[i, k]:
                self._empty_choices[i] += 1
                self._outcome[i] = 3
                continue
            demand = self._slot_demand[i, k]
            if (demand > free).any():
                self._refused[i] += 1
                self._outcome[i] = 2
                continue
            free -= demand
            self._alloc[i] += demand
            duration = int(self._slot_duration[i, k])
            self._running.append((i, demand.copy(), duration, int(self._slot_arrival[i, k]),
                                  t + duration))
            self._slot_filled[i, k] = False
            self._outcome[i] = 1
        rewards = -self.reward_scale * self._inv_duration
        if self.team_reward:
            rewards = np.full_like(rewards, rewards.mean())
        self._share_gain = (self._alloc / self.capacity).mean(axis=1)
        dominant = self.dominant_shares()
        self._dominant_sum += dominant
        self._spread_sum += float(dominant.max() - dominant.min())
        # time advances: completions at t + 1, arrivals for t + 1, backlog into slots
        still = []
        for job in self._running:
            i, demand, duration, arrival, end = job
            if end <= t + 1:
                self._alloc[i] -= demand
                self._completed[i] += 1
                self._slowdown_sum[i] += (end - arrival) / duration
                self._inv_duration[i] -= 1.0 / duration
                self._in_system[i] -= 1
                if not self._in_system[i]:  # no rounding residue: an empty queue costs 0
                    self._inv_duration[i] = 0.0
                self._makespan = max(self._makespan, end)
            else:
                still.append(job)
        self._running = still
        self._fill_slots()
        if t + 1 <= self.arrival_cycles:
            self._arrivals(t + 1)
        return rewards

    def _fill_slots(self) -> None:
        for i, backlog in enumerate(self._backlog):
            while backlog and not self._slot_filled[i].all():
                k = int(np.flatnonzero(~self._slot_filled[i])[0])
                demand, duration, arrival = backlog.popleft()
                self._slot_filled[i, k] = True
                self._slot_demand[i, k] = demand
                self._slot_duration[i, k] = duration
                self._slot_arrival[i, k] = arrival

    def _utility_gains(self, rewards: np.ndarray) -> np.ndarray:
        return self._share_gain

    # --------------------------------------------------------- observations
    def _occupancy(self) -> tuple[np.ndarray, np.ndarray]:
        """Units used at steps ``t .. t+horizon-1``: ``(n_agents, horizon, d)`` by tenant."""
        t, h = self.num_steps, self.horizon
        occ = np.zeros((self.n_agents, h, self.n_resources), dtype=np.int64)
        for i, demand, _, _, end in self._running:
            occ[i, : min(end - t, h)] += demand
        return occ, occ.sum(axis=0)

    def _observations(self) -> np.ndarray:
        if self.obs_layout == "image":
            return self._image_observations()
        n, d, h, m, c = self.n_agents, self.n_resources, self.horizon, self.n_slots, self.capacity
        _, total = self._occupancy()
        obs = np.empty((n, self.flat_dim), dtype=np.float32)
        obs[:, : d * h] = (total / c).ravel()
        obs[:, d * h : d * h + d] = self._alloc / c
        slots = np.empty((n, m, d + 3), dtype=np.float32)
        slots[:, :, :d] = self._slot_demand / c
        slots[:, :, d] = self._slot_duration / self.max_duration
        waits = (self.num_steps - self._slot_arrival) * self._slot_filled
        slots[:, :, d + 1] = np.minimum(1.0, waits / self.arrival_cycles)
        slots[:, :, d + 2] = self._slot_filled
        slots[~self._slot_filled] = 0.0
        obs[:, d * h + d : -1] = slots.reshape(n, -1)
        backlog = np.array([len(b) for b in self._backlog], dtype=np.float32)
        obs[:, -1] = backlog / self.backlog_size if self.backlog_size else 0.0
        return obs

    def slot_layout(self) -> dict[str, int]:
        """Where the job slots sit in a flat observation: ``start`` (index of the first
        slot feature), ``n_slots`` and ``slot_dim`` features per slot (for policies that
        score every slot with one network, e.g. ``policies.slot_scoring``)."""
        if self.obs_layout != "flat":
            raise ValueError(f"slot_layout() needs obs_layout='flat', not {self.obs_layout!r}")
        d = self.n_resources
        return {"start": d * self.horizon + d, "n_slots": self.n_slots, "slot_dim": d + 3}

    def _action_masks(self) -> np.ndarray:
        """Wait, and every visible job that fits the free units now (it may still be
        refused when another tenant's request is handled first)."""
        fits = self._slot_filled & np.all(self._slot_demand <= self.free_capacity, axis=-1)
        masks = np.ones((self.n_agents, self.n_actions), dtype=np.int8)
        masks[:, 1:] = fits
        return masks

    def _image_observations(self) -> np.ndarray:
        n, d, h, m, c = self.n_agents, self.n_resources, self.horizon, self.n_slots, self.capacity
        per_tenant, total = self._occupancy()
        img = np.zeros((n, h, self.image_width), dtype=np.float32)
        units = np.arange(c)
        for i in range(n):
            own = per_tenant[i]
            for r in range(d):
                block = img[i, :, r * c : (r + 1) * c]
                block[units[None, :] < total[:, r, None]] = 0.5
                block[units[None, :] < own[:, r, None]] = 1.0
            for k in np.flatnonzero(self._slot_filled[i]):
                rows = min(int(self._slot_duration[i, k]), h)
                for r in range(d):
                    start = d * c * (1 + k) + r * c
                    img[i, :rows, start : start + int(self._slot_demand[i, k, r])] = 1.0
            cells = np.zeros(h * (self.image_width - d * c * (1 + m)), dtype=np.float32)
            cells[: len(self._backlog[i])] = 1.0
            img[i, :, d * c * (1 + m) :] = cells.reshape(-1, h).T
        return img.reshape(n, -1)

    def _infos(self) -> list[dict[str, Any]]:
        free = self.free_capacity
        shares = self.dominant_shares()
        waits = (self.num_steps - self._slot_arrival) * self._slot_filled
        outcome = self._outcome.tolist()
        return [
            {
                "tenant": i,
                "capacity": self.capacity,
                "free_capacity": free.copy(),
                "allocation": self._alloc[i].copy(),
                "dominant_shares": shares.copy(),
                "slot_filled": self._slot_filled[i].copy(),
                "slot_demands": self._slot_demand[i].copy(),
                "slot_durations": self._slot_duration[i].copy(),
                "slot_waits": waits[i].copy(),
                "backlog": len(self._backlog[i]),
                "started": outcome[i] == 1,
                "refused": outcome[i] == 2,
                "empty_slot": outcome[i] == 3,
            }
            for i in range(self.n_agents)
        ]

    # ---------------------------------------------------------------- stats
    def _unfinished(self) -> tuple[np.ndarray, np.ndarray]:
        """Per tenant: count and summed slowdown so far of the jobs still in the system
        that have spent at least one step in it."""
        t = self.num_steps
        count = np.zeros(self.n_agents, dtype=np.int64)
        total = np.zeros(self.n_agents)
        jobs = [(i, d, a) for i, _, d, a, _ in self._running]
        for i in range(self.n_agents):
            for k in np.flatnonzero(self._slot_filled[i]):
                jobs.append((i, int(self._slot_duration[i, k]), int(self._slot_arrival[i, k])))
            jobs += [(i, d, a) for _, d, a in self._backlog[i]]
        for i, duration, arrival in jobs:
            if arrival < t:
                count[i] += 1
                total[i] += (t - arrival) / duration
        return count, total

    def _extra_stats(self) -> dict[str, float]:
        steps = max(self.num_steps, 1)
        left, left_sum = self._unfinished()
        jobs = self._completed + left
        slowdown = (self._slowdown_sum + left_sum) / np.maximum(jobs, 1)
        completed = int(self._completed.sum())
        stats = {
            "avg_slowdown": float((self._slowdown_sum.sum() + left_sum.sum())
                                  / max(int(jobs.sum()), 1)),
            "avg_slowdown_completed": float(self._slowdown_sum.sum() / max(completed, 1)),
            "completed_jobs": float(completed),
            "unfinished_jobs": float(left.sum()),
            "arrived_jobs": float(self._arrived.sum()),
            "dropped_jobs": float(self._dropped.sum()),
            "refused_requests": float(self._refused.sum()),
            "empty_slot_choices": float(self._empty_choices.sum()),
            "dominant_share_spread": self._spread_sum / steps,
            "makespan": float(self._makespan),
        }
        for i, agent in enumerate(self.possible_agents):
            stats[f"slowdown/{agent}"] = float(slowdown[i])
            stats[f"dominant_share/{agent}"] = float(self._dominant_sum[i] / steps)
        return stats

    # --------------------------------------------------------------- render
    def _render_ansi(self) -> str:
        free = self.free_capacity.tolist()
        lines = [f"step {self.num_steps}/{self.max_cycles}, load {self.load}, free units "
                 f"{free} of {self.capacity}, running jobs {len(self._running)}"]
        for i, agent in enumerate(self.possible_agents):
            jobs = " ".join(
                f"{k}:{'/'.join(map(str, self._slot_demand[i, k].tolist()))}"
                f"x{self._slot_duration[i, k]}"
                for k in np.flatnonzero(self._slot_filled[i])
            )
            lines.append(f"{agent}: holds {self._alloc[i].tolist()}, backlog "
                         f"{len(self._backlog[i])}, slots [{jobs}]")
        return "\n".join(lines) + "\n"

    def _render_rgb(self) -> np.ndarray:
        """The occupancy of the next ``horizon`` steps, one block per resource, units
        coloured by tenant (row = future step, column = unit)."""
        per_tenant, _ = self._occupancy()
        c, h = self.capacity, self.horizon
        cells = np.full((h, self.n_resources * (c + 1) - 1, 3), 235, dtype=np.uint8)
        for r in range(self.n_resources):
            for s in range(h):
                u = r * (c + 1)
                for i in range(self.n_agents):
                    n_units = int(per_tenant[i, s, r])
                    cells[s, u : u + n_units] = AGENT_COLOURS[i % len(AGENT_COLOURS)]
                    u += n_units
            if r:
                cells[:, r * (c + 1) - 1] = 40
        return paint_cells(cells, 8)


parallel_env, env = constructors(ResourceAllocationEnv)
