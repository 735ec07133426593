"""AlgorithmConfigs: algorithms, policy modes, run settings, --set overrides."""

import pytest

from policies.a2c import A2CConfig
from policies.callbacks import FairnessCallbacks
from policies.config import (
    SHARED_MODULE_ID,
    apply_overrides,
    apply_run_settings,
    build_config,
    parse_overrides,
)


@pytest.mark.parametrize(
    "algo,cls", [("ppo", "PPOConfig"), ("dqn", "DQNConfig"), ("a2c", "A2CConfig")]
)
def test_build_config_modes(algo, cls):
    ind = build_config("job_scheduling", algo, "independent", seed=3)
    assert type(ind).__name__ == cls
    assert set(ind.policies) == {f"agent_{i}" for i in range(4)}
    assert ind.policy_mapping_fn("agent_2", None) == "agent_2"
    shared = build_config("matthew_effect", algo, "shared", seed=3)
    assert set(shared.policies) == {SHARED_MODULE_ID}
    assert shared.policy_mapping_fn("agent_7", None) == SHARED_MODULE_ID
    assert shared.env_config["seed"] == 3 and shared.seed == 3
    assert shared.restart_failed_env_runners
    assert shared.callbacks_class is FairnessCallbacks


def test_apply_run_settings_on_foreign_config():
    cfg = apply_run_settings(A2CConfig(), seed=7, num_env_runners=2, envs_per_runner=4)
    assert (cfg.num_env_runners, cfg.num_envs_per_env_runner) == (2, 4)
    assert cfg.env_config == {"seed": 7, "torch_threads": 1}
    with pytest.raises(ValueError, match="envs_per_runner"):
        apply_run_settings(A2CConfig(), seed=0, num_env_runners=0, envs_per_runner=0)


def test_overrides():
    assert parse_overrides(["lr=1e-3", "model_config.fcnet_hiddens=[32, 32]", "x=abc"]) == {
        "lr": 1e-3, "model_config.fcnet_hiddens": [32, 32], "x": "abc",
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])
    cfg = build_config(
        "job_scheduling", "ppo", "shared",
        overrides={"lr": 1e-3, "num_epochs": 2, "model_config.fcnet_hiddens": [16]},
    )
    assert cfg.lr == 1e-3 and cfg.num_epochs == 2 and cfg.model_config["fcnet_hiddens"] == [16]
    with pytest.raises(ValueError, match="unknown config field 'lrr'"):
        apply_overrides(cfg, {"lrr": 1})
    for key, sizes in (("model_config.fcnet_hiddens", [0]), ("model_config.fcnet_hiddens", []),
                       ("model_config.head_fcnet_hiddens", [8, "x"]),
                       ("model_config", {"fcnet_hiddens": 16})):
        with pytest.raises(ValueError, match=r"fcnet_hiddens: must be a .*list of integers "
                                             r">= 1 \(layer sizes\)"):
            apply_overrides(cfg, {key: sizes})
    apply_overrides(cfg, {"model_config.head_fcnet_hiddens": []})  # no head layers: fine
    dqn = build_config(
        "job_scheduling", "dqn", "shared", overrides={"replay_buffer_config.capacity": 99}
    )
    assert dqn.replay_buffer_config["capacity"] == 99


@pytest.mark.parametrize(
    "args,match",
    [
        (("nope", "ppo", "shared"), "unknown environment 'nope'"),
        (("job_scheduling", "sac", "shared"), "unknown algorithm 'sac'"),
        (("job_scheduling", "ppo", "both"), "unknown policy mode 'both'"),
    ],
)
def test_bad_names(args, match):
    with pytest.raises(ValueError, match=match):
        build_config(*args)


def test_bad_env_kwarg():
    with pytest.raises(ValueError, match="unknown keyword"):
        build_config("job_scheduling", "ppo", "shared", env_kwargs={"max_cyclez": 3})


def test_progress_line_never_prints_nan():
    from policies.training import progress_line

    last: dict = {}
    first = progress_line({"training_iteration": 1, "time_this_iter_s": 1.0,
                           "env_runners": {"num_agent_steps_sampled": float("nan")}}, last)
    assert "nan" not in first and "utilization     -" in first and "agent-steps/s        -" in first
    ok = {"training_iteration": 2, "time_this_iter_s": 2.0, "env_runners": {
        "num_agent_steps_sampled": {"agent_0": 100}, "num_env_steps_sampled_lifetime": 20,
        "fairness/utilization": 0.5, "fairness/cv": 1.25, "episode_return_mean": 3.0}}
    assert "utilization 0.500 | CV 1.250" in progress_line(ok, last)
    stale = {"training_iteration": 3, "time_this_iter_s": 2.0,
             "env_runners": {"num_agent_steps_sampled": float("nan")}}
    line = progress_line(stale, last)
    assert "nan" not in line and "utilization 0.500*" in line and "agent-steps/s       50*" in line


def test_iteration_metrics_accept_numpy_scalars():
    import numpy as np

    from policies.training import iteration_metrics

    m = iteration_metrics({"env_runners": {"episode_return_mean": np.float32(3.5),
                                           "episode_len_mean": float("nan")}})
    assert m["episode/return_mean"] == 3.5 and "episode/len_mean" not in m


def _fen_like_result() -> dict:
    """A result shaped like a FEN iteration's: per-period agent ids, NaN counts for the
    ids that did not act, the fairness figures, timers and RLlib's bookkeeping."""
    nan = float("nan")
    counts = {"agent_0/sub/0/7": 25.0, "agent_0/sub/1/6": nan, "agent_0/ctrl/7": 1.0,
              "agent_1/sub/2/7": 25.0}
    return {
        "training_iteration": 3, "time_this_iter_s": 2.0,
        "env_runners": {
            "num_agent_steps_sampled": counts, "num_agent_steps_sampled_lifetime": counts,
            "num_env_steps_sampled": 50, "num_module_steps_sampled": {"sub0": 25, "ctrl": 1},
            "fairness/cv": 0.2, "fairness/utilization": 0.9, "agent_return/agent_0": 3.0,
            "timers": {"connectors": {"numpy_to_tensor": 0.001}}, "env_step_timer": 0.01,
        },
        "learners": {
            "__all_modules__": {"num_env_steps_trained": 50, "learner_connector": {"t": 1.0}},
            "sub0": {"policy_loss": 0.5, "entropy": 1.2, "curr_kl_coeff": 0.2,
                     "num_module_steps_trained": 25, "weights_seq_no": 3,
                     "num_module_steps_trained_lifetime_throughput": {"x": 5.0}},
            "fen": {"discriminator_accuracy": 0.6},
        },
    }


def test_agent_steps_ignore_nan_counts_of_idle_agent_ids():
    from policies.training import iteration_metrics, progress_line

    m = iteration_metrics(_fen_like_result())
    assert m["throughput/agent_steps_per_s"] == pytest.approx(51.0 / 2.0)
    last: dict = {}
    line = progress_line(_fen_like_result(), last)
    assert "agent-steps/s       26 |" in line  # 25.5, not NaN, not a stale value


def test_tensorboard_tags_are_few_and_stable():
    from policies.training import all_scalars

    tags = all_scalars(_fen_like_result())
    assert not [t for t in tags if "/sub/" in t or "/ctrl/" in t or "timer" in t]
    assert not [t for t in tags if t.startswith(("env_runners/fairness", "env_runners/agent_"))]
    assert tags["fairness/cv"] == 0.2 and tags["loss/sub0/policy_loss"] == 0.5
    assert tags["learners/sub0/curr_kl_coeff"] == 0.2
    assert tags["learners/fen/discriminator_accuracy"] == 0.6
    assert tags["env_runners/num_module_steps_sampled/ctrl"] == 1
    assert "learners/sub0/policy_loss" not in tags  # once, as loss/sub0/policy_loss
    assert "learners/sub0/weights_seq_no" not in tags
    assert not [t for t in tags if t.startswith("learners/__all_modules__")]
