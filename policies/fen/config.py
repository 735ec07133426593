"""RLlib configuration of FEN, its variants and baselines (PPO on the new API stack).

Hyper-parameters follow the authors' code (``../shared/specs/fen.md``): PPO with
clip 0.2, Adam lr 3e-4, entropy coefficient 0.03, gamma 0.98; two hidden ReLU
layers of 256 units for sub-policies (and flat policies), 128 for the controller
(256 on the plant); M = 4 sub-policies; T = 25 / 50 / 500. The controller's
decisions are one-step episodes rewarded with rhat, so its value is regressed on
the immediate rhat (gamma 0 for the controller, as in that code). Unlike that code,
PPO's ratio is computed against the sampling policy (its defect of applying the
previous batch's gradients is not copied), sub-policy 0 is trained on the plant, and
by default rhat's efficiency term averages over the controller period just ended and a
period's sub-policy segment is truncated, not terminated (``--preset authors`` restores
the authors' code: ``results/fen_job_scheduling/report.md`` shows it idling on Job Scheduling).
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

import marl_envs
from policies.action_masking import masked_module_class
from policies.cli import MODELS, check_choice
from policies.config import (
    OVERRIDE_RANGES,
    apply_overrides,
    apply_run_settings,
    check_in_range,
)
from policies.fen.controller_prior import (
    SUB0_PROB_KEY,
    PriorControllerTorchRLModule,
    check_sub0_prob,
)
from policies.fen.discriminator import DiscriminatorReward
from policies.fen.learner import FENPPOTorchLearner
from policies.fen.variants import (
    DEFAULT_POLICY_MODE,
    FACTORY,
    FACTORY_MODULE,
    HIERARCHICAL_VARIANTS,
    PRESET_DEFAULTS,
    check_options,
    make_variant_env,
    module_ids,
    options_for,
    parse_sub_module_id,
    policy_mapping,
)
from policies.fen.vector_runner import FEN_SAMPLERS, FENVectorEnvRunner, choose_sampler
from policies.rllib_env import PettingZooMultiAgentEnv

#: PPO settings shared by every variant (the authors' values where they exist)
PPO_DEFAULTS: dict[str, Any] = {
    "lr": 3e-4,
    "gamma": 0.98,
    "lambda_": 0.95,
    "clip_param": 0.2,
    "entropy_coeff": 0.03,
    "vf_loss_coeff": 0.5,
    "vf_clip_param": 100.0,  # returns reach ~50 (gamma 0.98, reward 1 per step)
    "num_epochs": 4,
    "minibatch_size": 512,
    "train_batch_size_per_learner": 4000,
    "grad_clip": 10.0,
}


def build_fen_config(
    env: str,
    variant: str,
    *,
    policy_mode: str | None = None,
    seed: int = 0,
    num_env_runners: int = 1,
    envs_per_runner: int = 1,
    env_kwargs: dict[str, Any] | None = None,
    fen_options: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    sampler: str = "auto",
    main_cpus: int = 1,
) -> PPOConfig:
    """The PPOConfig that trains ``variant`` on the FEN environment ``env``.

    Args:
        env: a FEN environment name (job_scheduling, matthew_effect, manufacturing_plant).
        variant: see :data:`policies.fen.variants.VARIANTS`.
        policy_mode: ``shared`` (one set of networks for all agents) or ``independent``
            (per agent); default: as in the authors' code (shared for job and matthew).
        fen_options: ``period`` (T), ``n_subpolicies`` (M), ``gossip_graph`` (default
            ``ring``, Metropolis weights; ``random3``: the authors' variant, whose agents
            agree on a value off the mean, :mod:`policies.fen.gossip`), ``gossip_rounds``
            (default: enough for the mean within 1e-3 of the values' spread; 10 for
            ``random3``), ``intrinsic_reward`` (``log_p`` or ``p``), ``feature_scale``
            (multiplies ``(u_i - ubar)/ubar`` in observations; default 1) and
            ``controller_entropy`` (the controllers' entropy coefficient; default: the
            common 0.03), ``subpolicy0_entropy`` (the entropy coefficient of sub-policy 0,
            the one trained on the environment reward; default: the common 0.03),
            ``efficiency`` (``period``, the default, or ``episode``, the paper's and the
            authors' code's: what rhat's efficiency term averages over),
            ``controller_horizon`` (``period``: one-step decisions, gamma 0; ``episode``:
            one controller per agent and episode, rewarded with rhat x (1 - gamma)),
            ``segment_end`` (``truncate``, the default: cut by the
            period, bootstrapped from the sub-policy's value; ``terminate``: each period's
            sub-policy segment is an episode of its own, as in the authors' code; the
            authors' pair is :data:`policies.fen.variants.PRESETS` ``["authors"]``),
            ``model`` (the acting modules' network: ``mlp`` or ``slot_scoring``, see
            :mod:`policies.slot_scoring`) and ``controller_sub0_prob`` (the controllers
            start choosing sub-policy 0 with this probability, the others evenly; default:
            RLlib's initialisation, about uniform; :mod:`policies.fen.controller_prior`).
            An option the variant does not use is an error
            (:func:`policies.fen.variants.check_options`).
        overrides: AlgorithmConfig fields to set last (``--set key=value``).
        sampler: ``auto`` (the default: ``vector`` wherever it applies, else
            ``multi_agent``; :func:`policies.fen.vector_runner.choose_sampler`),
            ``multi_agent`` (RLlib's ``MultiAgentEnvRunner``) or ``vector``
            (:class:`policies.fen.vector_runner.FENVectorEnvRunner`: the hierarchical
            variants sampled in batches, the same episodes reach the learner; other
            combinations are rejected, :func:`policies.fen.vector_runner.check_vector_sampler`).
            :func:`sampler_of` tells which one a config uses.
        main_cpus: CPUs of the main process (RLlib's ``num_cpus_for_main_process``): it
            samples when ``num_env_runners`` is 0, and the learner's update runs with these
            (plus the env runners' CPUs on a one-node Ray, where the runners wait for it)
            as torch threads (:class:`policies.fen.learner.FENPPOTorchLearner`). A Tune
            trial reserves them (an experiment file sets them as
            ``overrides.num_cpus_for_main_process``).
    """
    check_options(variant, fen_options or {})
    check_choice("sampler", sampler, FEN_SAMPLERS)
    if isinstance(main_cpus, bool) or not isinstance(main_cpus, int) or main_cpus < 1:
        raise ValueError(f"main_cpus must be an integer >= 1, got {main_cpus!r}")
    # (``overrides["num_cpus_for_main_process"]``, applied last, sets the same field)
    if env not in DEFAULT_POLICY_MODE:
        raise ValueError(f"FEN runs on {list(DEFAULT_POLICY_MODE)}, got env {env!r}")
    policy_mode = policy_mode or DEFAULT_POLICY_MODE[env]
    fen_options = dict(fen_options or {})
    intrinsic = fen_options.pop("intrinsic_reward", "log_p")
    controller_entropy = fen_options.pop("controller_entropy", None)
    subpolicy0_entropy = fen_options.pop("subpolicy0_entropy", None)
    for name, value in (("controller_entropy", controller_entropy),
                        ("subpolicy0_entropy", subpolicy0_entropy)):
        if value is not None:  # entropy coefficients: the range of PPO's entropy_coeff
            check_in_range(f"fen option {name}", value, OVERRIDE_RANGES["entropy_coeff"])
    sub0_prob = fen_options.pop("controller_sub0_prob", None)
    model = check_choice("model", fen_options.pop("model", "mlp"), MODELS)
    if fen_options.get("controller_horizon") == "episode":
        # the controller's return is then a discounted sum of rhat over up to n_periods
        # decisions: scaled by (1 - gamma) it stays a weighted average of rhat, in the
        # range the value head's clipped loss (vf_clip_param) can fit
        gamma = dict(overrides or {}).get("gamma", PPO_DEFAULTS["gamma"])
        if not 0 <= gamma < 1:
            raise ValueError(f"controller_horizon 'episode' needs a gamma in [0, 1), got {gamma}")
        fen_options["controller_reward_scale"] = 1.0 - gamma
    env_config = {
        "factory": FACTORY,
        "factory_module": FACTORY_MODULE,
        "env": env,
        "env_kwargs": dict(env_kwargs or {}),
        "variant": variant,
        # the defaults named too: the run's record stays right if a default changes
        "fen": {**options_for(variant, PRESET_DEFAULTS), **fen_options},
    }
    try:
        probe = make_variant_env(env_config)
    except TypeError as e:  # an unknown env kwarg: a ValueError for the CLI's one-line error
        raise ValueError(str(e)) from e
    base_agents = list(marl_envs.make(env, **env_config["env_kwargs"]).possible_agents)
    n_sub = getattr(probe, "n_subpolicies", 0)
    sampler = choose_sampler(sampler, variant, probe, {"model": model})
    mids = module_ids(variant, policy_mode, base_agents, n_sub)
    slot_layout = None
    if model == "slot_scoring":
        base = marl_envs.make(env, **env_config["env_kwargs"])
        if not callable(getattr(base, "slot_layout", None)):
            raise ValueError(f"model 'slot_scoring' needs an env with job slots "
                             f"(slot_layout()); {env!r} has none")
        slot_layout = base.slot_layout()

    config = (
        PPOConfig()
        .environment(env=PettingZooMultiAgentEnv, env_config=env_config)
        .training(**PPO_DEFAULTS)
        .learners(learner_class=FENPPOTorchLearner)
        .resources(num_cpus_for_main_process=main_cpus)
        .multi_agent(
            policies=list(mids),
            policy_mapping_fn=policy_mapping(variant, policy_mode),
            policies_to_train=list(mids),
        )
        .rl_module(rl_module_spec=MultiRLModuleSpec(
            rl_module_specs={mid: _module_spec(probe, mid, base_agents, env, slot_layout,
                                               sub0_prob) for mid in mids}
        ))
    )
    if variant in HIERARCHICAL_VARIANTS:
        config.learners(learner_connector=lambda *spaces: DiscriminatorReward(reward=intrinsic))
        entropy = {}  # module id -> its own entropy coefficient
        for m in mids:
            sub = parse_sub_module_id(m)  # None for a controller, else (controller, z)
            if sub is None and controller_entropy is not None:
                entropy[m] = controller_entropy
            elif sub is not None and sub[1] == 0 and subpolicy0_entropy is not None:
                entropy[m] = subpolicy0_entropy
        if entropy:
            config.multi_agent(algorithm_config_overrides_per_module={
                m: PPOConfig.overrides(entropy_coeff=c) for m, c in entropy.items()
            })
    config = apply_run_settings(
        config, seed=seed, num_env_runners=num_env_runners, envs_per_runner=envs_per_runner
    )
    if sampler == "vector":
        # one sample() call per runner and iteration ("auto"): segments are cut only where
        # the iteration's batch ends
        config.env_runners(env_runner_cls=FENVectorEnvRunner)
    elif variant in HIERARCHICAL_VARIANTS:
        # RLlib's episode bookkeeping costs O(agent ids seen in the episode chunk) per
        # step, and the hierarchy adds fresh ids every period: short chunks (two periods,
        # at most 100 steps) sample ~2.4x faster on Job Scheduling than "auto" (500)
        config.env_runners(rollout_fragment_length=min(2 * probe.period, 100))
    return apply_overrides(config, overrides or {})


def sampler_of(config: Any) -> str:
    """``vector`` or ``multi_agent``: the sampler a config of :func:`build_fen_config` uses."""
    return "vector" if config.env_runner_cls is FENVectorEnvRunner else "multi_agent"


def _module_spec(probe: Any, module_id: str, base_agents: list[str], env: str,
                 slot_layout: dict[str, int] | None = None,
                 sub0_prob: float | None = None) -> RLModuleSpec:
    """Spaces and network of one module (``slot_layout``: the acting modules score job
    slots with :class:`policies.slot_scoring.SlotScoringTorchRLModule`; ``sub0_prob``:
    the controllers start choosing sub-policy 0 with this probability,
    :mod:`policies.fen.controller_prior`)."""
    acting = True
    if module_id == "shared" or module_id in base_agents:
        agent = base_agents[0] if module_id == "shared" else module_id
        obs_space, act_space = probe.observation_space(agent), probe.action_space(agent)
        hidden = 256
    else:
        agent = base_agents[0]
        if parse_sub_module_id(module_id) is None:  # a controller
            acting = False
            probe_id = probe.possible_agents[0]  # agent_0's first controller decision
            hidden = 256 if env == "manufacturing_plant" else 128
        else:
            probe_id = f"{agent}/sub/0/0"
            hidden = 256
        obs_space, act_space = probe.observation_space(probe_id), probe.action_space(probe_id)
    model_config: dict[str, Any] = {"fcnet_hiddens": [hidden, hidden],
                                    "fcnet_activation": "relu", "vf_share_layers": False}
    # sub-policies (and flat policies) of an env with action_mask=True obey the mask
    module_class = masked_module_class("ppo", obs_space)
    if not acting and sub0_prob is not None:
        module_class = PriorControllerTorchRLModule
        model_config[SUB0_PROB_KEY] = check_sub0_prob(sub0_prob, int(act_space.n))
    if acting and slot_layout is not None:
        from policies.slot_scoring import SlotScoringTorchRLModule

        module_class = SlotScoringTorchRLModule  # masks too
        model_config["slot_layout"] = dict(slot_layout)
    return RLModuleSpec(
        module_class=module_class,
        observation_space=obs_space,
        action_space=act_space,
        model_config=model_config,
    )
