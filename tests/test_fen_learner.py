"""FEN's learner (policies/fen/learner.py): the same PPO updates as RLlib's
PPOTorchLearner, with the run's CPUs as torch threads during the update."""

import copy
import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner  # noqa: E402

from policies.fen.config import build_fen_config  # noqa: E402
from policies.fen.learner import FENPPOTorchLearner, update_threads  # noqa: E402
from policies.fen.variants import options_for  # noqa: E402

TINY = {"train_batch_size_per_learner": 300, "minibatch_size": 64, "num_epochs": 2}



def _config(**kw):
    return build_fen_config(
        "job_scheduling", "fen", seed=1, num_env_runners=0, envs_per_runner=2,
        env_kwargs={"max_cycles": 60}, fen_options=options_for("fen", {"period": 10}),
        overrides=TINY, **kw)


def _weights(learner):
    return {mid: {k: v.detach().clone() for k, v in m.state_dict().items()}
            for mid, m in learner.module.items()}


def test_fen_configs_use_fen_learner_and_main_cpus():
    config = _config(main_cpus=2)
    assert config.learner_class is FENPPOTorchLearner
    assert config.num_cpus_for_main_process == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="main_cpus"):
            _config(main_cpus=bad)


def test_update_threads_are_the_runs_cpus_capped_by_the_machine():
    cpus = os.cpu_count() or 1
    assert update_threads(_config(main_cpus=1)) == 1
    assert update_threads(_config(main_cpus=2)) == min(2, cpus)
    remote = build_fen_config("job_scheduling", "fen", num_env_runners=1)
    assert update_threads(remote) == min(2, cpus)  # 1 main + 1 waiting runner here
    assert update_threads(remote, single_node=False) == 1  # the runner may be elsewhere
    assert update_threads(_config(main_cpus=10_000)) == cpus


def test_same_update_as_ppo_torch_learner_threads_restored(local_ray):
    fen_algo = _config(main_cpus=2).build_algo()
    ref_config = _config(main_cpus=2)
    ref_config.learners(learner_class=PPOTorchLearner)
    ref_algo = ref_config.build_algo()
    try:
        fen, ref = fen_algo.learner_group._learner, ref_algo.learner_group._learner
        assert type(fen) is FENPPOTorchLearner and type(ref) is PPOTorchLearner
        assert fen._update_threads == min(2, os.cpu_count() or 1)  # one-node Ray
        ref.module.set_state(fen.module.get_state())
        before = _weights(fen)
        episodes = fen_algo.env_runner.sample(num_timesteps=300)
        torch.set_num_threads(1)
        results = []
        for learner in (fen, ref):
            np.random.seed(5)  # noqa: NPY002 -- RLlib shuffles minibatches with np.random
            torch.manual_seed(5)
            results.append(learner.update(
                episodes=copy.deepcopy(episodes), timesteps={"num_env_steps_sampled_lifetime": 1},
                num_epochs=2, minibatch_size=64, shuffle_batch_per_epoch=True))
            assert torch.get_num_threads() == 1  # the update's own threads are given back
        after_fen, after_ref = _weights(fen), _weights(ref)
        moved = 0.0
        for mid in after_ref:
            for k in after_ref[mid]:
                np.testing.assert_allclose(after_fen[mid][k].numpy(), after_ref[mid][k].numpy(),
                                           rtol=0, atol=1e-5, err_msg=f"{mid} {k}")
                moved = max(moved, float((after_fen[mid][k] - before[mid][k]).abs().max()))
        assert moved > 1e-4  # the update did change the weights
        for mid in ("ctrl", "sub0"):
            assert results[0][mid]["total_loss"].peek() == pytest.approx(
                results[1][mid]["total_loss"].peek(), abs=1e-4)
    finally:
        fen_algo.stop()
        ref_algo.stop()


def test_non_finite_gradient_handled_as_rllib_does(local_ray):
    fen_algo = _config().build_algo()
    ref_config = _config()
    ref_config.learners(learner_class=PPOTorchLearner)
    ref_algo = ref_config.build_algo()
    try:
        fen, ref = fen_algo.learner_group._learner, ref_algo.learner_group._learner
        ref.module.set_state(fen.module.get_state())
        for learner in (fen, ref):
            grads = {pid: torch.full_like(p, 0.01) for pid, p in learner._params.items()}
            first = next(iter(grads))
            grads[first] = grads[first].clone()
            grads[first].view(-1)[0] = float("nan")
            learner.apply_gradients(grads)
        for mid, weights in _weights(ref).items():
            for k, v in weights.items():
                got = _weights(fen)[mid][k]
                assert torch.isfinite(got).all()
                np.testing.assert_allclose(got.numpy(), v.numpy(), rtol=0, atol=1e-7)
    finally:
        fen_algo.stop()
        ref_algo.stop()
