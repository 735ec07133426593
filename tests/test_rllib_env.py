"""The PettingZoo -> RLlib adapter: protocol, episode_stats, dynamic agents, seeding."""

import sys
import types

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

from policies.rllib_env import (
    ENV_FACTORIES,
    EPISODE_STATS_KEY,
    PettingZooMultiAgentEnv,
    build_parallel_env,
    derive_seed,
    register_env_factory,
)


def _run_episode(env, episode=None, policy=None):
    obs, infos = env.reset(seed=0)
    if episode is not None:
        episode.add_env_reset(observations=obs, infos=infos)
    last = None
    for t in range(10_000):
        actions = {a: (policy(a, t) if policy else 0) for a in obs}
        obs, rew, terms, truncs, infos = env.step(actions)
        if episode is not None:
            episode.add_env_step(obs, actions, rew, infos, terminateds=terms, truncateds=truncs)
        last = (obs, rew, terms, truncs, infos)
        if terms["__all__"] or truncs["__all__"]:
            return t + 1, last
    raise AssertionError("episode did not end")


@pytest.mark.parametrize("name", ["job_scheduling", "matthew_effect", "manufacturing_plant"])
def test_plain_env_final_infos_carry_episode_stats(name):
    env = PettingZooMultiAgentEnv({"env": name, "env_kwargs": {"max_cycles": 7}, "seed": 3})
    assert env.possible_agents == env.par_env.possible_agents
    assert set(env.observation_space.spaces) == set(env.possible_agents)
    episode = MultiAgentEpisode(
        observation_space=env.observation_space, action_space=env.action_space
    )
    steps, (obs, _, terms, truncs, infos) = _run_episode(env, episode)
    assert steps == 7 and truncs["__all__"] and not terms["__all__"]
    assert episode.is_done
    stats = infos[env.possible_agents[0]][EPISODE_STATS_KEY]
    assert stats == env.par_env.unwrapped.episode_stats()
    for key in ("utilization", "cv", "average_utility", "min_utility", "max_utility"):
        assert key in stats
    assert env.agents == []


class _Hierarchical(ParallelEnv):
    """Toy wrapper: a controller acts every 3 steps, per-segment workers in between.

    Worker ids ("w/seg<k>") appear mid-episode and are truncated individually without
    an observation; the controller is rewarded while it is not in the obs dict.
    """

    metadata = {"name": "toy_hier"}

    def __init__(self, horizon=8):
        self.possible_agents = ["ctrl", "w/seg0"]
        self.horizon = horizon
        self._space = spaces.Box(-1, 1, (2,), np.float32)

    def observation_space(self, agent):
        return self._space

    def action_space(self, agent):
        return spaces.Discrete(2)

    def _obs(self):
        return np.full(2, self.t / self.horizon, np.float32)

    def reset(self, seed=None, options=None):
        self.t = 0
        self.seg = 0
        self.agents = ["ctrl"]
        return {"ctrl": self._obs()}, {"ctrl": {}}

    def step(self, actions):
        self.t += 1
        rewards, terms, truncs = {"ctrl": 0.5}, {}, {}
        prev_worker = f"w/seg{self.seg}"
        if prev_worker in actions:
            rewards[prev_worker] = 1.0
        if self.t >= self.horizon:
            self.agents = []
            truncs = {"ctrl": True, prev_worker: True}
            return {"ctrl": self._obs()}, rewards, terms, truncs, {}
        if self.t % 3 == 0:  # new segment: old worker done, controller acts
            terms[prev_worker] = True
            self.seg += 1
            return {"ctrl": self._obs()}, rewards, terms, truncs, {"ctrl": {}}
        worker = f"w/seg{self.seg}"
        return {worker: self._obs()}, rewards, terms, truncs, {worker: {}}

    def episode_stats(self):
        return {"utilization": 1.0, "cv": 0.0}


def test_dynamic_agents_fit_rllib_episodes():
    env = PettingZooMultiAgentEnv(env=_Hierarchical())
    episode = MultiAgentEpisode(
        observation_space=env.observation_space, action_space=env.action_space
    )
    steps, (obs, _, _, truncs, infos) = _run_episode(env, episode)
    assert steps == 8 and truncs["__all__"]
    # the worker of the last segment acted and was truncated: it got its last obs back
    assert "w/seg2" in obs and "ctrl" in obs
    assert infos["ctrl"][EPISODE_STATS_KEY] == {"utilization": 1.0, "cv": 0.0}
    assert episode.is_done
    assert {"ctrl", "w/seg0", "w/seg1", "w/seg2"} <= set(episode.agent_episodes)
    assert episode.agent_episodes["w/seg1"].get_return() == pytest.approx(2.0)
    # new ids fall back to the wrapped env's spaces
    assert env.get_observation_space("w/seg7") == spaces.Box(-1, 1, (2,), np.float32)


def test_seeds_distinct_per_runner_and_sub_env_and_deterministic():
    seeds = {derive_seed(0, w, i) for w in range(4) for i in range(4)}
    assert len(seeds) == 16
    assert derive_seed(5, 1, 2) == derive_seed(5, 1, 2)
    assert derive_seed(5, 1, 2) != derive_seed(6, 1, 2)
    # the adapter numbers its sub-envs and seeds the first reset from the run seed
    envs = [PettingZooMultiAgentEnv({"env": "job_scheduling", "seed": 11}) for _ in range(3)]
    assert len({e.derived_seed for e in envs}) == 3
    first = [e.reset(seed=123)[0]["agent_0"] for e in envs]
    assert any(not np.array_equal(first[0], f) for f in first[1:])


def test_factory_registry_and_factory_module():
    assert "plain" in ENV_FACTORIES
    mod = types.ModuleType("_toy_factory_mod")

    def register():
        register_env_factory("toy_hier", lambda cfg: _Hierarchical(horizon=cfg.get("h", 8)))

    mod.register = register
    sys.modules["_toy_factory_mod"] = mod
    register()
    env = PettingZooMultiAgentEnv({"factory": "toy_hier", "factory_module": "_toy_factory_mod"})
    assert env.possible_agents == ["ctrl", "w/seg0"]
    with pytest.raises(ValueError, match="unknown env factory 'nope'"):
        build_parallel_env({"factory": "nope"})
    with pytest.raises(ValueError, match="cannot import factory_module"):
        build_parallel_env({"factory": "plain", "factory_module": "no_such_module_xyz"})
    with pytest.raises(ValueError, match="unknown environment"):
        build_parallel_env({"env": "nope"})
