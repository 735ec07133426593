"""PettingZoo parallel environments for fair and coordinated resource management.

Each environment module follows PettingZoo's convention and exposes
``parallel_env(**kwargs)`` and ``env(**kwargs)`` (the AEC form). The registry
gives every environment a short name::

    import marl_envs
    env = marl_envs.make("job_scheduling", render_mode="ansi")
    print(marl_envs.ENV_NAMES)

This package never imports Ray: any PettingZoo client can use it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pettingzoo import ParallelEnv

from marl_envs import (
    chain0101_v0,
    gem_mining_v0,
    job_scheduling_v0,
    live_recommendation_v0,
    manufacturing_plant_v0,
    matthew_effect_v0,
    resource_allocation_v0,
    wind_farm_v0,
)

_MODULES: dict[str, ModuleType] = {
    "job_scheduling": job_scheduling_v0,
    "matthew_effect": matthew_effect_v0,
    "manufacturing_plant": manufacturing_plant_v0,
    "chain0101": chain0101_v0,
    "gem_mining": gem_mining_v0,
    "wind_farm": wind_farm_v0,
    "resource_allocation": resource_allocation_v0,
    "live_recommendation": live_recommendation_v0,
}

#: short names of every registered environment
ENV_NAMES: tuple[str, ...] = tuple(_MODULES)


def env_module(name: str) -> ModuleType:
    """The ``*_v0`` module of environment ``name``."""
    try:
        return _MODULES[name]
    except KeyError:
        raise ValueError(f"unknown environment {name!r}; allowed: {list(ENV_NAMES)}") from None


def make(name: str, **kwargs: Any) -> ParallelEnv:
    """Create the parallel environment registered as ``name``."""
    return env_module(name).parallel_env(**kwargs)


def make_fn(name: str) -> Callable[..., ParallelEnv]:
    """The parallel-env factory of ``name`` (for clients that want a callable)."""
    return env_module(name).parallel_env


def default_kwargs(name: str) -> dict[str, Any]:
    """The keyword arguments of environment ``name`` that have a default, with it (its
    class's constructor signature): what leaving one out stands for."""
    cls = type(make(name))
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


__all__ = ["ENV_NAMES", "default_kwargs", "env_module", "make", "make_fn"]
