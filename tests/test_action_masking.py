"""Action masks: the env side (``action_mask=True``) and the masked RLlib modules."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.core.columns import Columns

from marl_envs.resource_allocation_v0 import ResourceAllocationEnv
from marl_envs.resource_env import ResourceEnv
from policies.action_masking import (
    MaskedDQNTorchRLModule,
    MaskedPPOTorchRLModule,
    masked_module_class,
    split_batch,
)

N_ACTIONS = 5
SPACE = gym.spaces.Dict({
    "observation": gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
    "action_mask": gym.spaces.Box(0, 1, shape=(N_ACTIONS,), dtype=np.int8),
})
MASK = torch.tensor([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.int8)


def batch() -> dict[str, Any]:
    torch.manual_seed(0)
    return {Columns.OBS: {"observation": torch.randn(3, 3), "action_mask": MASK.clone()}}


# ------------------------------------------------------------------- env side
def test_resource_allocation_mask_is_wait_plus_jobs_that_fit() -> None:
    parallel_api_test(ResourceAllocationEnv(action_mask=True, load=1.1), num_cycles=100)
    env = ResourceAllocationEnv(action_mask=True)
    env.reset(seed=0)
    env._init_state()
    env.arrival_rate = 0.0
    env.enqueue(0, [15, 1], 2, 0)
    env.enqueue(0, [6, 1], 2, 0)
    env.enqueue(1, [5, 1], 2, 0)
    obs, *_ = env.step({a: 0 for a in env.possible_agents})
    assert obs["agent_0"]["action_mask"].tolist() == [1, 1, 1] + [0] * 8
    assert env.observation_space("agent_0").contains(obs["agent_0"])
    obs, *_ = env.step({"agent_0": 1, "agent_1": 0, "agent_2": 0, "agent_3": 0})
    # 15 of 20 units taken: agent_0's 6-unit job and agent_1's 5-unit job no longer fit
    # but agent_1's does (5 <= 5)
    assert obs["agent_0"]["action_mask"].tolist() == [1] + [0] * 10
    assert obs["agent_1"]["action_mask"].tolist() == [1, 1] + [0] * 9
    assert obs["agent_2"]["action_mask"].tolist() == [1] + [0] * 10


def test_action_mask_only_where_the_env_has_one() -> None:
    class NoMaskEnv(ResourceEnv):
        n_actions = 2

    with pytest.raises(ValueError, match="NoMaskEnv has no action mask"):
        NoMaskEnv(2, gym.spaces.Box(0, 1, (1,)), 5, None, action_mask=True)
    with pytest.raises(ValueError, match="action_mask must be True or False, got 1"):
        ResourceAllocationEnv(action_mask=1)


# ---------------------------------------------------------------- module side
def test_split_batch_checks_and_allows_everything_on_an_all_zero_row() -> None:
    inner, mask = split_batch(batch())
    assert inner[Columns.OBS].shape == (3, 3)
    assert mask.tolist()[2] == [True] * N_ACTIONS and mask.tolist()[1] == [True] + [False] * 4
    with pytest.raises(ValueError, match="a masked module needs observations"):
        split_batch({Columns.OBS: torch.zeros(3, 3)})


def _dqn(epsilon: float) -> MaskedDQNTorchRLModule:
    config = DQNConfig().training(dueling=True, double_q=True, epsilon=[(0, epsilon)])
    module = MaskedDQNTorchRLModule(
        observation_space=SPACE, action_space=gym.spaces.Discrete(N_ACTIONS),
        model_config={**config.model_config, "fcnet_hiddens": [8]}, inference_only=False)
    module.make_target_networks()
    return module


def test_masked_dqn_never_picks_or_bootstraps_a_forbidden_action() -> None:
    module = _dqn(epsilon=1.0)
    assert module.observation_space == SPACE  # checkpoints rebuild it with the mask
    q = module.compute_q_values(batch())["qf_preds"]
    assert torch.isinf(q[0, [0, 2, 4]]).all() and torch.isfinite(q[0, [1, 3]]).all()
    assert torch.isfinite(q[2]).all()  # all-forbidden row left unmasked
    greedy = module.forward_inference(batch())[Columns.ACTIONS]
    assert greedy[0].item() in (1, 3) and greedy[1].item() == 0
    allowed = {0: {1, 3}, 1: {0}}
    b = batch()
    for t in range(50):  # epsilon 1: every action is a uniform random one
        actions = module.forward_exploration(b, t=t)[Columns.ACTIONS]
        for row, ok in allowed.items():
            assert actions[row].item() in ok
    # an allowed action whose Q-value is exactly 0 is still drawn at random
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    b = batch()  # (batch() reseeds torch)
    drawn = {module.forward_exploration(b, t=0)[Columns.ACTIONS][0].item() for _ in range(30)}
    assert drawn == {1, 3}
    train = module.forward_train({**batch(), Columns.NEXT_OBS: batch()[Columns.OBS]})
    assert torch.isinf(train["qf_target_next_preds"][0, 0])


def test_masked_ppo_logits_and_values() -> None:
    module = MaskedPPOTorchRLModule(
        observation_space=SPACE, action_space=gym.spaces.Discrete(N_ACTIONS),
        model_config={"fcnet_hiddens": [8]}, inference_only=False)
    for forward in (module.forward_inference, module.forward_exploration,
                    module.forward_train):
        logits = forward(batch())[Columns.ACTION_DIST_INPUTS]
        probs = torch.softmax(logits, dim=-1)
        assert probs[0, [0, 2, 4]].sum() == 0 and probs[1, 0] == 1
        assert (probs[2] > 0).all()
    assert module.compute_values(batch()).shape == (3,)


def test_masked_module_class_choice() -> None:
    assert masked_module_class("dqn", SPACE) is MaskedDQNTorchRLModule
    assert masked_module_class("a2c", SPACE) is MaskedPPOTorchRLModule
    assert masked_module_class("ppo", SPACE["observation"]) is None
    with pytest.raises(ValueError, match="no action-masking module for algorithm 'sac'"):
        masked_module_class("sac", SPACE)
    with pytest.raises(ValueError, match="needs a Dict observation space"):
        MaskedPPOTorchRLModule(observation_space=SPACE["observation"],
                               action_space=gym.spaces.Discrete(N_ACTIONS))


# -------------------------------------------------------------- RLlib smoke
def test_masked_ppo_trains_and_never_chooses_an_empty_slot(tmp_path: Any) -> None:
    import ray

    from policies.config import build_config
    from policies.training import evaluate_checkpoint, init_ray, run_training

    init_ray(None, num_cpus=2)
    try:
        config = build_config(
            "resource_allocation", "ppo", "shared", seed=1, num_env_runners=0,
            envs_per_runner=2, sampler="vector",
            env_kwargs={"max_cycles": 25, "action_mask": True, "load": 1.1},
            overrides={"train_batch_size_per_learner": 200, "minibatch_size": 100,
                       "num_epochs": 1})
        module_spec = config.get_rl_module_spec()
        assert module_spec.module_class is MaskedPPOTorchRLModule
        summary = run_training(config, iterations=1, logdir=tmp_path,
                               run_info={"env": "resource_allocation", "algo": "ppo",
                                         "policy_mode": "shared"}, verbose=False)
        report = evaluate_checkpoint(summary["checkpoint"], episodes=2, sample=True)
    finally:
        ray.shutdown()
    assert summary["metrics"]["fairness/empty_slot_choices"] == 0
    assert all(e["empty_slot_choices"] == 0 for e in report["per_episode"])
