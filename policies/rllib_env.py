"""PettingZoo parallel environments as RLlib multi-agent environments.

:class:`PettingZooMultiAgentEnv` wraps any PettingZoo ``ParallelEnv`` (plain
``marl_envs`` environments as well as wrappers whose set of acting agents changes
from step to step, e.g. hierarchical ones) into RLlib's ``MultiAgentEnv``:

* spaces come from the wrapped env's ``possible_agents``, ``observation_space(agent)``
  and ``action_space(agent)``; agent ids outside ``possible_agents`` (ids that first
  appear mid-episode) are looked up in the wrapped env on demand;
* ``__all__`` is set when the wrapped env's ``agents`` list is empty;
* the obs dict holds only the agents that act next; rewards for agents not in it are
  passed on (RLlib credits them to the agent's pending action); an agent that acted
  and is truncated without an observation gets its last observation repeated (RLlib
  needs it to bootstrap); data for agents that are already done is dropped;
* on the final step of an episode, ``env.unwrapped.episode_stats()`` (when the env
  has it) is attached to the info dict of every agent in the last obs dict under
  ``infos[agent]["episode_stats"]``, so callbacks see the figures even though vector
  envs auto-reset.

Environments are built from ``env_config`` alone (so remote env runners, restored
checkpoints and ``scripts/evaluate.py`` rebuild the same env):

==================  ==========================================================
key                 meaning
==================  ==========================================================
``factory``         name in :data:`ENV_FACTORIES` (default ``"plain"``)
``factory_module``  importable module that registers the factory (optional)
``env``             ``marl_envs`` name (used by ``"plain"``)
``env_kwargs``      keyword arguments of the environment
``seed``            run seed; every (env runner, sub-env) pair derives its own
``torch_threads``   torch intra-op threads in the process (default: unchanged)
==================  ==========================================================

Seeding: the first ``reset`` of each sub-env uses
``SeedSequence([seed, worker_index, sub_env_index])`` (RLlib's own scheme gives
runner ``w`` sub-env ``i`` the seed ``seed + w + i``, which collides across runners,
RLlib issue #46986). Later resets continue the env's random stream.
"""

from __future__ import annotations

import importlib
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv
from ray.rllib.env.multi_agent_env import MultiAgentEnv

import marl_envs

#: factories that build a PettingZoo parallel env from an env_config dict
ENV_FACTORIES: dict[str, Callable[[dict], ParallelEnv]] = {}

#: info key under which the final step carries ``episode_stats()``
EPISODE_STATS_KEY = "episode_stats"

# sub-env counters per (process, worker index): the n-th env built in a runner is sub-env n
_SUB_ENV_COUNTERS: dict[int, itertools.count] = defaultdict(itertools.count)


def register_env_factory(name: str, fn: Callable[[dict], ParallelEnv]) -> None:
    """Register ``fn(env_config) -> ParallelEnv`` under ``name`` (re-registering replaces)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"factory name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise ValueError(f"factory {name!r} must be callable, got {fn!r}")
    ENV_FACTORIES[name] = fn


def _plain_factory(env_config: Mapping[str, Any]) -> ParallelEnv:
    if "env" not in env_config:
        raise ValueError("env_config needs an 'env' key naming a marl_envs environment")
    return marl_envs.make(env_config["env"], **dict(env_config.get("env_kwargs") or {}))


register_env_factory("plain", _plain_factory)


def build_parallel_env(env_config: Mapping[str, Any]) -> ParallelEnv:
    """The PettingZoo parallel env described by ``env_config`` (see module docstring)."""
    module = env_config.get("factory_module")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"cannot import factory_module {module!r}: {e}") from e
    name = env_config.get("factory", "plain")
    try:
        factory = ENV_FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"unknown env factory {name!r}; registered: {sorted(ENV_FACTORIES)} "
            "(name the module that registers it in env_config['factory_module'])"
        ) from None
    return factory(dict(env_config))


def derive_seed(run_seed: int, worker_index: int, sub_env_index: int) -> int:
    """A 31-bit seed, distinct per (run seed, env runner, sub-env), deterministic."""
    state = np.random.SeedSequence([int(run_seed), int(worker_index), int(sub_env_index)])
    return int(state.generate_state(1, dtype=np.uint32)[0] >> 1)


def _limit_torch_threads(n: int | None) -> None:
    if n:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(int(n))


class PettingZooMultiAgentEnv(MultiAgentEnv):
    """RLlib ``MultiAgentEnv`` over any PettingZoo ``ParallelEnv``.

    Build it from an env_config (what RLlib does: ``PettingZooMultiAgentEnv(config)``)
    or around an existing env: ``PettingZooMultiAgentEnv(env=par_env)``.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, *, env: ParallelEnv | None = None):
        super().__init__()
        config = config if config is not None else {}
        self.env_config = dict(config)
        _limit_torch_threads(self.env_config.get("torch_threads"))
        self.par_env = env if env is not None else build_parallel_env(self.env_config)
        self.worker_index = int(getattr(config, "worker_index", 0) or 0)
        self.sub_env_index = next(_SUB_ENV_COUNTERS[self.worker_index])
        run_seed = self.env_config.get("seed")
        self.derived_seed: int | None = None
        if run_seed is not None:
            self.derived_seed = derive_seed(run_seed, self.worker_index, self.sub_env_index)
        self._seeded = False

        self.possible_agents = list(self.par_env.possible_agents)
        if not self.possible_agents:
            raise ValueError(f"{type(self.par_env).__name__} has no possible_agents")
        self.agents = []
        self.observation_spaces = {
            a: self.par_env.observation_space(a) for a in self.possible_agents
        }
        self.action_spaces = {a: self.par_env.action_space(a) for a in self.possible_agents}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)
        self.render_mode = getattr(self.par_env, "render_mode", None)
        self._last_obs: dict[str, Any] = {}
        self._pending: set[str] = set()  # acted, no next observation yet
        self._done: set[str] = set()

    # ------------------------------------------------------------------ spaces
    def get_observation_space(self, agent_id: str) -> gym.Space:
        if agent_id in self.observation_spaces:
            return self.observation_spaces[agent_id]
        return self.par_env.observation_space(agent_id)

    def get_action_space(self, agent_id: str) -> gym.Space:
        if agent_id in self.action_spaces:
            return self.action_spaces[agent_id]
        return self.par_env.action_space(agent_id)

    @property
    def unwrapped_env(self) -> Any:
        """The innermost PettingZoo env (``par_env.unwrapped``)."""
        return getattr(self.par_env, "unwrapped", self.par_env)

    # --------------------------------------------------------------- protocol
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.derived_seed is not None and (seed is not None or not self._seeded):
            seed = self.derived_seed
        if seed is not None:
            self._seeded = True
        obs, infos = self.par_env.reset(seed=seed, options=options)
        self.agents = list(self.par_env.agents)
        self._last_obs = dict(obs)
        self._pending = set()
        self._done = set()
        infos = {a: dict(infos.get(a) or {}) for a in obs} if infos else {}
        return dict(obs), infos

    def step(self, action_dict: Mapping[str, Any]):
        obs, rewards, terms, truncs, infos = self.par_env.step(dict(action_dict))
        obs = dict(obs)
        self._pending |= set(action_dict)
        episode_over = not self.par_env.agents
        truncated_all = episode_over and any(truncs.get(a, False) for a in truncs)

        # an agent that acted and gets truncated (alone or with the episode) needs an obs
        for agent in list(self._pending):
            if agent not in obs and (truncs.get(agent, False) or truncated_all):
                obs[agent] = self._last_obs[agent]
        self._last_obs.update(obs)
        self._pending -= set(obs)

        done = self._done  # agents done before this step (updated in place below)
        rewards = {a: r for a, r in rewards.items() if a not in done}
        terms = {a: bool(t) for a, t in terms.items() if a not in done}
        truncs = {a: bool(t) for a, t in truncs.items() if a not in done}
        obs = {a: o for a, o in obs.items() if a not in done}
        done.update(a for a, t in terms.items() if t)
        done.update(a for a, t in truncs.items() if t)
        infos = {a: dict(infos.get(a) or {}) for a in obs}

        if episode_over:
            stats = self.episode_stats()
            if stats is not None:
                for agent in obs:
                    infos[agent][EPISODE_STATS_KEY] = stats
        terms["__all__"] = episode_over and not truncated_all
        truncs["__all__"] = truncated_all
        self.agents = list(self.par_env.agents)
        return obs, rewards, terms, truncs, infos

    def episode_stats(self) -> dict[str, float] | None:
        """``episode_stats()`` of the wrapped env (a wrapper may add its own figures to
        the innermost env's), or of the innermost env, or None when neither has one."""
        fn = getattr(self.par_env, "episode_stats", None)
        if not callable(fn):
            fn = getattr(self.unwrapped_env, "episode_stats", None)
        return dict(fn()) if callable(fn) else None

    def render(self) -> Any:
        return self.par_env.render()

    def close(self) -> None:
        self.par_env.close()


def env_creator(env_config: Mapping[str, Any]) -> PettingZooMultiAgentEnv:
    """RLlib env creator (``config.environment(env=PettingZooMultiAgentEnv, ...)`` is the same)."""
    return PettingZooMultiAgentEnv(env_config)


def describe_env(env_config: Mapping[str, Any]) -> dict[str, Any]:
    """Agents and spaces of the env of ``env_config`` (builds and closes one instance),
    ``slot_layout`` (the env's ``slot_layout()``, or None where it has none) and
    ``max_cycles`` (its step limit, or None)."""
    env = build_parallel_env(env_config)
    try:
        agents = list(env.possible_agents)
        unwrapped = getattr(env, "unwrapped", env)
        layout_fn = getattr(unwrapped, "slot_layout", None)
        return {
            "possible_agents": agents,
            "observation_spaces": {a: env.observation_space(a) for a in agents},
            "action_spaces": {a: env.action_space(a) for a in agents},
            "slot_layout": layout_fn() if callable(layout_fn) else None,
            "max_cycles": getattr(unwrapped, "max_cycles", None),
        }
    finally:
        env.close()
