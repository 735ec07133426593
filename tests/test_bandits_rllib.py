"""MAUCE / MATS through RLlib: statistics live in the RLModule, the learner updates them."""

from __future__ import annotations

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ray = pytest.importorskip("ray")

from policies.mauce.rllib import TeamBanditEnv, build_config  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_team_env_is_one_grouped_agent() -> None:
    env = TeamBanditEnv({"env": "chain0101", "env_kwargs": {"n_agents": 4}, "episode_len": 3})
    obs, _ = env.reset(seed=0)
    assert env.action_space.nvec.tolist() == [2, 2, 2, 2] and obs.shape == (1,)
    for _ in range(3):
        obs, reward, term, trunc, info = env.step(np.array([0, 1, 0, 1]))
        assert reward == pytest.approx(info["factor_rewards"].sum())
        assert info["regret"] == pytest.approx(0.0) and not term
    assert trunc
    with pytest.raises(ValueError, match="unknown bandit env 'job_scheduling'"):
        TeamBanditEnv({"env": "job_scheduling"})


@pytest.mark.parametrize("algo", ["mauce", "mats"])
def test_rllib_learner_updates_and_syncs_statistics(ray_session, algo: str) -> None:
    config = build_config(algo, "chain0101", {"n_agents": 4, "horizon": 10**6}, seed=1,
                          batch_size=8)
    trainer = config.build_algo()
    try:
        for it in (1, 2):
            stats = trainer.train()["learners"]["default_policy"]
            assert stats["bandit_timestep"] == 8 * it
        learner_module = trainer.learner_group._learner.module["default_policy"]
        runner_module = trainer.env_runner.module
        # the learner's statistics were synced to the env runner's module
        for name in ("counts", "means", "successes", "timestep"):
            np.testing.assert_array_equal(
                getattr(learner_module, name).numpy(), getattr(runner_module, name).numpy()
            )
        counts = learner_module.counts.numpy()
        assert counts.sum() == 16 * 3  # 16 rounds x 3 factors
        if algo == "mauce":
            # env runners act on synced statistics: MAUCE is deterministic within an
            # iteration (one local arm per factor), and the second iteration, acting on
            # the statistics of the first, tries a new (untried) arm in every factor
            assert ((counts > 0).sum(axis=1) == 2).all()
    finally:
        trainer.stop()


def test_train_script_runs(ray_session, tmp_path, load_script) -> None:
    import json

    mod = load_script("train_bandits_rllib")
    out = mod.main(["--algo", "mats", "--env", "gem_mining", "--agents", "5",
                    "--iterations", "2", "--batch-size", "5", "--json", str(tmp_path / "h.json"),
                    "--md", str(tmp_path / "h.md")])
    assert ray.is_initialized()  # the script reuses a running session and leaves it alone
    assert [h["rounds"] for h in out["history"]] == [5, 10]
    assert json.loads((tmp_path / "h.json").read_text())["algo"] == "mats"
    assert "train_bandits_rllib.py --algo mats" in (tmp_path / "h.md").read_text()
