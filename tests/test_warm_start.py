"""Warm start (policies/warm_start.py): demonstrations, supervised pretraining, RLlib hook."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import marl_envs
from policies.heuristics.schedulers import make_scheduler
from policies.warm_start import (
    collect_demonstrations,
    demonstration_seed,
    discounted_returns,
    pretrain_module,
)

ROOT = Path(__file__).resolve().parents[1]
ENV_KWARGS = {"max_cycles": 30, "load": 1.1, "reward_scale": 0.02, "action_mask": True}
ENV_CONFIG = {"env": "resource_allocation", "env_kwargs": ENV_KWARGS}


def test_discounted_returns() -> None:
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 2.0, 3.0]), 0.5),
                               [1 + 0.5 * (2 + 0.5 * 3), 2 + 0.5 * 3, 3])
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 1.0]), 1.0), [2, 1])


def test_demonstrations_are_the_teachers_decisions_in_the_env() -> None:
    demos = collect_demonstrations(ENV_CONFIG, "sjf", episodes=2, seed=7, gamma=0.9)
    env = marl_envs.make("resource_allocation", **ENV_KWARGS)
    n = 2 * 30 * env.n_agents
    assert len(demos) == n and demos.teacher == "sjf"
    assert set(demos.observations) == {"observation", "action_mask"}
    assert demos.observations["observation"].shape == (n, *env.observation_space(
        "agent_0")["observation"].shape)
    # the first rows are agent_0's first episode, replayed here with the same scheduler
    scheduler = make_scheduler("sjf")
    obs, infos = env.reset(seed=7)
    rewards = []
    for t in range(30):
        np.testing.assert_array_equal(demos.observations["observation"][t],
                                      obs["agent_0"]["observation"])
        actions = scheduler.act(obs, infos)
        assert demos.actions[t] == actions["agent_0"]
        assert demos.observations["action_mask"][t][actions["agent_0"]] == 1  # allowed
        obs, reward, _, _, infos = env.step(actions)
        rewards.append(reward["agent_0"])
    np.testing.assert_allclose(demos.returns[:30], discounted_returns(np.array(rewards), 0.9),
                               rtol=1e-5)
    assert (demos.actions != 0).any()  # the teacher starts jobs, not only waits


@pytest.mark.parametrize("kwargs,match", [
    ({"teacher": "lottery"}, "unknown warm-start teacher 'lottery'; allowed: \\['fifo'"),
    ({"episodes": 0}, "episodes must be an integer >= 1, got 0"),
    ({"gamma": 1.5}, "gamma must be in \\[0, 1\\], got 1.5"),
])
def test_demonstrations_bad_input(kwargs: dict[str, Any], match: str) -> None:
    args = {"teacher": "sjf", "episodes": 1, "seed": 0, "gamma": 0.9, **kwargs}
    with pytest.raises(ValueError, match=match):
        collect_demonstrations(ENV_CONFIG, args.pop("teacher"), **args)


def _slot_module() -> Any:
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from policies.slot_scoring import SlotScoringTorchRLModule

    env = marl_envs.make("resource_allocation", **ENV_KWARGS)
    return RLModuleSpec(
        module_class=SlotScoringTorchRLModule, observation_space=env.observation_space("agent_0"),
        action_space=env.action_space("agent_0"),
        model_config={"slot_layout": env.slot_layout(), "fcnet_hiddens": [32, 32]},
    ).build()


def test_pretraining_imitates_the_teacher_and_fits_the_returns() -> None:
    import torch

    torch.manual_seed(0)
    demos = collect_demonstrations(ENV_CONFIG, "sjf", episodes=4, seed=0, gamma=0.9)
    module = _slot_module()
    before = pretrain_module(module, demos, epochs=1, minibatch_size=10_000, lr=1e-9,
                             vf_coeff=1.0, seed=0)
    after = pretrain_module(module, demos, epochs=40, minibatch_size=64, lr=3e-3,
                            vf_coeff=1.0, seed=0)
    assert after["samples"] == len(demos)
    assert after["accuracy"] > 0.9 > before["accuracy"]
    assert after["cross_entropy"] < before["cross_entropy"] / 3
    assert after["vf_explained_var"] > 0.5 > before["vf_explained_var"]
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        pretrain_module(module, demos, epochs=0, minibatch_size=8, lr=1e-3, vf_coeff=1.0,
                        seed=0)



def test_run_training_warm_starts_learner_and_env_runner(local_ray, tmp_path: Path) -> None:
    import torch

    from policies.config import build_config
    from policies.training import run_training
    from policies.warm_start import warm_start, warm_start_from

    config = build_config("resource_allocation", "ppo", "shared", seed=3, num_env_runners=0,
                          envs_per_runner=1, env_kwargs=ENV_KWARGS, sampler="vector",
                          model="slot_scoring",
                          overrides={"train_batch_size_per_learner": 120, "minibatch_size": 60,
                                     "num_epochs": 1, "lr": 1e-9})
    algo = config.build_algo()
    try:
        demos = collect_demonstrations(config.env_config, "sjf", episodes=2, seed=0,
                                       gamma=config.gamma)
        figures = warm_start(algo, demos, seed=0, epochs=30, minibatch_size=64, lr=3e-3)
        assert set(figures) == {"default_policy"} and figures["default_policy"]["accuracy"] > 0.8
        learner_state = algo.learner_group.get_weights()["default_policy"]
        runner_state = algo.env_runner.module.get_state()
        for key, value in runner_state.items():  # the sampling module got the new weights
            torch.testing.assert_close(torch.as_tensor(value),
                                       torch.as_tensor(learner_state[key]))
        with pytest.raises(ValueError, match="unknown warm-start setting\\(s\\) \\['epoch'\\]"):
            warm_start(algo, demos, seed=0, epoch=3)
    finally:
        algo.stop()
    summary = run_training(config, iterations=1, logdir=tmp_path, verbose=False,
                           run_info={"env": "resource_allocation", "algo": "ppo"},
                           warm_start=warm_start_from(config, "tetris", episodes=1, seed=3))
    ws = summary["warm_start"]["default_policy"]
    assert ws["samples"] == 30 * 4 and 0 <= ws["accuracy"] <= 1
    assert demonstration_seed(3) == 4000


@pytest.mark.parametrize("args,needle", [
    (["--env", "job_scheduling", "--algo", "ppo", "--warm-start", "sjf"],
     "--warm-start imitates a cluster scheduler: it needs --env resource_allocation"),
    (["--env", "resource_allocation", "--algo", "dqn", "--warm-start", "sjf"],
     "--warm-start supports ppo and a2c, not 'dqn'"),
    (["--env", "resource_allocation", "--algo", "ppo", "--warm-start", "best"],
     "unknown --warm-start scheduler 'best'"),
    (["--env", "resource_allocation", "--algo", "ppo", "--warm-start-episodes", "5"],
     "--warm-start-episodes needs --warm-start"),
    (["--env", "resource_allocation", "--algo", "ppo", "--warm-start", "sjf",
      "--warm-start-episodes", "0"], "--warm-start-episodes must be >= 1, got 0"),
    (["--env", "resource_allocation", "--algo", "ppo", "--warm-start", "sjf", "--resume", "."],
     "--warm-start initialises a new run; --resume continues one"),
])
def test_train_cli_rejects_bad_warm_starts(args: list[str], needle: str) -> None:
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], p.stderr


def _fen_config():
    from policies.fen.config import build_fen_config

    return build_fen_config("resource_allocation", "fen", policy_mode="shared", seed=3,
                            num_env_runners=0, envs_per_runner=1, env_kwargs=ENV_KWARGS,
                            fen_options={"model": "slot_scoring", "period": 10},
                            overrides={"train_batch_size_per_learner": 120,
                                       "minibatch_size": 60, "num_epochs": 1})


def test_fen_demonstrations_are_the_teachers_decisions_for_sub_policy_0() -> None:
    config = _fen_config()
    demos = collect_demonstrations(config.env_config, "sjf", episodes=1, seed=7, gamma=1.0)
    # one row per base agent and step; the teacher acted on the base env's infos
    assert len(demos) == 4 * 30
    env = marl_envs.make("resource_allocation", **ENV_KWARGS)
    scheduler = make_scheduler("sjf")
    obs, infos = env.reset(seed=7)  # FEN's episode of seed 7 has the bare env's arrivals
    expected, rewards = [], []
    while env.agents:
        chosen = scheduler.act(obs, infos)
        expected.append([chosen[a] for a in env.possible_agents])
        obs, r, _, _, infos = env.step(chosen)
        rewards.append([r[a] for a in env.possible_agents])
    # rows are grouped per agent: agent_0's 30 steps, then agent_1's, ...
    np.testing.assert_array_equal(demos.actions, np.array(expected).T.reshape(-1))
    np.testing.assert_allclose(demos.returns[:30], np.cumsum(np.array(rewards)[::-1, 0])[::-1],
                               rtol=1e-5)
    # the observations are sub-policy 0's: FEN's two utility features after the base obs
    base_dim = env.observation_space("agent_0")["observation"].shape[0]
    assert demos.observations["observation"].shape == (120, base_dim + 2)
    with pytest.raises(ValueError, match="hierarchical variants"):
        collect_demonstrations({**config.env_config, "variant": "avg"}, "sjf", episodes=1,
                               seed=0, gamma=1.0)


def test_fen_warm_start_fits_sub_policy_0_only(local_ray) -> None:
    import torch

    from policies.warm_start import warm_start_from

    config = _fen_config()
    algo = config.build_algo()
    try:
        before = algo.learner_group.get_weights()
        figures = warm_start_from(config, "sjf", episodes=2, seed=3)(algo)
        after = algo.learner_group.get_weights()
    finally:
        algo.stop()
    assert set(figures) == {"sub0"} and figures["sub0"]["accuracy"] > 0.8
    for mid in before:
        changed = any(not torch.equal(torch.as_tensor(before[mid][k]),
                                      torch.as_tensor(after[mid][k])) for k in before[mid])
        assert changed == (mid == "sub0"), mid
