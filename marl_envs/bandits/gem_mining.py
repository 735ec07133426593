"""Gem Mining as a PettingZoo parallel env (see :mod:`marl_envs.gem_mining_v0`)."""

from __future__ import annotations

from marl_envs.bandits.base import BanditEnv
from marl_envs.bandits.models import GemMiningModel
from marl_envs.resource_env import constructors


class GemMiningEnv(BanditEnv):
    """Gem Mining bandit: villages send workers to mines; one instance per ``instance_seed``."""

    metadata = {**BanditEnv.metadata, "name": "gem_mining_v0"}

    def __init__(
        self,
        instance_seed: int = 0,
        n_villages: int | None = None,
        normalise: bool = True,
        horizon: int = 40000,
        render_mode: str | None = None,
    ) -> None:
        model = GemMiningModel(seed=instance_seed, normalise=normalise, n_villages=n_villages)
        super().__init__(model, horizon, render_mode)


parallel_env, env = constructors(GemMiningEnv)
