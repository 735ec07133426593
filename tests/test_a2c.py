"""A2C: the loss written out, one gradient pass per batch, learning on CartPole."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from policies.a2c import A2C, A2CConfig, A2CTorchLearner


def _single_agent_config(**training):
    return (
        A2CConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4)
        .training(**training)
        .debugging(seed=0)
    )


def test_a2c_is_its_own_algorithm():
    cfg = A2CConfig()
    assert cfg.algo_class is A2C
    assert cfg.get_default_learner_class() is A2CTorchLearner
    assert "ppo" not in type(cfg).__mro__[1].__module__.lower()
    with pytest.raises(ValueError, match="lambda_"):
        A2CConfig().environment("CartPole-v1").training(lambda_=1.5).validate()


def test_loss_matches_hand_computation():
    cfg = _single_agent_config(vf_loss_coeff=0.5, entropy_coeff=0.1)
    env = gym.make("CartPole-v1")
    learner = cfg.build_learner(env=env)
    module_id = next(iter(learner.module.keys()))
    module = learner.module[module_id]
    n = 6
    gen = torch.Generator().manual_seed(0)
    batch = {
        Columns.OBS: torch.randn(n, 4, generator=gen),
        Columns.ACTIONS: torch.tensor([0, 1, 1, 0, 1, 0]),
        Postprocessing.ADVANTAGES: torch.randn(n, generator=gen),
        Postprocessing.VALUE_TARGETS: torch.randn(n, generator=gen),
    }
    fwd = module.forward_train(batch)
    loss = learner.compute_loss_for_module(
        module_id=module_id, config=cfg, batch=batch, fwd_out=fwd
    )
    logits = fwd[Columns.ACTION_DIST_INPUTS]
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(1, batch[Columns.ACTIONS][:, None]).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    values = module.compute_values(batch)
    expected = (
        -(logp * batch[Postprocessing.ADVANTAGES]).mean()
        + 0.5 * ((values - batch[Postprocessing.VALUE_TARGETS]) ** 2).mean()
        - 0.1 * entropy.mean()
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)



def test_one_gradient_pass_per_batch_and_learning(local_ray):
    cfg = _single_agent_config(
        lr=3e-3, train_batch_size_per_learner=500, entropy_coeff=0.0, gamma=0.99
    )
    algo = cfg.build_algo()
    try:
        returns = []
        for _ in range(25):
            r = algo.train()
            learner = r["learners"]["default_policy"]
            # one pass over the batch: every sampled step is trained on once (plus the
            # one masked bootstrap step per episode chunk); a 2nd epoch would double it
            sampled = r["env_runners"]["num_env_steps_sampled"]
            assert sampled <= learner["num_module_steps_trained"] < 1.5 * sampled
            returns.append(r["env_runners"].get("episode_return_mean", np.nan))
        assert np.nanmean(returns[-5:]) > 1.5 * np.nanmean(returns[:3])
    finally:
        algo.stop()
