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
from ray.rllib.connectors.connector_v2 import ConnectorV2  # noqa: E402
from ray.rllib.evaluation.postprocessing import Postprocessing  # noqa: E402

from policies import onednn_linear  # noqa: E402
from policies.cyclic_minibatches import CyclicMinibatches  # noqa: E402
from policies.fen.config import build_fen_config  # noqa: E402
from policies.fen.learner import FENPPOTorchLearner, update_threads  # noqa: E402
from policies.fen.train_batch import TrainBatchBuilder  # noqa: E402
from policies.fen.variants import options_for  # noqa: E402
from policies.stacked_ppo import (  # noqa: E402
    StackedPPO,
    _categorical,
    _categorical_kl,
    stackable,
)

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


def _optimizer_state(learner):
    """Each module's Adam state, by parameter name."""
    out = {}
    for mid, module in learner.module.items():
        optimizer = learner.get_optimizers_for_module(mid)[0][1]
        for name, p in module.named_parameters():
            for k, v in optimizer.state.get(p, {}).items():
                out[(mid, name, k)] = v.detach().clone()
    return out


#: Adam's epsilon in the twin learners. With the default 1e-8, a weight whose gradients
#: stay tiny (a hidden unit all but dead in the batch: Adam's second moment ~1e-12) takes
#: steps of about the learning rate in the direction of gradients that are mostly float32
#: rounding, so two implementations whose arithmetic differs only in rounding (fused
#: against single-tensor Adam, batched against per-module products) part by ~1e-4 within
#: two updates for some data. An epsilon above that gradient scale keeps such weights
#: still in both and leaves the comparison to the updates the loss actually drives.
TWIN_ADAM_EPS = 1e-4


def _twin_learners(overrides=None, **fen_options):
    """FEN's learner and RLlib's PPOTorchLearner with the same config and weights, their
    Adams with :data:`TWIN_ADAM_EPS`."""
    options = options_for("fen", {"period": 10, **fen_options})
    configs = [build_fen_config(
        "job_scheduling", "fen", seed=1, num_env_runners=0, envs_per_runner=2,
        env_kwargs={"max_cycles": 60}, fen_options=dict(options),
        overrides={**TINY, **(overrides or {})}, main_cpus=2)
        for _ in range(2)]
    configs[1].learners(learner_class=PPOTorchLearner)
    algos = [c.build_algo() for c in configs]
    fen, ref = (a.learner_group._learner for a in algos)
    ref.module.set_state(fen.module.get_state())
    for learner in (fen, ref):
        for mid in learner.module.keys():
            for _, optimizer in learner.get_optimizers_for_module(mid):
                for group in optimizer.param_groups:
                    group["eps"] = TWIN_ADAM_EPS
    return algos, fen, ref


def _sync(ref, fen):
    """Give ``ref`` ``fen``'s weights and Adam state (after an update compared equal up to
    rounding): the next update is compared from one state, so that rounding does not
    compound over updates (a ReLU pre-activation within rounding of 0 takes its row's
    gradient in one learner and not in the other, and Adam makes a step of it)."""
    ref.module.set_state(fen.module.get_state())
    for mid, module in fen.module.items():
        src = fen.get_optimizers_for_module(mid)[0][1]
        dst = ref.get_optimizers_for_module(mid)[0][1]
        for p_src, p_dst in zip(module.parameters(), ref.module[mid].parameters(), strict=True):
            dst.state[p_dst] = {k: v.clone() for k, v in src.state[p_src].items()}


def _update_both(fen, ref, episodes, nan_advantage=None):
    """The same update (same minibatches) on both learners; their results."""
    results = []
    for learner in (fen, ref):
        if nan_advantage is not None:  # a learner connector's output with a NaN advantage
            learner._learner_connector.append(_NanAdvantage(nan_advantage))
        np.random.seed(5)  # noqa: NPY002 -- RLlib shuffles minibatches with np.random
        torch.manual_seed(5)
        try:
            results.append(learner.update(
                episodes=copy.deepcopy(episodes), timesteps={"num_env_steps_sampled_lifetime": 1},
                num_epochs=2, minibatch_size=64, shuffle_batch_per_epoch=True))
        finally:
            if nan_advantage is not None:
                learner._learner_connector.remove("_NanAdvantage")
    return results


class _NanAdvantage(ConnectorV2):
    """Learner connector piece: one row of one module's advantages set to NaN."""

    def __init__(self, module_id):
        super().__init__()
        self.module_id = module_id

    def __call__(self, *, batch, **kwargs):
        batch[self.module_id][Postprocessing.ADVANTAGES][3] = float("nan")
        return batch


def _assert_same_learners(fen, ref, atol=1e-4):
    """The same weights and Adam state.

    Weights: within ``atol`` (a third of an Adam step at PPO's learning rate of 3e-4; over
    an update's dozen or so steps, float32 rounding that differs between the learners --
    oneDNN's products against MKL's, batched against per module -- moves weights by up to
    ~2e-5), but for at most 0.1% of them, which stay within 1e-3 (about three Adam
    steps): a ReLU pre-activation within rounding of 0 takes its row's gradient in one
    learner and not in the other, and Adam makes a step of it (seen: 6 of 65,536
    elements, 1.8e-4 apart); a wrong loss or a lost state moves most of them."""
    after_fen, after_ref = _weights(fen), _weights(ref)
    for mid in after_ref:
        for k in after_ref[mid]:
            got, want = after_fen[mid][k].numpy(), after_ref[mid][k].numpy()
            np.testing.assert_allclose(got, want, rtol=0, atol=10 * atol, err_msg=f"{mid} {k}")
            far = np.abs(got - want) > atol
            assert far.mean() <= 1e-3 or far.sum() <= 1, \
                f"{mid} {k}: {int(far.sum())} of {far.size} differ by more than {atol}"
    state_fen, state_ref = _optimizer_state(fen), _optimizer_state(ref)
    assert state_fen.keys() == state_ref.keys() and state_ref
    for key, value in state_ref.items():
        # Adam's moments: within 1% (of themselves and of the tensor's largest), but for
        # at most 1% of them: a ReLU pre-activation within rounding of 0 takes its row's
        # gradient in one learner and not in the other, which changes that unit's
        # moments (seen: 59 of 65,536); a lost or wrong state changes nearly all of them
        want, got = value.numpy(), state_fen[key].numpy()
        assert got.shape == want.shape and np.isfinite(got).all(), key
        far = np.abs(got - want) > 1e-2 * (np.abs(want) + np.abs(want).max())
        assert far.mean() <= 0.01, f"{key}: {int(far.sum())} of {far.size} differ"


@pytest.mark.parametrize("overrides,fen_options", [
    ({}, {}), ({}, {"subpolicy0_entropy": 0.2, "controller_entropy": 0.0}),
    ({"use_kl_loss": False}, {})])
def test_same_updates_as_ppo_torch_learner_stacked_threads_restored(local_ray, overrides,
                                                                    fen_options, monkeypatch):
    algos, fen, ref = _twin_learners(overrides, **fen_options)
    steps, fast_paths = [], []
    monkeypatch.setattr(StackedPPO, "step", lambda self, batch, _step=StackedPPO.step:
                        steps.append(1) or _step(self, batch))
    # FEN's learner builds its batches and minibatches itself (the same as RLlib's)
    monkeypatch.setattr(TrainBatchBuilder, "build", lambda *a, _b=TrainBatchBuilder.build, **k:
                        fast_paths.append("batch") or _b(*a, **k))
    monkeypatch.setattr(CyclicMinibatches, "__iter__", lambda self, _i=CyclicMinibatches.__iter__:
                        fast_paths.append("minibatches") or _i(self))
    try:
        assert type(fen) is FENPPOTorchLearner and type(ref) is PPOTorchLearner
        assert fen._update_threads == min(2, os.cpu_count() or 1)  # one-node Ray
        assert stackable(fen)
        before = _weights(fen)
        torch.set_num_threads(1)
        for _ in range(2):  # the second update starts from the first one's Adam state
            episodes = algos[0].env_runner.sample(num_timesteps=300)
            results = _update_both(fen, ref, episodes)
            assert torch.get_num_threads() == 1  # the update's own threads are given back
            _assert_same_learners(fen, ref)
            _sync(ref, fen)  # the next update from one state (FEN's, handed over by scatter)
        assert len(steps) >= 2 * 2 * 300 // 64  # every minibatch step was a stacked one
        assert fast_paths == ["batch", "minibatches"] * 2
        groups = StackedPPO(fen)
        groups.gather(sorted(fen.module.keys()))
        assert sorted(g.ids for g in groups.groups) == [["ctrl"], ["sub0", "sub1", "sub2", "sub3"]]
        groups.groups = None
        moved = max(float((_weights(fen)[m][k] - before[m][k]).abs().max())
                    for m in before for k in before[m])
        assert moved > 1e-4  # the updates did change the weights
        metrics = [{m: {k: v.peek() for k, v in r[m].items() if not isinstance(v, dict)}
                    for m in ("ctrl", "sub0", "sub3")} for r in results]
        for mid, values in metrics[1].items():
            assert metrics[0][mid].keys() == values.keys()
            for key, value in values.items():
                if "parameters" not in key:  # counts of parameters: NaN in both
                    assert metrics[0][mid][key] == pytest.approx(value, rel=1e-3, abs=1e-4), \
                        (mid, key)
    finally:
        for algo in algos:
            algo.stop()


def test_nan_advantage_zeroes_gradients_as_rllib_does(local_ray):
    algos, fen, ref = _twin_learners()
    try:
        episodes = algos[0].env_runner.sample(num_timesteps=300)
        _update_both(fen, ref, episodes, nan_advantage="sub1")
        _assert_same_learners(fen, ref)
        assert all(torch.isfinite(v).all() for m in _weights(fen).values() for v in m.values())
    finally:
        for algo in algos:
            algo.stop()


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


def test_stacked_and_module_by_module_steps_alternate_within_an_update(local_ray, monkeypatch):
    """A minibatch the stacks cannot take (here: every other one) goes through RLlib's
    module-by-module step on the modules themselves: the stacks are copied back first
    and gathered again after, parameters and Adam state included."""
    algos, fen, ref = _twin_learners()
    calls, stacked = [], []
    covers, step = StackedPPO.covers, StackedPPO.step

    def every_other(self, batch):
        calls.append(1)
        return len(calls) % 2 == 1 and covers(self, batch)

    monkeypatch.setattr(StackedPPO, "covers", every_other)
    monkeypatch.setattr(StackedPPO, "step",
                        lambda self, batch: stacked.append(1) or step(self, batch))
    try:
        torch.set_num_threads(1)
        for _ in range(2):
            episodes = algos[0].env_runner.sample(num_timesteps=300)
            _update_both(fen, ref, episodes)
            _assert_same_learners(fen, ref)
            _sync(ref, fen)
        assert 0 < len(stacked) < len(calls)  # both kinds of step ran
    finally:
        for algo in algos:
            algo.stop()


def test_stackable_refuses_what_the_stacks_do_not_compute(local_ray, monkeypatch):
    algos, fen, _ = _twin_learners()
    try:
        assert stackable(fen)
        monkeypatch.setattr(fen, "_grad_scalers", {})  # mixed precision: RLlib's path
        assert not stackable(fen)
        monkeypatch.setattr(fen, "_grad_scalers", None)
        name, optimizer = fen.get_optimizers_for_module("sub1")[0]
        sgd = torch.optim.SGD(optimizer.param_groups[0]["params"], lr=0.1)
        monkeypatch.setitem(fen._named_optimizers, f"sub1_{name}", sgd)
        assert not stackable(fen)  # only Adam's elementwise update stacks
        monkeypatch.setitem(fen._named_optimizers, f"sub1_{name}", optimizer)
        assert stackable(fen)
        monkeypatch.setattr(onednn_linear, "_AVAILABLE", False)  # a torch without oneDNN
        assert not stackable(fen)
        monkeypatch.setattr(onednn_linear, "_AVAILABLE", True)
        fen.module["sub2"].unwrapped().pi.net.mlp[0].double()  # float64: not oneDNN's
        assert not stackable(fen)
    finally:
        for algo in algos:
            algo.stop()


def test_categorical_terms_equal_torch_distributions():
    """The stacked loss's log-probabilities, entropy and KL are torch's Categorical's,
    zero probabilities included (an infinite KL where the new one is 0)."""
    inf = float("inf")
    logits = torch.tensor([[0.0, 1.0, -2.0], [3.0, -inf, 0.0], [0.5, 0.5, 0.5]])
    old = torch.tensor([[1.0, 0.0, 0.0], [0.0, -inf, 2.0], [0.0, 0.0, -inf]])
    actions = torch.tensor([2, 0, 1])
    curr, prev = (torch.distributions.Categorical(logits=x) for x in (logits, old))
    log_p, probs = _categorical(logits)
    torch.testing.assert_close(log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1),
                               curr.log_prob(actions))
    torch.testing.assert_close(
        -(torch.clamp(log_p, min=torch.finfo(log_p.dtype).min) * probs).sum(-1),
        curr.entropy())
    torch.testing.assert_close(_categorical_kl(old, log_p, probs),
                               torch.distributions.kl_divergence(prev, curr))
    assert _categorical_kl(logits, *_categorical(old))[2] == inf
