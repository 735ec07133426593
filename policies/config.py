"""AlgorithmConfigs for the FEN environments: PPO, DQN and A2C, independent or shared.

* :func:`build_config` - the whole config of one run of ``scripts/train.py``.
* :func:`apply_run_settings` - env runners, vectorisation, one torch thread per runner,
  env-runner fault tolerance, seeding, callbacks: reusable on any AlgorithmConfig
  (FEN calls it on its own PPOConfig).
* :func:`apply_overrides` - ``--set key=value`` settings; unknown keys are rejected.
* :func:`parse_overrides` - ``["lr=1e-3", ...]`` -> ``{"lr": 0.001, ...}``.

Policy modes: ``independent`` maps agent ``agent_i`` to its own module ``agent_i``;
``shared`` maps every agent to the module ``shared`` (parameter sharing).

Samplers: ``multi_agent`` (default) samples with RLlib's ``MultiAgentEnvRunner`` over
:class:`PettingZooMultiAgentEnv`. ``vector`` (shared mode, PPO/A2C) samples with
:class:`policies.vector_sampler.VectorAgentEnvRunner`: each runner steps
``envs_per_runner`` env copies whose agents form a single-agent vector, and RLlib's
single module ``default_policy`` acts for all of them (parameter sharing, several
times faster sampling; see :mod:`policies.vector_sampler`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from policies.a2c import A2CConfig
from policies.action_masking import masked_module_class
from policies.callbacks import FairnessCallbacks
from policies.cli import (  # noqa: F401  (re-exported: the names live in the light cli module)
    ALGOS,
    FEN_ENVS,
    MODELS,
    POLICY_MODES,
    check_choice,
    check_env,
    parse_overrides,
    parse_value,
)
from policies.rllib_env import PettingZooMultiAgentEnv, describe_env
from policies.vector_sampler import SAMPLERS, PettingZooAgentVectorEnv, VectorAgentEnvRunner

SHARED_MODULE_ID = "shared"
DEFAULT_HIDDENS: list[int] = [64, 64]


#: config fields set for one (env, algorithm) before ``--set`` overrides.
#: live_recommendation's agents are user sessions that come and go; RLlib's episode
#: replay buffer fails to concatenate cut chunks of such episodes (KeyError in
#: MultiAgentEpisode._copy_hanging), so DQN samples whole episodes (~70 env steps,
#: ~1000 agent steps each) and makes training_intensity / 64 = 32 updates per episode;
#: the step counters below are env steps.
ENV_ALGO_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("live_recommendation", "dqn"): {
        "batch_mode": "complete_episodes",
        "rollout_fragment_length": 1,
        "training_intensity": 2048,
        "num_steps_sampled_before_learning_starts": 200,
        "target_network_update_freq": 100,
        "epsilon": [(0, 1.0), (10_000, 0.05)],
    },
}


def map_agent_to_own_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """Independent learners: every agent id is its own module id."""
    return agent_id


def map_agent_to_shared_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """Parameter sharing: every agent uses the module ``shared``."""
    return SHARED_MODULE_ID


def _base_config(algo: str) -> AlgorithmConfig:
    """The algorithm's config with CPU-friendly defaults for these environments."""
    if algo == "ppo":
        return PPOConfig().training(
            lr=3e-4,
            gamma=0.99,
            lambda_=0.95,
            train_batch_size_per_learner=4000,
            minibatch_size=500,
            num_epochs=4,
            entropy_coeff=0.01,
            vf_loss_coeff=0.5,
            vf_clip_param=100.0,
            use_kl_loss=False,
            grad_clip=0.5,
        )
    if algo == "dqn":
        return DQNConfig().training(
            lr=5e-4,
            gamma=0.99,
            train_batch_size_per_learner=64,
            replay_buffer_config={"type": "MultiAgentEpisodeReplayBuffer", "capacity": 50_000},
            num_steps_sampled_before_learning_starts=1000,
            target_network_update_freq=500,
            epsilon=[(0, 1.0), (20_000, 0.05)],
            double_q=True,
            dueling=False,
        )
    if algo == "a2c":
        return A2CConfig().training(
            lr=7e-4,
            gamma=0.99,
            lambda_=1.0,
            train_batch_size_per_learner=1000,
            entropy_coeff=0.01,
            vf_loss_coeff=0.5,
            grad_clip=0.5,
        )
    raise ValueError(f"unknown algorithm {algo!r}; allowed: {list(ALGOS)}")


def make_env_config(
    env: str,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    factory: str = "plain",
    factory_module: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The env_config dict :class:`PettingZooMultiAgentEnv` builds its env from."""
    cfg: dict[str, Any] = {"env": env, "env_kwargs": dict(env_kwargs or {}), "factory": factory}
    if factory_module:
        cfg["factory_module"] = factory_module
    if seed is not None:
        cfg["seed"] = int(seed)
    return cfg


def build_config(
    env: str,
    algo: str,
    policy_mode: str,
    *,
    seed: int = 0,
    num_env_runners: int = 0,
    envs_per_runner: int = 1,
    overrides: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    sampler: str = "multi_agent",
    model: str = "mlp",
    baseline: str = "critic",
) -> AlgorithmConfig:
    """The AlgorithmConfig of one training run (validated names, overrides applied last).

    ``sampler="vector"`` (``policy_mode="shared"``, PPO or A2C): the fast sampler of
    :mod:`policies.vector_sampler`; ``envs_per_runner`` env copies per runner give
    ``envs_per_runner * n_agents`` single-agent slots, and ``train_batch_size_per_learner``
    (which then counts agent steps) is multiplied by ``n_agents`` so that an iteration
    holds as many agent steps as with the multi-agent sampler (``--set`` overrides it).

    ``baseline="same_seed_mean"`` (A2C or PPO with ``sampler="vector"``,
    ``envs_per_runner >= 2``, an env with a fixed episode length ``max_cycles``): DeepRM's
    time-dependent baseline (:mod:`policies.same_seed_baseline`) instead of GAE. The env
    copies of every runner replay the same seed (``env_config["shared_episode_seeds"]``),
    and an iteration samples whole episodes: the train batch becomes ``slots x
    max_cycles`` agent steps (slots = env copies x agents x runners), or must be a
    multiple of it when set by an override.
    ``gamma`` becomes 1 unless an override sets it: the undiscounted return of a whole
    episode is the objective itself (on resource_allocation, minus the episode's total
    job slowdown), and the shared seeds, not discounting, keep its variance down.
    ``vf_loss_coeff`` becomes 0 unless an override sets it: the advantages do not use the
    critic, and its squared error on undiscounted returns would dominate the global
    gradient-norm clip that the policy gradient shares.
    """
    check_env(env)
    check_choice("algorithm", algo, ALGOS)
    check_choice("policy mode", policy_mode, POLICY_MODES)
    check_choice("sampler", sampler, SAMPLERS)
    check_choice("model", model, MODELS)
    from policies.same_seed_baseline import BASELINES

    check_choice("baseline", baseline, BASELINES)
    if baseline == "same_seed_mean" and (algo not in ("a2c", "ppo") or sampler != "vector"):
        raise ValueError(f"baseline 'same_seed_mean' is for a2c or ppo with --sampler vector, "
                         f"not {algo!r} with sampler {sampler!r}")
    if sampler == "vector":
        if policy_mode != "shared":
            raise ValueError(
                "--sampler vector needs --policy-mode shared (one module acts for all agents)"
            )
        if algo not in ("ppo", "a2c"):
            raise ValueError(f"--sampler vector supports ppo and a2c, not {algo!r}")
    env_config = make_env_config(env, env_kwargs=env_kwargs, seed=seed)
    try:
        info = describe_env(env_config)
    except TypeError as e:  # unknown env kwarg
        raise ValueError(str(e)) from e
    agents: list[str] = info["possible_agents"]

    config = _base_config(algo)
    _discrete_actions_as_is(config, list(info["action_spaces"].values()))
    module_class = _module_class(algo, list(info["observation_spaces"].values()))
    model_config: dict[str, Any] = {"fcnet_hiddens": list(DEFAULT_HIDDENS)}
    if model == "slot_scoring":
        module_class = _slot_scoring(algo, env, info)
        model_config["slot_layout"] = dict(info["slot_layout"])
    if sampler == "vector":
        config = _vector_config(
            config, env_config, len(agents), module_class, model_config, seed=seed,
            num_env_runners=num_env_runners, envs_per_runner=envs_per_runner,
            overrides=overrides,
        )
        if baseline == "same_seed_mean":
            _use_same_seed_baseline(config, len(agents), info["max_cycles"], overrides)
        return config
    config.environment(env=PettingZooMultiAgentEnv, env_config=env_config)
    config.rl_module(model_config=model_config)
    if policy_mode == "independent":
        module_ids = list(agents)
        mapping = map_agent_to_own_module
    else:
        module_ids = [SHARED_MODULE_ID]
        mapping = map_agent_to_shared_module
    config.multi_agent(policies=list(module_ids), policy_mapping_fn=mapping)
    config.rl_module(
        rl_module_spec=MultiRLModuleSpec(rl_module_specs={
            m: RLModuleSpec(module_class=module_class) for m in module_ids
        })
    )
    apply_run_settings(
        config, seed=seed, num_env_runners=num_env_runners, envs_per_runner=envs_per_runner
    )
    config.update_from_dict(ENV_ALGO_DEFAULTS.get((env, algo), {}))
    if overrides:
        apply_overrides(config, overrides)
    return config


def _discrete_actions_as_is(config: AlgorithmConfig, action_spaces: list) -> None:
    """Discrete actions need no unsquashing/clipping: switching both off removes a
    module-to-env connector step that deep-copies every action batch (no other effect)."""
    if all(isinstance(s, gym.spaces.Discrete) for s in action_spaces):
        config.environment(normalize_actions=False, clip_actions=False)


def _slot_scoring(algo: str, env: str, info: Mapping[str, Any]) -> type:
    """:class:`policies.slot_scoring.SlotScoringTorchRLModule`, if ``algo`` and ``env`` allow."""
    if algo not in ("ppo", "a2c"):
        raise ValueError(f"model 'slot_scoring' is a policy for ppo and a2c, not {algo!r}")
    if info.get("slot_layout") is None:
        raise ValueError(f"model 'slot_scoring' needs an env with job slots (slot_layout()); "
                         f"{env!r} has none")
    from policies.slot_scoring import SlotScoringTorchRLModule

    return SlotScoringTorchRLModule


def _module_class(algo: str, observation_spaces: list) -> type | None:
    """None (RLlib's default module), or the masked module of
    :mod:`policies.action_masking` when the env observes an action mask."""
    classes = {masked_module_class(algo, space) for space in observation_spaces}
    if len(classes) > 1:
        raise ValueError("either every agent or none observes an action mask")
    return classes.pop()


def _vector_config(
    config: AlgorithmConfig,
    env_config: dict[str, Any],
    n_agents: int,
    module_class: type | None,
    model_config: dict[str, Any],
    *,
    seed: int,
    num_env_runners: int,
    envs_per_runner: int,
    overrides: Mapping[str, Any] | None,
) -> AlgorithmConfig:
    """Single-agent config over :class:`PettingZooAgentVectorEnv` (see build_config)."""
    if not isinstance(envs_per_runner, int) or envs_per_runner < 1:
        raise ValueError(f"envs_per_runner must be an integer >= 1, got {envs_per_runner!r}")
    config.environment(env=PettingZooAgentVectorEnv, env_config=env_config)
    config.rl_module(
        rl_module_spec=RLModuleSpec(module_class=module_class), model_config=model_config,
    )
    config.training(train_batch_size_per_learner=config.train_batch_size_per_learner * n_agents)
    apply_run_settings(
        config, seed=seed, num_env_runners=num_env_runners,
        envs_per_runner=envs_per_runner * n_agents,
    )
    config.env_runners(env_runner_cls=VectorAgentEnvRunner)
    if overrides:
        apply_overrides(config, overrides)
    return config


def _use_same_seed_baseline(config: AlgorithmConfig, n_agents: int, max_cycles: int | None,
                            overrides: Mapping[str, Any] | None) -> None:
    """Shared episode seeds and whole-episode batches for the same-seed baseline (A2C's
    ``baseline`` setting, PPO's learner class)."""
    from policies.same_seed_baseline import SameSeedPPOTorchLearner
    from policies.vector_sampler import SHARED_EPISODE_SEEDS

    copies = config.num_envs_per_env_runner // n_agents
    if copies < 2:
        raise ValueError(f"baseline 'same_seed_mean' compares episodes of >= 2 env copies per "
                         f"runner; envs_per_runner is {copies}")
    if not isinstance(max_cycles, int) or max_cycles < 1:
        raise ValueError("baseline 'same_seed_mean' needs an env with a fixed episode length "
                         f"(max_cycles), got {max_cycles!r}")
    slots = config.num_envs_per_env_runner * max(1, config.num_env_runners)
    episode_batch = slots * max_cycles
    batch = config.train_batch_size_per_learner
    if "train_batch_size_per_learner" not in (overrides or {}):
        batch = episode_batch
    elif batch % episode_batch:
        raise ValueError(
            f"train_batch_size_per_learner={batch} is not a multiple of {episode_batch} "
            f"({slots} slots x max_cycles {max_cycles}): baseline 'same_seed_mean' "
            "samples whole episodes")
    overrides = overrides or {}
    config.training(train_batch_size_per_learner=batch, gamma=overrides.get("gamma", 1.0),
                    vf_loss_coeff=overrides.get("vf_loss_coeff", 0.0))
    if isinstance(config, A2CConfig):
        config.training(baseline="same_seed_mean")
    else:
        config.learners(learner_class=SameSeedPPOTorchLearner)
    config.env_runners(rollout_fragment_length=batch // slots)
    config.environment(env_config={**config.env_config, SHARED_EPISODE_SEEDS: True})


def apply_run_settings(
    config: AlgorithmConfig,
    *,
    seed: int,
    num_env_runners: int,
    envs_per_runner: int,
    callbacks: type | Sequence[type] | None = FairnessCallbacks,
    torch_threads_per_runner: int = 1,
) -> AlgorithmConfig:
    """Runner count, vectorisation, threads, fault tolerance, seeding and callbacks.

    * ``num_env_runners`` remote EnvRunners (0: sample in the driver), each stepping
      ``envs_per_runner`` envs as one vector (batched module forward passes);
    * one torch thread per runner process (``env_config["torch_threads"]``);
    * failed env runners are restarted (``restart_failed_env_runners``) up to 1000
      times, 1 s apart; env checking off (the adapter guarantees RLlib's protocol);
    * ``config.seed = seed`` and ``env_config["seed"] = seed``: every runner and sub-env
      derives its own env seed (:func:`policies.rllib_env.derive_seed`);
    * ``callbacks`` (default :class:`FairnessCallbacks`; pass a list to add your own).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(num_env_runners, int) or num_env_runners < 0:
        raise ValueError(f"num_env_runners must be an integer >= 0, got {num_env_runners!r}")
    if not isinstance(envs_per_runner, int) or envs_per_runner < 1:
        raise ValueError(f"envs_per_runner must be an integer >= 1, got {envs_per_runner!r}")
    config.framework("torch")
    config.api_stack(
        enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True
    )
    config.env_runners(
        num_env_runners=num_env_runners,
        num_envs_per_env_runner=envs_per_runner,
        num_cpus_per_env_runner=1,
        rollout_fragment_length="auto",
    )
    env_config = dict(config.env_config or {})
    env_config["seed"] = seed
    env_config["torch_threads"] = torch_threads_per_runner
    config.environment(env_config=env_config, disable_env_checking=True)
    config.fault_tolerance(
        restart_failed_env_runners=True,
        max_num_env_runner_restarts=1000,
        delay_between_env_runner_restarts_s=1.0,
        num_consecutive_env_runner_failures_tolerance=100,
    )
    config.debugging(seed=seed, log_level="WARN")
    config.reporting(metrics_num_episodes_for_smoothing=20)
    if callbacks is not None:
        config.callbacks(callbacks_class=callbacks)
    return config


def _known_fields(config: AlgorithmConfig) -> set[str]:
    fields = {k.lstrip("_") for k in vars(config)}
    fields |= {
        name
        for name in dir(type(config))
        if isinstance(getattr(type(config), name, None), property) and not name.startswith("_")
    }
    return fields


#: AlgorithmConfig fields whose ``--set`` values are checked: field -> (kind, low, high,
#: low inclusive, high inclusive); kind "int" or "real", None: no bound
OVERRIDE_RANGES: dict[str, tuple[str, float | None, float | None, bool, bool]] = {
    "gamma": ("real", 0.0, 1.0, True, True),
    "lambda_": ("real", 0.0, 1.0, True, True),
    "lr": ("real", 0.0, None, False, True),
    "train_batch_size_per_learner": ("int", 1, None, True, True),
    "train_batch_size": ("int", 1, None, True, True),
    "minibatch_size": ("int", 1, None, True, True),
    "num_epochs": ("int", 1, None, True, True),
    "rollout_fragment_length": ("int", 1, None, True, True),
    "entropy_coeff": ("real", 0.0, None, True, True),
    "vf_loss_coeff": ("real", 0.0, None, True, True),
    "kl_coeff": ("real", 0.0, None, True, True),
    "kl_target": ("real", 0.0, None, False, True),
    "clip_param": ("real", 0.0, None, False, True),
    "vf_clip_param": ("real", 0.0, None, False, True),
    "grad_clip": ("real", 0.0, None, False, True),
    "tau": ("real", 0.0, 1.0, True, True),
    "n_step": ("int", 1, None, True, True),
    "target_network_update_freq": ("int", 0, None, True, True),
    "num_steps_sampled_before_learning_starts": ("int", 0, None, True, True),
    "min_sample_timesteps_per_iteration": ("int", 0, None, True, True),
    "num_cpus_for_main_process": ("int", 1, None, True, True),
}


def check_override(field: str, value: Any) -> None:
    """A ``--set`` value of a field of :data:`OVERRIDE_RANGES`: the right type and range
    (``grad_clip`` may also be None, ``lr`` and ``entropy_coeff`` a schedule, ``n_step`` a
    range of two); ValueError naming the field, the value and what is allowed."""
    if field not in OVERRIDE_RANGES or (field == "grad_clip" and value is None):
        return
    if field in ("lr", "entropy_coeff") and isinstance(value, list):
        return  # a schedule [[timestep, value], ...]: RLlib checks it
    if field == "n_step" and isinstance(value, list | tuple) and len(value) == 2:
        for each in value:  # DQN's range [low, high] of n-steps drawn per batch
            check_override(field, each)
        return
    check_in_range(f"--set {field}:", value, OVERRIDE_RANGES[field])


def check_in_range(label: str, value: Any, spec: tuple) -> None:
    """ValueError ``<label> must be <what spec allows>, got <value>`` unless ``value`` has
    the type and range of ``spec`` (an :data:`OVERRIDE_RANGES` entry)."""
    kind, low, high, low_in, high_in = spec
    bounds = []
    if low is not None:
        bounds.append(f"{'>=' if low_in else '>'} {low:g}")
    if high is not None:
        bounds.append(f"{'<=' if high_in else '<'} {high:g}")
    allowed = f"{'an integer' if kind == 'int' else 'a finite number'} {' and '.join(bounds)}"
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok_type = is_int if kind == "int" else (is_int or isinstance(value, float))
    ok = ok_type and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_in else value > low
    if ok and high is not None:
        ok = value <= high if high_in else value < high
    if not ok:
        raise ValueError(f"{label} must be {allowed}, got {value!r}")


#: model_config keys that list layer sizes: (key, may the list be empty)
LAYER_SIZE_KEYS = (("fcnet_hiddens", False), ("head_fcnet_hiddens", True))


def check_layer_sizes(model_config: Mapping[str, Any]) -> None:
    """ValueError unless the layer-size lists of ``model_config`` (:data:`LAYER_SIZE_KEYS`)
    are lists of integers >= 1 (RLlib fails deep inside on a size 0)."""
    for key, may_be_empty in LAYER_SIZE_KEYS:
        if key not in model_config:
            continue
        sizes = model_config[key]
        ok = isinstance(sizes, list | tuple) and (may_be_empty or len(sizes) > 0) and all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)
        if not ok:
            what = "list" if may_be_empty else "non-empty list"
            raise ValueError(f"--set model_config.{key}: must be a {what} of integers >= 1 "
                             f"(layer sizes), got {sizes!r}")


def apply_overrides(config: AlgorithmConfig, overrides: Mapping[str, Any]) -> AlgorithmConfig:
    """Set config fields by name; ``a.b`` updates key ``b`` of dict field ``a``.

    Unknown fields raise ``ValueError`` naming the key (typos never pass silently).
    ``model_config`` (and ``model_config.<key>``) goes through ``config.rl_module``.
    """
    known = _known_fields(config)
    for key, value in overrides.items():
        field, _, sub = key.partition(".")
        if field not in known or field.startswith("_"):
            close = sorted(k for k in known if field and (field in k or k in field))[:5]
            hint = f"; similar fields: {close}" if close else ""
            raise ValueError(
                f"unknown config field {field!r} in --set {key}=...; it is not a field of "
                f"{type(config).__name__}{hint}"
            )
        if not sub:
            check_override(field, value)
        if field == "model_config":
            current = dict(config.model_config) if sub else {}
            if sub:
                current[sub] = value
            elif isinstance(value, Mapping):
                current = dict(value)
            else:
                raise ValueError(f"model_config must be a dict, got {value!r}")
            check_layer_sizes(current)
            config.rl_module(model_config=current)
            continue
        if sub:
            current = getattr(config, field)
            if not isinstance(current, Mapping):
                raise ValueError(
                    f"--set {key}: field {field!r} is not a dict ({current!r}); "
                    f"use --set {field}=..."
                )
            new = dict(current)
            new[sub] = value
            config.update_from_dict({field: new})
        else:
            config.update_from_dict({field: value})
    return config
