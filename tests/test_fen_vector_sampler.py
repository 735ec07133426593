"""FEN's fast hierarchical sampler (policies/fen/vector_runner.py) against RLlib's
MultiAgentEnvRunner: the same episodes and learner batches, training end to end,
unsupported combinations rejected."""

import copy
import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (  # noqa: E402
    DefaultPPOTorchRLModule,
)
from ray.rllib.connectors.learner import (  # noqa: E402
    AddOneTsToEpisodesAndTruncate,
    GeneralAdvantageEstimation,
)
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner  # noqa: E402
from ray.rllib.env.single_agent_episode import SingleAgentEpisode  # noqa: E402
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer  # noqa: E402
from ray.rllib.evaluation.postprocessing import Postprocessing  # noqa: E402

from policies.fen.config import build_fen_config  # noqa: E402
from policies.fen.variants import (  # noqa: E402
    make_variant_env,
    options_for,
    parse_sub_module_id,
)
from policies.fen.vector_runner import (  # noqa: E402
    FENVectorEnvRunner,
    _Record,
    _stacks,
    lookback_buffer,
    numpy_episode,
    sample_categorical,
)
from policies.ppo_mlp import actor_path, critic_path, path_forward  # noqa: E402
from policies.rllib_env import _SUB_ENV_COUNTERS  # noqa: E402

# the same chunks from both samplers: 20 env steps per copy and sample() call (the vector
# sampler's default is one call per iteration, the MultiAgentEnvRunner's two periods)
TINY = {"train_batch_size_per_learner": 200, "minibatch_size": 100, "num_epochs": 1,
        "rollout_fragment_length": 20}


class _ObsDeterministicPPO(DefaultPPOTorchRLModule):
    """PPO module whose sampled action is (with probability ~1 - 1e-16) a fixed function
    of the observation: both samplers then walk the same trajectories whatever their
    random draws, and what reaches the learner can be compared exactly."""

    def _forward(self, batch, **kwargs):
        out = super()._forward(batch, **kwargs)
        logits = out[Columns.ACTION_DIST_INPUTS]
        n = logits.shape[-1]
        pick = torch.floor(batch[Columns.OBS].sum(-1) * 1.0).long() % n
        out[Columns.ACTION_DIST_INPUTS] = logits + 40.0 * torch.nn.functional.one_hot(pick, n)
        return out


def _config(sampler, options=None, policy_mode=None, **kw):
    return build_fen_config(
        "job_scheduling", "fen", seed=3, num_env_runners=0, envs_per_runner=2,
        policy_mode=policy_mode, env_kwargs={"max_cycles": 60},
        fen_options=options_for("fen", {"period": 10, **(options or {})}),
        overrides=TINY, sampler=sampler, **kw,
    )


def _runner(config, cls):
    for spec in config._rl_module_spec.rl_module_specs.values():
        spec.module_class = _ObsDeterministicPPO
    _SUB_ENV_COUNTERS.clear()  # the n-th env of a process is sub-env n: same env seeds
    return cls(config=config)


def _sample(runner, calls):
    episodes = []
    for _ in range(calls):
        episodes += runner.sample()
    return episodes


def _segments(episodes):
    """Per module: every agent episode (chunk) as comparable data, sorted."""
    out = {}
    for ma in episodes:
        for aid, sa in ma.agent_episodes.items():
            assert sa.agent_id == aid and ma.module_for(aid) == sa.module_id
            out.setdefault(sa.module_id, []).append((
                aid, len(sa), bool(sa.is_terminated), bool(sa.is_truncated),
                tuple(np.round(np.asarray(sa.get_rewards(), np.float64), 6).tolist()),
                tuple(np.asarray(sa.get_actions()).tolist()),
                np.asarray(sa.get_observations()).round(6).tobytes(),
                tuple(np.round(sa.get_extra_model_outputs(Columns.ACTION_LOGP), 4).tolist()),
            ))
    return {mid: sorted(rows) for mid, rows in out.items()}


def _learner_batch(config, module, episodes):
    # PPOLearner's pipeline: one extra ts per episode first, GAE last
    connector = config.build_learner_connector(None, None)
    connector.prepend(AddOneTsToEpisodesAndTruncate())
    connector.append(GeneralAdvantageEstimation(gamma=config.gamma, lambda_=config.lambda_))
    episodes = copy.deepcopy(episodes)
    # RLlib orders the agents of a step as a set of strings does (PYTHONHASHSEED), and
    # GAE's standardisation of advantages also sees the masked bootstrap rows, whose values
    # depend on the next episode in the batch: compare both in one canonical agent order
    for ma in episodes:
        ma.agent_episodes = dict(sorted(ma.agent_episodes.items()))
    batch = connector(rl_module=module, batch={}, episodes=episodes, shared_data={},
                      metrics=None)
    rows = {}
    for mid, cols in batch.items():
        obs = np.asarray(cols[Columns.OBS], dtype=np.float64)
        mask = np.asarray(cols[Columns.LOSS_MASK], dtype=bool)
        table = np.column_stack([
            obs, np.asarray(cols[Columns.ACTIONS], dtype=np.float64),
            np.asarray(cols[Columns.REWARDS], dtype=np.float64),
            np.asarray(cols[Columns.TERMINATEDS], dtype=np.float64),
            np.asarray(cols[Columns.TRUNCATEDS], dtype=np.float64),
            np.asarray(cols[Postprocessing.VALUE_TARGETS], dtype=np.float64),
            np.asarray(cols[Postprocessing.ADVANTAGES], dtype=np.float64),
        ])[mask].round(4)
        rows[mid] = table[np.lexsort(table.T[::-1])]
    return rows


@pytest.mark.parametrize("options,policy_mode", [
    ({}, None),
    ({"segment_end": "terminate", "controller_horizon": "episode"}, "independent"),
])
def test_same_episodes_and_learner_batches_as_multi_agent_runner(options, policy_mode):
    ref = _runner(_config("multi_agent", options, policy_mode), MultiAgentEnvRunner)
    fast_config = _config("vector", options, policy_mode)
    fast = _runner(fast_config, FENVectorEnvRunner)
    fast.module.set_state(ref.module.get_state())
    # 66 env steps per episode (60 base steps, 6 controller steps), 20 per copy and call:
    # calls cut segments and decisions, two episodes per copy end, the copies reset
    ref_eps, fast_eps = _sample(ref, 7), _sample(fast, 7)
    assert sorted(len(e) for e in fast_eps) == sorted(len(e) for e in ref_eps)
    assert sum(len(e) for e in fast_eps) >= 280
    assert sum(e.is_done for e in fast_eps) == sum(e.is_done for e in ref_eps) == 4
    ref_seg, fast_seg = _segments(ref_eps), _segments(fast_eps)
    # numpy buffers as RLlib's (integer actions: RLlib's int32, the sampler's int64)
    dtypes = [{(sa.actions.data.dtype.kind, sa.extra_model_outputs[Columns.ACTION_LOGP].data.dtype,
                sa.rewards.data.dtype, sa.observations.data.dtype)
               for ma in eps for sa in ma.agent_episodes.values()} for eps in (ref_eps, fast_eps)]
    assert dtypes[0] == dtypes[1] and len(dtypes[0]) == 1
    assert sorted(fast_seg) == sorted(ref_seg)
    for mid in ref_seg:
        assert len(fast_seg[mid]) == len(ref_seg[mid]), mid
        assert fast_seg[mid] == ref_seg[mid], mid
    # the rewards that reach each module, before the learner's intrinsic reward
    flags = {(row[2], row[3]) for rows in fast_seg.values() for row in rows}
    assert (True, False) in flags  # segments and decisions that ended
    assert (False, False) in flags  # chunks cut by the end of sample(), continued next call
    if not options:  # segment_end "truncate": a segment cut by its period is truncated
        assert (False, True) in flags
    subs_rewarded = {parse_sub_module_id(mid)[1]: sum(sum(r[4]) for r in rows)
                     for mid, rows in fast_seg.items() if parse_sub_module_id(mid)}
    assert any(v > 0 for z, v in subs_rewarded.items() if z == 0)
    assert all(v == 0 for z, v in subs_rewarded.items() if z > 0)
    ctrl_rewards = [r for mid, rows in fast_seg.items() if parse_sub_module_id(mid) is None
                    for row in rows for r in row[4]]
    assert ctrl_rewards and any(r > 0 for r in ctrl_rewards)
    for ma in fast_eps:  # controllers: rhat (scaled), as the env logs it
        for sa in ma.agent_episodes.values():
            info = sa.get_infos(-1)
            if parse_sub_module_id(sa.module_id) is None and "fair_efficient_reward" in info:
                scale = 1.0 if not options else 1.0 - 0.98
                assert sa.get_rewards(-1) == pytest.approx(info["fair_efficient_reward"] * scale)
    # the learner's batches (discriminator reward, GAE with bootstrapped cut segments)
    learner_module = fast_config.get_multi_rl_module_spec(
        env=fast.env.unwrapped, spaces=fast.get_spaces(), inference_only=False).build()
    learner_module.set_state(ref.module.get_state())
    ref_batch = _learner_batch(fast_config, learner_module, ref_eps)
    fast_batch = _learner_batch(fast_config, learner_module, fast_eps)
    assert sorted(ref_batch) == sorted(fast_batch)
    for mid in ref_batch:
        np.testing.assert_allclose(fast_batch[mid], ref_batch[mid], atol=2e-3, err_msg=mid)



def test_two_training_iterations_with_fairness_metrics(local_ray):
    algo = _config("vector").build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        env_stats = result["env_runners"]
        assert 0.0 <= env_stats["fairness/utilization"] <= 1.0
        assert env_stats["fairness/cv"] >= 0.0
        assert env_stats["episode_len_mean"] == 66
        assert env_stats["num_env_steps_sampled_lifetime"] >= 400
        learners = result["learners"]
        for mid in ("ctrl", "sub0"):
            assert np.isfinite(learners[mid]["total_loss"])
        assert 0.0 <= learners["fen"]["discriminator_accuracy"] <= 1.0
    finally:
        algo.stop()


@pytest.mark.parametrize("env,variant,kwargs,match", [
    ("job_scheduling", "fen_no_hierarchy", {}, "flat"),
    ("job_scheduling", "independent", {}, "flat"),
    ("job_scheduling", "fen", {"sampler": "bogus"}, "sampler"),
    ("job_scheduling", "fen", {"fen_options": {"model": "slot_scoring"}}, "mlp"),
    ("resource_allocation", "fen", {"env_kwargs": {"action_mask": True}}, "Box"),
])
def test_unsupported_combinations_rejected(env, variant, kwargs, match):
    kwargs = {"sampler": "vector", **kwargs}
    with pytest.raises(ValueError, match=match):
        build_fen_config(env, variant, **kwargs)


def test_fast_policy_forward_matches_the_modules_forward():
    config = _config("vector")
    specs = config._rl_module_spec.rl_module_specs
    probe = make_variant_env(config.env_config)
    for mid in ("ctrl", "sub0", "sub3"):
        aid = probe.possible_agents[0] if mid == "ctrl" else "agent_0/sub/0/0"
        spec = copy.copy(specs[mid])
        spec.observation_space = probe.observation_space(aid)
        spec.action_space = probe.action_space(aid)
        spec.module_class = DefaultPPOTorchRLModule
        module = spec.build()
        actor, critic = actor_path(module), critic_path(module)
        assert actor is not None and len(actor) == 3 and critic is not None and len(critic) == 3
        obs = torch.from_numpy(np.stack([spec.observation_space.sample() for _ in range(64)]))
        with torch.no_grad():
            want = module._forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
            got = path_forward(actor, obs)
            want_v = module.compute_values({Columns.OBS: obs})
            got_v = path_forward(critic, obs).squeeze(-1)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5, err_msg=mid)
        np.testing.assert_allclose(got_v.numpy(), want_v.numpy(), rtol=0, atol=1e-5,
                                   err_msg=mid)
        spec.module_class = _ObsDeterministicPPO  # a module with a forward of its own
        assert actor_path(spec.build()) is None


def test_stacked_sub_policies_act_as_their_own_modules(local_ray):
    """The sampler's stacked pass over the sub-policies gives each agent its own
    module's logits, and actions and log-probabilities drawn from them."""
    config = _config("vector")
    runner = FENVectorEnvRunner(config=config)
    try:
        paths = {mid: actor_path(m) for mid, m in runner.module.items()}
        stacks = _stacks(paths)
        assert sorted(stacks) == ["sub0", "sub1", "sub2", "sub3"]  # not the controller
        stack = stacks["sub0"]
        rng = np.random.default_rng(0)
        # uneven groups (padded to the longest), one module without agents
        groups = [[_Record(f"a{k}", mid, rng.normal(size=15).astype(np.float32), "x")
                   for k in range(n)] for mid, n in (("sub0", 5), ("sub2", 1), ("sub3", 3))]
        runner._act_stacked(stack, groups, seq=7)
        for group in groups:
            obs = torch.from_numpy(np.stack([rec.obs[-1] for rec in group]))
            with torch.no_grad():
                want = path_forward(paths[group[0].module], obs)
            got = np.stack([rec.dist[-1] for rec in group])
            np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-5)
            log_p = torch.log_softmax(want, -1).numpy()
            for k, rec in enumerate(group):
                assert rec.pending and rec.seq == [7] and len(rec.actions) == 1
                assert rec.logp[-1] == pytest.approx(log_p[k, rec.actions[-1]], abs=1e-5)
    finally:
        runner.stop()


def test_sample_categorical_draws_from_the_softmax():
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0, -30.0]]).repeat(40_000, 1)
    acts, logp = sample_categorical(logits.numpy())
    assert acts.dtype == np.int64 and logp.dtype == np.float32
    probs = torch.softmax(logits[0], -1).numpy()
    freq = np.bincount(acts, minlength=5) / len(acts)
    np.testing.assert_allclose(freq, probs, atol=0.01)
    assert freq[4] == 0.0
    np.testing.assert_allclose(logp, np.log(probs)[acts], rtol=1e-5)
    torch.manual_seed(0)  # one draw of torch's seeded generator per row
    assert np.array_equal(sample_categorical(logits.numpy())[0], acts)


@pytest.mark.parametrize("data", [np.arange(6.0).reshape(3, 2), np.array([1, 0, 2]),
                                  [{}, {"episode_stats": {"x": 1.0}}]])
def test_lookback_buffer_equals_rllibs_constructor(data):
    fast, rllib = lookback_buffer(data), InfiniteLookbackBuffer(data)
    assert fast == rllib
    assert vars(fast).keys() == vars(rllib).keys()
    assert len(fast) == len(rllib) and fast.finalized == rllib.finalized
    np.testing.assert_equal(fast.get(-1), rllib.get(-1))


@pytest.mark.parametrize("terminated,truncated,t_started", [(True, False, 0), (False, True, 25),
                                                            (False, False, 3)])
def test_numpy_episode_equals_rllibs_constructor(terminated, truncated, t_started):
    def args():
        n = 4
        return dict(
            id_="e1", observations=lookback_buffer(np.arange(15.0).reshape(5, 3)),
            infos=lookback_buffer([{} for _ in range(n)] + [{"episode_stats": {"x": 1.0}}]),
            actions=lookback_buffer(np.array([1, 0, 2, 1])),
            rewards=lookback_buffer(np.array([0.5, 0.0, 1.0, 2.0])),
            extra_model_outputs={Columns.ACTION_LOGP: lookback_buffer(np.zeros(n)),
                                 Columns.ACTION_DIST_INPUTS: lookback_buffer(np.ones((n, 5)))},
            terminated=terminated, truncated=truncated, t_started=t_started,
            agent_id="agent_0/sub/1/2", module_id="sub2", multi_agent_episode_id="m1")

    fast = numpy_episode(**args())
    rllib = SingleAgentEpisode(**args(), len_lookback_buffer=0)
    slots = [k for cls in type(rllib).__mro__ for k in getattr(cls, "__slots__", ())]
    assert slots and all(hasattr(rllib, k) == hasattr(fast, k) for k in slots)
    for key in slots:
        if not hasattr(rllib, key):
            continue
        value = getattr(rllib, key)
        if key == "extra_model_outputs":
            assert fast.extra_model_outputs.keys() == value.keys()
            assert all(fast.extra_model_outputs[k] == v for k, v in value.items())
        else:
            assert getattr(fast, key) == value, key
    assert len(fast) == len(rllib) == 4 and fast.t == rllib.t == t_started + 4
    fast.validate()
    np.testing.assert_equal(fast.get_observations(-1), rllib.get_observations(-1))
