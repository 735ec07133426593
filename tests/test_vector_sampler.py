"""The vector sampler (--sampler vector): env protocol, config checks, training, evaluation."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from policies.config import build_config
from policies.rllib_env import EPISODE_STATS_KEY, derive_seed
from policies.training import check_resume_compatible, evaluate_checkpoint, run_training
from policies.vector_sampler import AGENT_ID_KEY, PettingZooAgentVectorEnv

ROOT = Path(__file__).resolve().parents[1]
ENV_CONFIG = {"env": "job_scheduling", "env_kwargs": {"max_cycles": 3}, "seed": 5}
TINY = {"train_batch_size_per_learner": 160, "minibatch_size": 80, "num_epochs": 1}


def test_slots_autoreset_and_final_infos():
    env = PettingZooAgentVectorEnv(ENV_CONFIG, 8)
    assert env.copies == 2 and env.single_observation_space.shape == (13,)
    obs, infos = env.reset()
    assert obs.shape == (8, 13) and infos == [{}] * 8
    acts = np.zeros(8, dtype=np.int64)
    for _ in range(2):
        _, _, terms, truncs, infos = env.step(acts)
        assert not truncs.any() and not terms.any() and infos == [{}] * 8
    _, rewards, terms, truncs, infos = env.step(acts)  # step 3 of max_cycles=3
    assert truncs.all() and not terms.any() and rewards.shape == (8,)
    assert [i[AGENT_ID_KEY] for i in infos] == [f"agent_{k}" for k in range(4)] * 2
    assert EPISODE_STATS_KEY in infos[0] and EPISODE_STATS_KEY in infos[4]
    assert EPISODE_STATS_KEY not in infos[1]
    # NEXT_STEP autoreset: the following step returns fresh first observations
    obs, rewards, terms, truncs, infos = env.step(acts)
    assert not truncs.any() and not rewards.any() and infos == [{}] * 8
    assert all(e.num_steps == 0 for e in env.envs)
    env.close()


def test_copies_get_distinct_derived_seeds():
    a = PettingZooAgentVectorEnv(ENV_CONFIG, 8, worker_index=2)
    b = PettingZooAgentVectorEnv(ENV_CONFIG, 8, worker_index=2)
    assert a.derived_seeds == [derive_seed(5, 2, 0), derive_seed(5, 2, 1)]
    np.testing.assert_array_equal(a.reset()[0], b.reset()[0])


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="multiple of the number of agents"):
        PettingZooAgentVectorEnv(ENV_CONFIG, 6)
    with pytest.raises(ValueError, match="policy-mode shared"):
        build_config("job_scheduling", "ppo", "independent", sampler="vector")
    with pytest.raises(ValueError, match="ppo and a2c"):
        build_config("job_scheduling", "dqn", "shared", sampler="vector")
    with pytest.raises(ValueError, match="sampler"):
        build_config("job_scheduling", "ppo", "shared", sampler="fast")


def test_config_counts_slots():
    cfg = build_config("job_scheduling", "ppo", "shared", sampler="vector", envs_per_runner=3)
    assert cfg.num_envs_per_env_runner == 12 and not cfg.is_multi_agent
    assert cfg.train_batch_size_per_learner == 4 * 4000


def test_cli_rejects_vector_with_independent():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/train.py"), "--env", "job_scheduling", "--algo",
         "ppo", "--policy-mode", "independent", "--sampler", "vector"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "policy-mode shared" in proc.stderr



@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_train_one_iteration_metrics_and_evaluate(algo, local_ray, tmp_path):
    overrides = TINY if algo == "ppo" else {"train_batch_size_per_learner": 160}
    cfg = build_config(
        "job_scheduling", algo, "shared", sampler="vector", seed=1, num_env_runners=0,
        envs_per_runner=2, overrides=overrides, env_kwargs={"max_cycles": 10},
    )
    info = {"env": "job_scheduling", "algo": algo, "policy_mode": "shared", "sampler": "vector"}
    summary = run_training(cfg, iterations=1, logdir=tmp_path, run_info=info, verbose=False)
    m = summary["metrics"]
    assert summary["env_steps"] >= 160
    assert "fairness/cv" in summary["latest_metrics"]
    for key in ("fairness/utilization", "fairness/cv", "agent_return/agent_3",
                "fairness/utility/agent_0"):
        assert key in m, key
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert "fairness/cv" in acc.Tags()["scalars"]
    report = evaluate_checkpoint(summary["checkpoint"], episodes=1, out=open("/dev/null", "w"))
    assert set(report["per_agent_utility"]) == {f"agent_{k}" for k in range(4)}
    # a vector-sampler checkpoint cannot be resumed with the multi-agent sampler
    with pytest.raises(ValueError, match="sampler"):
        check_resume_compatible({**info, "sampler": "multi_agent"}, summary["checkpoint"])
    saved = json.loads((Path(summary["checkpoint"]) / "run_info.json").read_text())
    assert saved["sampler"] == "vector"


def test_runner_shortcuts_sample_exactly_what_rllibs_runner_samples():
    import torch
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from policies.vector_sampler import FastUnBatchToIndividualItems, VectorAgentEnvRunner

    class Plain(VectorAgentEnvRunner):  # RLlib's pipeline and callback dispatch
        def __init__(self, *a, **k):
            SingleAgentEnvRunner.__init__(self, *a, **k)

        def _make_on_episode_callback(self, *a):
            SingleAgentEnvRunner._make_on_episode_callback(self, *a)

    cfg = build_config("job_scheduling", "ppo", "shared", sampler="vector", seed=3,
                       envs_per_runner=2, env_kwargs={"max_cycles": 20})
    samples = []
    for cls in (Plain, VectorAgentEnvRunner):
        torch.manual_seed(0)
        runner = cls(config=cfg)
        torch.manual_seed(1)
        eps = runner.sample(num_timesteps=200)
        samples.append([(e.get_observations(), e.get_actions(), e.get_rewards()) for e in eps])
        pieces = [type(c) for c in runner._module_to_env.connectors]
        runner.stop()
    assert FastUnBatchToIndividualItems in pieces
    assert len(samples[0]) == len(samples[1])
    for a, b in zip(*samples, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
