"""DeepRM's same-seed baseline: shared episode seeds in the vector env, the advantages,
the config checks, one A2C iteration, and the comparison's flag."""

import numpy as np
import pytest
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from policies.config import build_config
from policies.rllib_env import derive_seed
from policies.same_seed_baseline import (
    EXPLAINED_VAR_KEY,
    GROUP_SIZE_KEY,
    _group_key,
    leave_one_out_advantages,
)
from policies.vector_sampler import (
    AGENT_ID_KEY,
    EPISODE_SEED_KEY,
    SHARED_EPISODE_SEEDS,
    PettingZooAgentVectorEnv,
)

ENV_KWARGS = {"max_cycles": 6, "load": 1.5, "reward_scale": 0.02}
SHARED = {"env": "resource_allocation", "env_kwargs": ENV_KWARGS, "seed": 3,
          SHARED_EPISODE_SEEDS: True}


def test_leave_one_out_advantages() -> None:
    returns = np.array([[3.0, 1.0], [1.0, 1.0], [2.0, 4.0]])
    # episode 0: baseline = mean of episodes 1 and 2 = [1.5, 2.5]
    np.testing.assert_allclose(leave_one_out_advantages(returns),
                               [[1.5, -1.5], [-1.5, -1.5], [0.0, 3.0]])
    # a common shift (what all episodes of one seed share) cancels out
    np.testing.assert_allclose(leave_one_out_advantages(returns + 100.0),
                               leave_one_out_advantages(returns))
    with pytest.raises(ValueError, match=">= 2 episodes per seed, got 1"):
        leave_one_out_advantages(returns[:1])


def _arrivals(env: PettingZooAgentVectorEnv) -> list[list[int]]:
    return [e.unwrapped._arrived.tolist() for e in env.envs]


def test_copies_replay_the_same_arrivals_under_different_actions() -> None:
    env = PettingZooAgentVectorEnv(SHARED, 12)  # 3 copies x 4 tenants
    obs, infos = env.reset()
    first = derive_seed(3, 0, 0)
    assert infos == [{EPISODE_SEED_KEY: first, AGENT_ID_KEY: f"agent_{k}"}
                     for _ in range(3) for k in range(4)]
    np.testing.assert_array_equal(obs[:4], obs[4:8])  # the same first jobs in every copy
    rng = np.random.default_rng(0)
    arrived = []
    for _ in range(6):
        _, _, _, truncs, _ = env.step(rng.integers(0, 11, size=12))
        arrived.append(_arrivals(env))
    assert truncs.all()
    assert all(a[0] == a[1] == a[2] for a in arrived)  # same arrivals whatever the actions
    assert len({e.unwrapped._slowdown_sum.sum() for e in env.envs}) > 1  # actions differ
    # the next episode: a new seed, shared by every copy, announced in every slot
    obs, rewards, _, _, infos = env.step(np.zeros(12, dtype=np.int64))
    seeds = {i[EPISODE_SEED_KEY] for i in infos}
    assert len(seeds) == 1 and seeds != {first} and not rewards.any()
    np.testing.assert_array_equal(obs[:4], obs[8:])
    # the seed sequence is the run seed's
    again = PettingZooAgentVectorEnv(SHARED, 12)
    again.reset()
    for _ in range(7):
        _, _, _, _, infos2 = again.step(np.zeros(12, dtype=np.int64))
    assert infos2[0][EPISODE_SEED_KEY] == seeds.pop()


def test_copies_ending_at_different_steps_are_rejected() -> None:
    import itertools

    import marl_envs
    from policies.rllib_env import register_env_factory

    lengths = itertools.count(3)  # every new copy's episode is one step longer
    register_env_factory("uneven_lengths", lambda cfg: marl_envs.make(
        "resource_allocation", max_cycles=next(lengths)))
    env = PettingZooAgentVectorEnv({**SHARED, "factory": "uneven_lengths"}, 8)
    env.reset()
    for _ in range(2):
        env.step(np.zeros(8, dtype=np.int64))
    with pytest.raises(ValueError, match=r"env copies \[1\] went on after copies \[0\]"):
        env.step(np.zeros(8, dtype=np.int64))


def test_episode_without_shared_seed_is_rejected() -> None:
    episode = SingleAgentEpisode(observations=[0, 1], actions=[0], rewards=[1.0],
                                 infos=[{}, {}], terminated=True)
    with pytest.raises(ValueError, match="shared_episode_seeds"):
        _group_key(episode)
    chunk = SingleAgentEpisode(observations=[0, 1], actions=[0], rewards=[1.0],
                               infos=[{}, {}])
    with pytest.raises(ValueError, match="whole episodes"):
        _group_key(chunk)


def _whole_episode(length: int, seed: int = 5) -> SingleAgentEpisode:
    reset_info = {EPISODE_SEED_KEY: seed, AGENT_ID_KEY: "agent_0"}
    return SingleAgentEpisode(observations=list(range(length + 1)), actions=[0] * length,
                              rewards=[-1.0] * length, infos=[reset_info] + [{}] * length,
                              truncated=True, len_lookback_buffer=0)


def test_connector_rejects_unequal_lengths_and_misplaced_rows() -> None:
    from ray.rllib.core.columns import Columns

    from policies.same_seed_baseline import SameSeedBaselineAdvantages, _check_row_order

    connector = SameSeedBaselineAdvantages(gamma=1.0)
    with pytest.raises(ValueError, match=r"seed 5 \(agent_0\) have different lengths \[2, 3\]"):
        connector(rl_module=None, episodes=[_whole_episode(2), _whole_episode(3)],
                  batch={"default_policy": {}})
    episodes = [_whole_episode(2), _whole_episode(2)]
    _check_row_order({Columns.REWARDS: np.full(4, -1.0)}, episodes)  # rows in order: fine
    with pytest.raises(ValueError, match="rows are not the episodes' steps in order"):
        _check_row_order({Columns.REWARDS: np.full(5, -1.0)}, episodes)


def _config(**kwargs):
    args = {"seed": 0, "envs_per_runner": 2, "sampler": "vector",
            "env_kwargs": ENV_KWARGS, "baseline": "same_seed_mean", **kwargs}
    return build_config("resource_allocation", args.pop("algo", "a2c"), "shared", **args)


def test_config_samples_whole_episodes_of_shared_seeds() -> None:
    cfg = _config()
    assert cfg.train_batch_size_per_learner == 2 * 4 * 6  # copies x agents x max_cycles
    assert cfg.rollout_fragment_length == 6 and cfg.baseline == "same_seed_mean"
    assert cfg.env_config[SHARED_EPISODE_SEEDS] is True
    assert cfg.gamma == 1.0 and cfg.vf_loss_coeff == 0.0
    cfg = _config(num_env_runners=2, overrides={"train_batch_size_per_learner": 192,
                                                "gamma": 0.9})
    assert cfg.train_batch_size_per_learner == 192 and cfg.rollout_fragment_length == 12
    assert cfg.gamma == 0.9
    assert build_config("resource_allocation", "a2c", "shared", sampler="vector",
                        env_kwargs=ENV_KWARGS).baseline == "critic"


@pytest.mark.parametrize("kwargs, match", [
    ({"algo": "dqn"}, "is for a2c or ppo with --sampler vector, not 'dqn'"),
    ({"sampler": "multi_agent"}, "sampler 'multi_agent'"),
    ({"envs_per_runner": 1}, ">= 2 env copies per runner; envs_per_runner is 1"),
    ({"overrides": {"train_batch_size_per_learner": 100}},
     "100 is not a multiple of 48"),
    ({"baseline": "mean"}, "baseline"),
])
def test_config_rejects_bad_setups(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        _config(**kwargs)


@pytest.mark.parametrize("algo, overrides", [
    ("a2c", {}), ("ppo", {"minibatch_size": 24, "num_epochs": 1})])
def test_one_iteration_uses_the_same_seed_baseline(algo, overrides) -> None:
    import ray

    from policies.training import init_ray

    init_ray(None, num_cpus=2)
    try:
        config = _config(algo=algo, envs_per_runner=3, model="slot_scoring",
                         overrides=overrides)
        algo = config.build_algo()
        try:
            pipeline = algo.learner_group._learner._learner_connector
            names = [type(c).__name__ for c in pipeline.connectors]
            learner = algo.train()["learners"]["default_policy"]
        finally:
            algo.stop()
    finally:
        ray.shutdown()
    assert names[-1] == "SameSeedBaselineAdvantages"
    assert "GeneralAdvantageEstimation" not in names
    assert "AddOneTsToEpisodesAndTruncate" not in names
    assert learner[GROUP_SIZE_KEY] == 3  # every (seed, tenant) has one episode per copy
    assert np.isfinite(learner[EXPLAINED_VAR_KEY]) and learner[EXPLAINED_VAR_KEY] <= 1.0
