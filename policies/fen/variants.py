"""FEN's variants and baselines: which env wrapper and which modules each one uses.

Importing this module registers the env factory ``"fen"`` with
:mod:`policies.rllib_env`, so any process (remote env runners, ``scripts/evaluate.py``)
can rebuild a variant's environment from its ``env_config`` alone.

=====================  ==================================================
variant                what is trained
=====================  ==================================================
``fen``                controller + M sub-policies (:class:`FENHierarchyEnv`), central ubar
``fen_gossip``         the same, ubar estimated by gossip among agents
``fen_no_hierarchy``   one policy per agent trained directly on rhat
``independent``        PPO on the environment reward
``min``                PPO on min_j u_j
``avg``                PPO on mean_j r_j
``min_avg``            PPO on min_j u_j + alpha mean_j r_j
``inequity_aversion``  PPO on Hughes et al.'s inequity-averse reward
=====================  ==================================================

Module ids. Hierarchical variants: ``ctrl`` and ``sub0`` .. ``sub{M-1}`` when weights
are shared across agents, ``<agent>-ctrl`` and ``<agent>-sub<z>`` per agent. Flat
variants: ``shared`` or ``<agent>``.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from pettingzoo import ParallelEnv

import marl_envs
from policies.fen.envs import (
    DEFAULT_EFFICIENCY,
    DEFAULT_SEGMENT_END,
    SHAPINGS,
    FairEfficientRewardEnv,
    FENHierarchyEnv,
    ShapedRewardEnv,
)
from policies.fen.gossip import DEFAULT_GRAPH
from policies.fen.reward import CONTROLLER_PERIOD
from policies.rllib_env import register_env_factory

HIERARCHICAL_VARIANTS = ("fen", "fen_gossip")
VARIANTS = (*HIERARCHICAL_VARIANTS, "fen_no_hierarchy", *SHAPINGS)
POLICY_MODES = ("shared", "independent")
#: weight sharing of the authors' code: one set of networks for job and matthew
DEFAULT_POLICY_MODE = {
    "job_scheduling": "shared",
    "matthew_effect": "shared",
    "manufacturing_plant": "independent",
    "resource_allocation": "shared",
}
FACTORY = "fen"
FACTORY_MODULE = __name__
_HIERARCHY_OPTIONS = frozenset({"period", "n_subpolicies", "intrinsic_reward",
                                "controller_entropy", "subpolicy0_entropy", "efficiency",
                                "controller_horizon", "segment_end", "feature_scale",
                                "model", "controller_sub0_prob"})
#: the FEN options (``fen_options`` keys) each variant uses; the others do not change it
VARIANT_OPTIONS: dict[str, frozenset[str]] = {
    "fen": _HIERARCHY_OPTIONS,
    "fen_gossip": _HIERARCHY_OPTIONS | {"gossip_graph", "gossip_rounds"},
    "fen_no_hierarchy": frozenset({"feature_scale", "model"}),
    **{shaping: frozenset({"model"}) for shaping in SHAPINGS},
}


#: named presets of FEN options: ``authors`` is the behaviour of the authors' code (the
#: paper's rhat over the whole episode, each sub-policy segment an episode of its own,
#: fen_gossip's random-3-peers gossip, which agrees on a value off the mean), which idles
#: on Job Scheduling (``results/fen_job_scheduling/report.md``); explicit options win
PRESETS: dict[str, dict[str, Any]] = {
    "authors": {"efficiency": "episode", "segment_end": "terminate", "gossip_graph": "random3"},
}
#: the defaults of the options that :data:`PRESETS` change
PRESET_DEFAULTS: dict[str, Any] = {"efficiency": DEFAULT_EFFICIENCY,
                                   "segment_end": DEFAULT_SEGMENT_END,
                                   "gossip_graph": DEFAULT_GRAPH}
#: run_info key: the FEN options of a run with every preset option resolved (runs made
#: before the presets existed stored only the options they set, on top of the authors'
#: behaviour: so the trials imported into ``results/fen_<env>/`` are labelled)
RESOLVED_KEY = "fen_options_resolved"


def preset_options(preset: str | None, fen_options: dict[str, Any],
                   variant: str | None = None) -> dict[str, Any]:
    """``fen_options`` on top of ``preset`` (None: the defaults), without the entries that
    equal the defaults. ``variant``: only the preset's options that it uses."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown FEN preset {preset!r}; allowed: {list(PRESETS)}")
    chosen = PRESETS.get(preset, {})
    merged = {**(chosen if variant is None else options_for(variant, chosen)), **fen_options}
    return {k: v for k, v in merged.items()
            if not (k in PRESET_DEFAULTS and v == PRESET_DEFAULTS[k])}


def check_options(variant: str, fen_options: dict[str, Any]) -> None:
    """Reject an unknown variant and any FEN option ``variant`` does not use (given, not
    None): an option that would be silently ignored is a mistake in the command."""
    check_variant(variant)
    known = frozenset().union(*VARIANT_OPTIONS.values())
    unknown = sorted(k for k in fen_options if k not in known)
    if unknown:
        raise ValueError(f"unknown FEN options {unknown}; allowed: {sorted(known)}")
    unused = sorted(k for k, v in fen_options.items()
                    if v is not None and k not in VARIANT_OPTIONS[variant])
    if unused:
        raise ValueError(f"FEN options {unused} apply to other variants, not to variant "
                         f"{variant!r} (it uses {sorted(VARIANT_OPTIONS[variant]) or 'none'})")


def options_for(variant: str, fen_options: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``fen_options`` that ``variant`` uses (:data:`VARIANT_OPTIONS`)."""
    check_variant(variant)
    return {k: v for k, v in fen_options.items() if k in VARIANT_OPTIONS[variant]}

_SUB_MODULE = re.compile(r"^(?:(?P<agent>.+)-)?sub(?P<z>\d+)$")


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown FEN variant {variant!r}; allowed: {list(VARIANTS)}")


def resolved_defaults(env: str) -> dict[str, Any]:
    """The FEN options whose default depends on the env, as an unset option resolves on
    ``env``: the controller period T and the number of sub-policies M."""
    return {"period": CONTROLLER_PERIOD.get(env, 25), "n_subpolicies": 4}


def make_variant_env(env_config: dict[str, Any]) -> ParallelEnv:
    """The wrapped env of ``env_config["variant"]`` around ``marl_envs.make(env, ...)``."""
    variant = env_config.get("variant", "fen")
    check_variant(variant)
    base = marl_envs.make(env_config["env"], **dict(env_config.get("env_kwargs") or {}))
    options = dict(env_config.get("fen") or {})
    if variant in HIERARCHICAL_VARIANTS:
        resolved = {**resolved_defaults(env_config["env"]), **options}
        return FENHierarchyEnv(
            base,
            period=resolved["period"],
            n_subpolicies=resolved["n_subpolicies"],
            average="gossip" if variant == "fen_gossip" else "central",
            gossip_graph=options.get("gossip_graph", DEFAULT_GRAPH),
            gossip_rounds=options.get("gossip_rounds"),
            feature_scale=options.get("feature_scale", 1.0),
            efficiency=options.get("efficiency", DEFAULT_EFFICIENCY),
            controller_horizon=options.get("controller_horizon", "period"),
            controller_reward_scale=options.get("controller_reward_scale", 1.0),
            segment_end=options.get("segment_end", DEFAULT_SEGMENT_END),
        )
    if variant == "fen_no_hierarchy":
        return FairEfficientRewardEnv(base, feature_scale=options.get("feature_scale", 1.0))
    return ShapedRewardEnv(base, variant)


register_env_factory(FACTORY, make_variant_env)


def ctrl_module_id(agent: str | None) -> str:
    return "ctrl" if agent is None else f"{agent}-ctrl"


def sub_module_id(agent: str | None, z: int) -> str:
    return f"sub{z}" if agent is None else f"{agent}-sub{z}"


def parse_sub_module_id(module_id: str) -> tuple[str, int] | None:
    """``(controller module id, z)`` of a sub-policy module id, None for other modules."""
    m = _SUB_MODULE.match(module_id)
    if m is None:
        return None
    return ctrl_module_id(m.group("agent")), int(m.group("z"))


def hierarchical_mapping(agent_id: str, episode: Any = None, *, shared: bool, **kwargs: Any) -> str:
    """Policy mapping of :class:`FENHierarchyEnv` agent ids to module ids."""
    parts = agent_id.split("/")
    owner = None if shared else parts[0]
    if parts[1] == "ctrl":
        return ctrl_module_id(owner)
    return sub_module_id(owner, int(parts[3]))


def flat_mapping(agent_id: str, episode: Any = None, *, shared: bool, **kwargs: Any) -> str:
    """Policy mapping of flat variants: one shared module or one module per agent."""
    return "shared" if shared else agent_id


def policy_mapping(variant: str, policy_mode: str) -> partial:
    if policy_mode not in POLICY_MODES:
        raise ValueError(f"unknown policy mode {policy_mode!r}; allowed: {list(POLICY_MODES)}")
    fn = hierarchical_mapping if variant in HIERARCHICAL_VARIANTS else flat_mapping
    return partial(fn, shared=policy_mode == "shared")


def module_ids(variant: str, policy_mode: str, agents: list[str], n_subpolicies: int) -> list[str]:
    """Every module id a variant trains."""
    shared = policy_mode == "shared"
    owners: list[str | None] = [None] if shared else list(agents)
    if variant in HIERARCHICAL_VARIANTS:
        return [
            mid
            for owner in owners
            for mid in [ctrl_module_id(owner)]
            + [sub_module_id(owner, z) for z in range(n_subpolicies)]
        ]
    return ["shared"] if shared else list(agents)
