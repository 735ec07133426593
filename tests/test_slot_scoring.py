"""The slot-scoring scheduler policy (policies/slot_scoring.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from marl_envs.resource_allocation_v0 import ResourceAllocationEnv
from policies.slot_scoring import SlotScoringTorchRLModule, check_layout


def _module(env: ResourceAllocationEnv) -> SlotScoringTorchRLModule:
    return SlotScoringTorchRLModule(
        observation_space=env.observation_space("agent_0"),
        action_space=env.action_space("agent_0"),
        model_config={"slot_layout": env.slot_layout(), "fcnet_hiddens": [16]},
        inference_only=False)


def _batch(obs: dict[str, Any]) -> dict[str, Any]:
    rows = list(obs.values())
    if isinstance(rows[0], dict):
        return {Columns.OBS: {k: torch.as_tensor(np.stack([r[k] for r in rows]))
                              for k in rows[0]}}
    return {Columns.OBS: torch.as_tensor(np.stack(rows))}


def test_layout_matches_the_flat_observation() -> None:
    env = ResourceAllocationEnv()
    obs, _ = env.reset(seed=0)
    layout = env.slot_layout()
    assert layout == {"start": 2 * 20 + 2, "n_slots": 10, "slot_dim": 5}
    end = layout["start"] + layout["n_slots"] * layout["slot_dim"]
    assert end == env.flat_dim - 1  # the backlog feature follows the slots
    slots = obs["agent_0"][layout["start"]:end].reshape(10, 5)
    np.testing.assert_array_equal(slots[:, 4], env._slot_filled[0])
    with pytest.raises(ValueError, match="needs obs_layout='flat'"):
        ResourceAllocationEnv(obs_layout="image").slot_layout()


def test_scores_are_permutation_equivariant_in_the_slots() -> None:
    torch.manual_seed(0)
    env = ResourceAllocationEnv(load=1.1)
    obs, _ = env.reset(seed=1)
    for _ in range(5):
        obs, *_ = env.step({a: 0 for a in env.agents})
    module = _module(env)
    batch = _batch(obs)
    logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    start, n, k = 42, 10, 5
    perm = torch.randperm(n)
    swapped = batch[Columns.OBS].clone()
    swapped[:, start:start + n * k] = swapped[:, start:start + n * k].reshape(
        -1, n, k)[:, perm].reshape(-1, n * k)
    permuted = module.forward_inference({Columns.OBS: swapped})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(permuted[:, 1:], logits[:, 1:][:, perm])
    torch.testing.assert_close(permuted[:, 0], logits[:, 0])  # wait: the context only
    assert module.compute_values(batch).shape == (4,)


def test_masked_observations_are_masked() -> None:
    env = ResourceAllocationEnv(load=1.1, action_mask=True)
    obs, _ = env.reset(seed=2)
    module = _module(env)
    assert module.observation_space == env.observation_space("agent_0")
    batch = _batch(obs)
    probs = torch.softmax(module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS], -1)
    mask = batch[Columns.OBS]["action_mask"].bool()
    assert (probs[~mask] == 0).all() and (probs[mask] > 0).all()
    assert module.compute_values(batch).shape == (4,)


def test_bad_layouts_are_rejected() -> None:
    with pytest.raises(ValueError, match="must be a dict with keys"):
        check_layout(None, 93, 11)
    with pytest.raises(ValueError, match="does not fit an observation of 50"):
        check_layout({"start": 42, "n_slots": 10, "slot_dim": 5}, 50, 11)
    with pytest.raises(ValueError, match="needs n_slots \\+ 1 = 11 actions"):
        check_layout({"start": 42, "n_slots": 10, "slot_dim": 5}, 93, 5)


def test_build_config_rejects_slot_scoring_where_it_does_not_apply() -> None:
    from policies.config import build_config

    with pytest.raises(ValueError, match="has none"):
        build_config("job_scheduling", "ppo", "shared", model="slot_scoring")
    with pytest.raises(ValueError, match="for ppo and a2c, not 'dqn'"):
        build_config("resource_allocation", "dqn", "shared", model="slot_scoring")
    with pytest.raises(ValueError, match="unknown model 'cnn'"):
        build_config("resource_allocation", "ppo", "shared", model="cnn")


def test_a2c_trains_a_slot_scoring_policy_and_reloads_it(tmp_path: Any) -> None:
    import ray

    from policies.config import build_config
    from policies.training import evaluate_checkpoint, init_ray, run_training

    init_ray(None, num_cpus=2)
    try:
        config = build_config(
            "resource_allocation", "a2c", "shared", seed=1, num_env_runners=0,
            envs_per_runner=2, sampler="vector", model="slot_scoring",
            env_kwargs={"max_cycles": 25, "action_mask": True},
            overrides={"train_batch_size_per_learner": 200})
        assert config.get_rl_module_spec().module_class is SlotScoringTorchRLModule
        summary = run_training(config, iterations=1, logdir=tmp_path,
                               run_info={"env": "resource_allocation", "algo": "a2c",
                                         "policy_mode": "shared"}, verbose=False)
        report = evaluate_checkpoint(summary["checkpoint"], episodes=1, sample=True)
    finally:
        ray.shutdown()
    assert report["per_episode"][0]["empty_slot_choices"] == 0
    assert np.isfinite(summary["metrics"]["fairness/avg_slowdown"])

