"""Multi-agent multi-armed bandits on coordination graphs (MAUCE benchmarks).

* :mod:`~marl_envs.bandits.graph`   the coordination-graph type and variable elimination
* :mod:`~marl_envs.bandits.models`  bandit models (0101-chain, Gem Mining)
* :mod:`~marl_envs.bandits.wind_farm`  the FLORIS wind farm (optional ``floris``)
* :mod:`~marl_envs.bandits.base`    the PettingZoo parallel env around a model

Environments are registered as ``chain0101``, ``gem_mining`` and ``wind_farm``
in :mod:`marl_envs`. Nothing here imports Ray.
"""

from marl_envs.bandits.base import BanditEnv
from marl_envs.bandits.graph import CoordinationGraph, VEPlan
from marl_envs.bandits.models import BanditModel, Chain0101Model, GemMiningModel

__all__ = [
    "BanditEnv",
    "BanditModel",
    "Chain0101Model",
    "CoordinationGraph",
    "GemMiningModel",
    "VEPlan",
]
