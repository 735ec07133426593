"""The 0101-chain as a PettingZoo parallel env (see :mod:`marl_envs.chain0101_v0`)."""

from __future__ import annotations

from marl_envs.bandits.base import BanditEnv
from marl_envs.bandits.models import Chain0101Model
from marl_envs.resource_env import constructors


class Chain0101Env(BanditEnv):
    """0101-chain bandit: ``n_agents`` agents, factors ``(i, i+1)``, Bernoulli rewards."""

    metadata = {**BanditEnv.metadata, "name": "chain0101_v0"}

    def __init__(
        self, n_agents: int = 10, horizon: int = 10000, render_mode: str | None = None
    ) -> None:
        super().__init__(Chain0101Model(n_agents), horizon, render_mode)


parallel_env, env = constructors(Chain0101Env)
