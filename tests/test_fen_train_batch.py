"""FEN's train batch built at array speed (policies/fen/train_batch.py) against RLlib's
learner connector pipeline: the same rows, in the same order, in every column."""

import copy
import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from ray.rllib.connectors.connector_v2 import ConnectorV2  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.evaluation.postprocessing import Postprocessing  # noqa: E402

from policies.fen.config import build_fen_config  # noqa: E402
from policies.fen.train_batch import TrainBatchBuilder  # noqa: E402
from policies.fen.variants import options_for  # noqa: E402

# 66 env steps per episode (60 base steps, 6 controller steps); 200 env steps per
# sample() call over 2 copies: episodes end, segments and decisions are cut
TINY = {"train_batch_size_per_learner": 200, "minibatch_size": 100, "num_epochs": 1}


def _algo(options=None, policy_mode=None, variant="fen"):
    config = build_fen_config(
        "job_scheduling", variant, seed=5, num_env_runners=0, envs_per_runner=2,
        policy_mode=policy_mode, env_kwargs={"max_cycles": 60},
        fen_options=options_for(variant, {"period": 10, **(options or {})}),
        overrides=TINY, sampler="vector",
    )
    return config.build_algo()


def _pipeline_batch(learner, episodes, metrics):
    """What RLlib's learner connector pipeline makes of (a copy of) the episodes."""
    return learner._learner_connector(rl_module=learner.module, batch={},
                                      episodes=copy.deepcopy(episodes), shared_data={},
                                      metrics=metrics)


class _Noop(ConnectorV2):
    def __call__(self, *, batch, **kwargs):
        return batch


class _Metrics:
    """Records what is logged (the pipeline also times its pieces)."""

    def __init__(self):
        self.logged = {}

    def log_time(self, *args, **kwargs):
        import contextlib

        return contextlib.nullcontext()

    def log_value(self, key, value, **kwargs):
        self.logged[key] = value


@pytest.mark.parametrize("options,policy_mode", [
    ({}, None),
    ({"segment_end": "terminate", "controller_horizon": "episode"}, "independent"),
    ({"intrinsic_reward": "p"}, None),
])
def test_same_batch_as_the_learner_connector_pipeline(local_ray, options, policy_mode):
    algo = _algo(options, policy_mode)
    try:
        learner = algo.learner_group._learner
        builder = learner.batch_builder()
        assert isinstance(builder, TrainBatchBuilder)
        algo.train()  # trained weights: values and discriminator rewards not trivial
        for _ in range(2):  # the second call continues the first one's cut chunks
            episodes = algo.env_runner.sample()
            ref_metrics, metrics = _Metrics(), _Metrics()
            want = _pipeline_batch(learner, episodes, ref_metrics)
            got = builder.build(learner.module, episodes, metrics)
            assert got.env_steps() == sum(len(e) for e in episodes)
            assert list(got.policy_batches) == list(want)  # module order
            flags = set()
            for mid, cols in want.items():
                batch = got.policy_batches[mid]
                assert list(batch.keys()) == list(cols), mid
                for k, v in cols.items():
                    assert batch[k].dtype == v.dtype and batch[k].shape == v.shape, (mid, k)
                    if v.dtype.is_floating_point:
                        torch.testing.assert_close(batch[k], v, rtol=0, atol=2e-5,
                                                   msg=f"{mid} {k}")
                    else:
                        assert torch.equal(batch[k], v), (mid, k)
                mask = cols[Columns.LOSS_MASK].numpy()
                assert (~mask).sum() >= 1  # the bootstrap rows
                flags |= {(bool(t), bool(r)) for t, r in zip(
                    cols[Columns.TERMINATEDS].numpy(), cols[Columns.TRUNCATEDS].numpy(),
                    strict=True)}
                assert np.isfinite(batch[Postprocessing.ADVANTAGES].numpy()).all()
            assert {(True, False), (False, True), (False, False)} <= flags
            assert metrics.logged.keys() == ref_metrics.logged.keys()
            for key, value in ref_metrics.logged.items():
                assert metrics.logged[key] == pytest.approx(value, rel=1e-5), key
        # the episodes are left as they were (the pipeline extends them in place)
        assert all(len(sa) == len(sa.observations) - 1 for ma in episodes
                   for sa in ma.agent_episodes.values())
    finally:
        algo.stop()


def test_other_pipelines_and_episodes_go_through_rllib(local_ray):
    algo = _algo()
    try:
        learner = algo.learner_group._learner
        pipeline = learner._learner_connector
        extra = copy.copy(pipeline)
        extra.connectors = [*pipeline.connectors[:2], _Noop(), *pipeline.connectors[2:]]
        assert TrainBatchBuilder.from_pipeline(extra) is None  # a user's own piece
        episodes = algo.env_runner.sample()
        sa = next(iter(episodes[0].agent_episodes.values()))
        sa.observations.finalized = False  # not numpy buffers: RLlib's pipeline
        assert learner.batch_builder().build(learner.module, episodes) is None
        sa.observations.finalized = True
        assert learner.batch_builder().build(learner.module, episodes) is not None
    finally:
        algo.stop()


def test_variant_without_discriminator(local_ray):
    algo = _algo(variant="fen", options={"intrinsic_reward": "log_p"})
    try:
        learner = algo.learner_group._learner
        plain = copy.copy(learner._learner_connector)
        plain.connectors = [c for c in plain.connectors
                            if type(c).__name__ != "DiscriminatorReward"]
        builder = TrainBatchBuilder.from_pipeline(plain)
        assert builder is not None and builder.discriminator is None
        episodes = algo.env_runner.sample()
        want = plain(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes),
                     shared_data={}, metrics=None)
        got = builder.build(learner.module, episodes)
        for mid, cols in want.items():
            torch.testing.assert_close(got.policy_batches[mid][Columns.REWARDS],
                                       cols[Columns.REWARDS], rtol=0, atol=1e-6)
            torch.testing.assert_close(got.policy_batches[mid][Postprocessing.ADVANTAGES],
                                       cols[Postprocessing.ADVANTAGES], rtol=0, atol=2e-5)
    finally:
        algo.stop()
