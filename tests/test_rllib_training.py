"""Training on RLlib: every algorithm x FEN env x policy mode, TensorBoard, resume."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from policies.config import ALGOS, FEN_ENVS, POLICY_MODES, build_config
from policies.training import (
    RUN_INFO_FILE,
    evaluate_checkpoint,
    iteration_metrics,
    long_lived_objects_frozen,
    run_training,
)

ENV_KWARGS = {"max_cycles": 25}
TINY = {
    "ppo": {"train_batch_size_per_learner": 100, "minibatch_size": 50, "num_epochs": 1},
    "a2c": {"train_batch_size_per_learner": 100},
    "dqn": {
        "train_batch_size_per_learner": 16,
        "num_steps_sampled_before_learning_starts": 20,
        "min_sample_timesteps_per_iteration": 50,
        "model_config.fcnet_hiddens": [16],
    },
}
FAIRNESS_TAGS = ["utilization", "cv", "average_utility", "min_utility", "max_utility"]


pytestmark = pytest.mark.usefixtures("local_ray")


def _config(env, algo, mode, **kw):
    return build_config(
        env, algo, mode, seed=1, num_env_runners=0, envs_per_runner=2,
        overrides=TINY[algo], env_kwargs=ENV_KWARGS, **kw,
    )


def _tags(logdir):
    acc = EventAccumulator(str(logdir / "tb"))
    acc.Reload()
    return acc


@pytest.mark.parametrize("mode", POLICY_MODES)
@pytest.mark.parametrize("env", FEN_ENVS)
@pytest.mark.parametrize("algo", ALGOS)
def test_one_iteration_metrics_in_result_and_tensorboard(algo, env, mode, tmp_path):
    info = {"env": env, "algo": algo, "policy_mode": mode}
    summary = run_training(
        _config(env, algo, mode), iterations=1, logdir=tmp_path, run_info=info, verbose=False
    )
    assert summary["training_iteration"] == 1 and summary["env_steps"] > 0
    env_results = summary["result"]["env_runners"]
    for tag in FAIRNESS_TAGS:
        assert f"fairness/{tag}" in env_results
    assert 0.0 <= env_results["fairness/utilization"] <= 1.0
    agents = [k for k in env_results if k.startswith("agent_return/")]
    assert len(agents) >= 4
    metrics = summary["metrics"]
    assert metrics["throughput/agent_steps_per_s"] > 0
    modules = ["shared"] if mode == "shared" else ["agent_0"]
    loss = "qf_loss" if algo == "dqn" else "policy_loss"
    acc = _tags(tmp_path)
    scalars = acc.Tags()["scalars"]
    # the run's config once, as text: run_info and the fields that differ from defaults
    (text,) = acc.Tensors("config/text_summary")
    config_md = text.tensor_proto.string_val[0].decode()
    assert f'"env": "{env}"' in config_md and '"config": {' in config_md
    batch = TINY[algo]["train_batch_size_per_learner"]
    assert f'"_train_batch_size_per_learner": {batch}' in config_md
    for tag in [f"fairness/{t}" for t in FAIRNESS_TAGS] + [
        "agent_return/agent_0", "throughput/agent_steps_per_s", "episode/return_mean",
    ]:
        assert tag in scalars, tag
    if algo != "dqn":  # DQN may not have trained yet in one tiny iteration
        assert f"loss/{modules[0]}/{loss}" in scalars
    # learner diagnostics and per-module sample counts; no copies, timers or agent ids
    assert any(t.startswith(f"learners/{modules[0]}/") for t in scalars)
    assert any(t.startswith("env_runners/num_module_steps_sampled/") for t in scalars)
    assert not any(t.startswith(("env_runners/fairness/", "env_runners/agent_return/",
                                 "env_runners/num_agent_steps", "learners/__all_modules__"))
                   or "timer" in t for t in scalars), scalars
    assert json.loads((tmp_path / RUN_INFO_FILE).read_text())["env"] == env


def test_checkpoint_resume_continues(tmp_path):
    env, algo, mode = "job_scheduling", "ppo", "independent"
    info = {"env": env, "algo": algo, "policy_mode": mode}
    first = run_training(
        _config(env, algo, mode), iterations=2, logdir=tmp_path, checkpoint_every=1,
        run_info=info, verbose=False,
    )
    ckpt1 = tmp_path / "checkpoints" / "iter_000001"
    assert ckpt1.is_dir() and first["training_iteration"] == 2
    resumed = run_training(
        _config(env, algo, mode), iterations=2, logdir=tmp_path / "resumed", resume=ckpt1,
        run_info=info, verbose=False,
    )
    assert resumed["training_iteration"] == 3 and resumed["iterations"] == 2
    # lifetime counters continue from the checkpoint (not from 0)
    steps_iter1 = first["env_steps"] / 2
    assert resumed["env_steps"] >= steps_iter1 + 2 * 100 - 1
    steps = [e.step for e in _tags(tmp_path / "resumed").Scalars("fairness/utilization")]
    assert steps == [2, 3]
    # resuming with another env is refused
    with pytest.raises(ValueError, match="env='job_scheduling'"):
        run_training(
            _config("matthew_effect", algo, mode), iterations=1, logdir=tmp_path / "x",
            resume=ckpt1, run_info={**info, "env": "matthew_effect"}, verbose=False,
        )


def test_resume_restores_optimizer_state(tmp_path):
    env, algo, mode = "job_scheduling", "a2c", "shared"
    cfg = _config(env, algo, mode)
    info = {"env": env, "algo": algo, "policy_mode": mode}
    run_training(cfg, iterations=1, logdir=tmp_path, run_info=info, verbose=False)
    ckpt = tmp_path / "checkpoints" / "iter_000001"
    algo_a = _config(env, algo, mode).build_algo()
    try:
        algo_a.restore_from_path(str(ckpt))
        state = algo_a.learner_group.get_state()["learner"]
        opt = state["optimizer"]
        assert algo_a.iteration == 1
        # Adam has taken one step: its step counter is stored and restored
        flat = json.dumps(opt, default=lambda o: str(o))
        assert "step" in flat
    finally:
        algo_a.stop()


def test_evaluate_checkpoint(tmp_path):
    info = {"env": "matthew_effect", "algo": "a2c", "policy_mode": "shared"}
    s = run_training(
        _config("matthew_effect", "a2c", "shared"), iterations=1, logdir=tmp_path,
        run_info=info, verbose=False,
    )
    report = evaluate_checkpoint(s["checkpoint"], episodes=2)
    assert report["episodes"] == 2 and len(report["per_agent_utility"]) == 10
    assert 0.0 <= report["utilization"] <= 1.0
    assert report["min_utility"] <= report["max_utility"]
    with pytest.raises(ValueError, match="not 'job_scheduling'"):
        evaluate_checkpoint(s["checkpoint"], episodes=1, env="job_scheduling")
    with pytest.raises(ValueError, match="does not exist"):
        evaluate_checkpoint(tmp_path / "nope", episodes=1)
    # a pinned module is not asked: greedy and sampled rollouts take the same actions
    pinned = [evaluate_checkpoint(s["checkpoint"], episodes=1, sample=sample,
                                  fixed_actions={"shared": 1}) for sample in (False, True)]
    assert pinned[0]["per_episode"] == pinned[1]["per_episode"]
    assert pinned[0]["fixed_actions"] == {"shared": 1}
    with pytest.raises(ValueError, match="cannot fix module 'ctrl'"):
        evaluate_checkpoint(s["checkpoint"], episodes=1, fixed_actions={"ctrl": 0})
    with pytest.raises(ValueError, match="actions 0..4, got 5"):
        evaluate_checkpoint(s["checkpoint"], episodes=1, fixed_actions={"shared": 5})


def test_iteration_metrics_tolerates_empty_result():
    m = iteration_metrics({})
    assert m["throughput/agent_steps_per_s"] == 0.0


def test_long_lived_objects_frozen_for_the_block_only():
    import gc

    before = gc.get_freeze_count()
    with long_lived_objects_frozen():
        assert gc.get_freeze_count() > before  # what existed is out of full collections
        gc.collect()
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), long_lived_objects_frozen():
        raise RuntimeError("stop")
    assert gc.get_freeze_count() == 0
