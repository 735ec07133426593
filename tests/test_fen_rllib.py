"""FEN on RLlib: one tiny training iteration of every variant, the learner connector."""

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from policies.fen.config import build_fen_config  # noqa: E402
from policies.fen.controller_prior import (  # noqa: E402
    PriorControllerTorchRLModule,
    check_sub0_prob,
    prior_logits,
)
from policies.fen.variants import (  # noqa: E402
    VARIANTS,
    module_ids,
    options_for,
    parse_sub_module_id,
)

TINY = {"train_batch_size_per_learner": 240, "minibatch_size": 120, "num_epochs": 1}



def _tiny(variant, options=None, **kw):
    return build_fen_config(
        "job_scheduling", variant, seed=0, num_env_runners=0, envs_per_runner=2,
        env_kwargs={"max_cycles": 30},
        fen_options=options_for(variant, {"period": 10, **(options or {})}),
        overrides=TINY, **kw,
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_training_iteration_of_every_variant(local_ray, variant):
    algo = _tiny(variant).build_algo()
    try:
        result = algo.train()
        env_stats = result["env_runners"]
        assert 0.0 <= env_stats["fairness/utilization"] <= 1.0
        assert env_stats["fairness/cv"] >= 0.0
        learner_stats = result["learners"]
        expected = module_ids(variant, "shared", [f"agent_{i}" for i in range(4)], 4)
        trained = [m for m in expected if m in learner_stats]
        assert trained, f"no module of {expected} was trained: {sorted(learner_stats)}"
        for mid in trained:
            assert np.isfinite(learner_stats[mid]["total_loss"])
        if variant in ("fen", "fen_gossip"):
            assert 0.0 <= learner_stats["fen"]["discriminator_accuracy"] <= 1.0
            assert learner_stats["fen"]["intrinsic_reward"] <= 0.0  # log p <= 0
            assert "fairness/controller/choice_freq/sub0" in env_stats
            assert "fairness/fair_efficient_reward" in env_stats
    finally:
        algo.stop()


def test_controllers_start_at_the_given_probability_of_sub_policy_0(local_ray):
    config = _tiny("fen", {"controller_sub0_prob": 0.8})
    specs = config.rl_module_spec.rl_module_specs
    assert specs["ctrl"].module_class is PriorControllerTorchRLModule
    assert specs["sub1"].module_class is not PriorControllerTorchRLModule
    assert _tiny("fen").rl_module_spec.rl_module_specs["ctrl"].module_class is not (
        PriorControllerTorchRLModule)
    space = specs["ctrl"].observation_space
    space.seed(0)
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(16)]), dtype=torch.float32)
    algo = config.build_algo()
    try:
        # the env runner's controller, synced from the learner's: the prior, whatever the obs
        logits = algo.get_module("ctrl").forward_inference({"obs": obs})["action_dist_inputs"]
        probs = torch.softmax(logits, dim=-1).detach().numpy()
        assert np.allclose(probs, [0.8, 0.2 / 3, 0.2 / 3, 0.2 / 3], atol=0.01)
        result = algo.train()  # a fresh controller picks sub-policy 0 ~1/4 of the time
        assert result["env_runners"]["fairness/controller/choice_freq/sub0"] > 0.5
        assert np.isfinite(result["learners"]["ctrl"]["total_loss"])
    finally:
        algo.stop()


@pytest.mark.parametrize("p", [0.0, 1.0, -0.2, True])
def test_controller_sub0_prob_must_be_a_probability(p):
    with pytest.raises(ValueError, match=r"must be a probability in \(0, 1\)"):
        _tiny("fen", {"controller_sub0_prob": p})
    with pytest.raises(ValueError, match="needs at least 2 sub-policies, got 1"):
        check_sub0_prob(0.5, 1)
    assert prior_logits(0.5, 3) == pytest.approx([np.log(0.5), np.log(0.25), np.log(0.25)])


def test_per_agent_modules_for_the_hierarchy(local_ray):
    config = _tiny("fen", policy_mode="independent")
    ids = set(config.policies)
    assert {"agent_0-ctrl", "agent_3-sub2"} <= ids and len(ids) == 4 * 5
    assert parse_sub_module_id("agent_3-sub2") == ("agent_3-ctrl", 2)
    assert parse_sub_module_id("ctrl") is None
    algo = config.build_algo()
    try:
        result = algo.train()
        assert any(m.startswith("agent_0-sub") for m in result["learners"])
    finally:
        algo.stop()


def test_intrinsic_reward_is_the_controllers_log_probability(local_ray):
    """The learner connector rewrites sub-policy rewards with log p(z | o')."""
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    from policies.fen.discriminator import DiscriminatorReward, controller_log_probs

    algo = _tiny("fen").build_algo()
    try:
        multi = algo.env_runner.module  # same weights as the learner's modules
        obs = np.random.default_rng(0).random((4, 15)).astype(np.float32)
        episode = SingleAgentEpisode(
            observations=list(obs), actions=[0, 1, 2], rewards=[0.0, 0.0, 0.0],
            module_id="sub2", len_lookback_buffer=0,
        )
        DiscriminatorReward()(rl_module=multi, batch={}, episodes=[episode])
        expected = controller_log_probs(multi["ctrl"], obs[1:])[:, 2]
        np.testing.assert_allclose(episode.get_rewards(), expected, rtol=1e-5)
        # sub-policy 0 keeps its environment reward
        ep0 = SingleAgentEpisode(
            observations=list(obs), actions=[0, 1, 2], rewards=[1.0, 0.0, 1.0],
            module_id="sub0", len_lookback_buffer=0,
        )
        DiscriminatorReward()(rl_module=multi, batch={}, episodes=[ep0])
        np.testing.assert_allclose(ep0.get_rewards(), [1.0, 0.0, 1.0])
    finally:
        algo.stop()


def test_episode_long_controllers_train(local_ray):
    config = build_fen_config(
        "job_scheduling", "fen", seed=0, num_env_runners=0, envs_per_runner=2,
        env_kwargs={"max_cycles": 30}, overrides=TINY,
        fen_options={"period": 10, "controller_horizon": "episode"},
    )
    # rhat scaled by 1 - gamma: the discounted return stays a weighted average of rhat
    assert config.env_config["fen"]["controller_reward_scale"] == pytest.approx(0.02)
    algo = config.build_algo()
    try:
        result = algo.train()
        ctrl = result["learners"]["ctrl"]
        assert np.isfinite(ctrl["policy_loss"]) and np.isfinite(ctrl["vf_loss"])
        assert ctrl["num_module_steps_trained"] > 0
        assert 0.0 <= result["env_runners"]["fairness/utilization"] <= 1.0
    finally:
        algo.stop()


def test_controller_entropy_overrides_only_the_controllers():
    config = build_fen_config(
        "job_scheduling", "fen", num_env_runners=0,
        fen_options={"controller_entropy": 0.005, "feature_scale": 10.0},
    )
    assert config.get_config_for_module("ctrl").entropy_coeff == 0.005
    assert config.get_config_for_module("sub0").entropy_coeff == 0.03
    assert config.get_config_for_module("sub1").entropy_coeff == 0.03
    ctrl_space = config.rl_module_spec.rl_module_specs["ctrl"].observation_space
    assert ctrl_space.low[-2] == -10.0


@pytest.mark.parametrize("option", ["controller_entropy", "subpolicy0_entropy"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, "0.1", True])
def test_entropy_options_must_be_finite_numbers_at_least_0(option, value):
    """What an experiment file's fen_options pass (train_fen.py checks its flags too)."""
    with pytest.raises(ValueError, match=f"fen option {option} must be a finite number >= 0"):
        build_fen_config("job_scheduling", "fen", num_env_runners=0,
                         fen_options={option: value})


@pytest.mark.parametrize("policy_mode, sub1", [("shared", "sub0"), ("independent", "agent_2-sub0")])
def test_subpolicy0_entropy_overrides_only_sub_policy_0(policy_mode, sub1):
    config = build_fen_config(
        "job_scheduling", "fen", num_env_runners=0, policy_mode=policy_mode,
        fen_options={"subpolicy0_entropy": 0.002, "controller_entropy": 0.01},
    )
    entropy = {m: config.get_config_for_module(m).entropy_coeff
               for m in config.rl_module_spec.rl_module_specs}
    assert entropy[sub1] == 0.002
    sub0_modules = [m for m, c in entropy.items() if m.endswith("sub0")]
    assert all(entropy[m] == 0.002 for m in sub0_modules)
    others = {m: c for m, c in entropy.items() if not m.endswith("sub0")}
    assert others and all(c == (0.01 if "ctrl" in m else 0.03) for m, c in others.items())


def test_bad_variant_and_env_are_rejected():
    with pytest.raises(ValueError, match="unknown FEN variant 'fenn'"):
        build_fen_config("job_scheduling", "fenn")
    with pytest.raises(ValueError, match="FEN runs on"):
        build_fen_config("chain0101", "fen")
    with pytest.raises(ValueError, match=r"unknown FEN options \['perod'\]"):
        build_fen_config("job_scheduling", "fen", fen_options={"perod": 10})
    with pytest.raises(ValueError, match=r"\['feature_scale', 'period'\] apply to other"):
        build_fen_config("job_scheduling", "avg", fen_options={"period": 10, "feature_scale": 2.0})
    build_fen_config("job_scheduling", "avg", fen_options={"period": None})  # not given
    with pytest.raises(ValueError, match=r"needs a gamma in \[0, 1\), got 1.0"):
        build_fen_config("job_scheduling", "fen", fen_options={"controller_horizon": "episode"},
                         overrides={"gamma": 1.0})


def test_train_fen_cli_checkpoint_resume_and_evaluation(local_ray, tmp_path, capsys,
                                                         load_script):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from policies.fen.train import main

    tiny = ["--env", "job_scheduling", "--variant", "fen", "--num-env-runners", "0",
            "--envs-per-runner", "2", "--period", "10", "--env-kwargs", '{"max_cycles": 30}',
            "--set", "train_batch_size_per_learner=240", "--set", "minibatch_size=120",
            "--set", "num_epochs=1", "--logdir", str(tmp_path / "run")]
    assert main([*tiny, "--iterations", "1"]) == 0
    out = capsys.readouterr().out
    assert "utilization" in out and "controllers pick: sub0" in out
    assert "tensorboard --logdir" in out
    assert "FEN, paper" in out and "random play" in out
    checkpoint = (tmp_path / "run" / "latest_checkpoint.txt").read_text().strip()
    # the defaults typed out (M = 4 sub-policies, grid_size 5) resume the same run
    assert main([*tiny, "--iterations", "1", "--resume", checkpoint, "--subpolicies", "4",
                 "--env-kwargs", '{"max_cycles": 30, "grid_size": 5}']) == 0
    assert "now at 2" in capsys.readouterr().out
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "evaluate.py"), "--checkpoint", checkpoint,
         "--episodes", "2", "--json", str(tmp_path / "eval.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert figures["episodes"] == 2
    assert set(figures["per_agent_utility"]) == {f"agent_{i}" for i in range(4)}
    assert 0.0 <= figures["utilization"] <= 1.0
    # the controller ablation: own controllers, then pinned to each sub-policy
    ablation = load_script("fen_controller_ablation")
    assert ablation.main(["--fen", checkpoint, "--episodes", "1",
                          "--out", str(tmp_path / "ablation.md")]) == 0
    data = json.loads((tmp_path / "ablation.json").read_text())
    rows = data["rows"]
    # sub-policy 0 acted on some of the 2 iterations' 4 x 2 x 240 agent steps
    assert 0 < data["experience"]["sub0_agent_steps"] < 4 * 2 * 240
    assert list(rows) == ["FEN, own controllers",
                          *(f"FEN, controllers pinned to {z}" for z in range(4))]
    pick = "controller/choice_freq/sub0"
    assert rows["FEN, controllers pinned to 0"][pick]["mean"] == 1.0
    assert all(rows[f"FEN, controllers pinned to {z}"][pick]["mean"] == 0.0 for z in (1, 2, 3))
    assert 0.0 < rows["FEN, own controllers"][pick]["mean"] < 1.0


def test_truncated_segments_reach_rllib_as_truncated_sub_policy_episodes(local_ray):
    config = build_fen_config(
        "job_scheduling", "fen", seed=0, num_env_runners=0, envs_per_runner=1,
        env_kwargs={"max_cycles": 30}, overrides=TINY,
        fen_options={"period": 10, "segment_end": "truncate"},
    )
    algo = config.build_algo()
    try:
        episodes = algo.env_runner.sample(num_episodes=1, random_actions=True)
        subs = {aid: ep for ma in episodes for aid, ep in ma.agent_episodes.items()
                if "/sub/" in aid}
        for aid, ep in subs.items():
            period = int(aid.split("/")[2])
            # periods 0 and 1 are cut by their time limit (GAE bootstraps them); the
            # last one ends with the episode
            assert (ep.is_truncated, ep.is_terminated) == (
                (True, False) if period < 2 else (False, True)), aid
        assert {int(a.split("/")[2]) for a in subs} == {0, 1, 2}
        result = algo.train()
        assert np.isfinite(result["learners"]["sub0"]["vf_loss"])
    finally:
        algo.stop()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--variant", "fenn"], "unknown FEN variant 'fenn'"),
        (["--gossip-graph", "star"], "unknown --gossip-graph 'star'"),
        (["--env", "chain0101"], "FEN runs on"),
        (["--policy-mode", "mixed"], "unknown --policy-mode 'mixed'"),
        (["--feature-scale", "0"], "--feature-scale must be a finite number > 0"),
        (["--feature-scale", "inf"], "--feature-scale must be a finite number > 0, got inf"),
        (["--controller-sub0-prob", "1"], "--controller-sub0-prob must be in (0, 1), got 1.0"),
        (["--variant", "avg", "--controller-sub0-prob", "0.7"], "not to variant 'avg'"),
        (["--controller-entropy", "-1"], "--controller-entropy must be a finite number >= 0"),
        (["--controller-entropy", "nan"], "--controller-entropy must be a finite number >= 0"),
        (["--subpolicy0-entropy", "-0.1"], "--subpolicy0-entropy must be a finite number >= 0"),
        (["--subpolicy0-entropy", "nan"], "--subpolicy0-entropy must be a finite number >= 0"),
        (["--env-kwargs", '{"nosuch": 1}'], "unknown keyword argument(s) ['nosuch']"),
        (["--variant", "min", "--subpolicy0-entropy", "0.01"], "not to variant 'min'"),
        (["--preset", "paper"], "unknown FEN preset 'paper'"),
        (["--variant", "fen_no_hierarchy", "--period", "10"], "not to variant 'fen_no_hierarchy'"),
        (["--model", "cnn"], "unknown --model 'cnn'"),
        (["--model", "slot_scoring"], "'job_scheduling' has none"),
        (["--efficiency", "weekly"], "unknown --efficiency 'weekly'"),
        (["--controller-horizon", "week"], "unknown --controller-horizon 'week'"),
        (["--segment-end", "cut"], "unknown --segment-end 'cut'"),
        (["--variant", "min", "--segment-end", "terminate"], "not to variant 'min'"),
        (["--variant", "avg", "--controller-horizon", "episode"], "not to variant 'avg'"),
        (["--variant", "avg", "--efficiency", "episode"], "not to variant 'avg'"),
        (["--set", "no_such_field=1"], "no_such_field"),
        (["--resume", "/nonexistent/checkpoint"], "does not exist"),
        (["--warm-start", "sjf"], "needs --env resource_allocation"),
        (["--env", "resource_allocation", "--warm-start", "best"],
         "unknown --warm-start scheduler 'best'"),
        (["--env", "resource_allocation", "--variant", "avg", "--warm-start", "sjf"],
         "hierarchical variants"),
        (["--warm-start-episodes", "3"], "--warm-start-episodes needs --warm-start"),
    ],
)
def test_train_fen_cli_rejects_bad_input_with_exit_code_2(argv, message, capsys):
    from policies.fen.train import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("model", ["mlp", "slot_scoring"])
def test_fen_sub_policies_obey_an_action_mask(local_ray, model):
    from policies.action_masking import MaskedPPOTorchRLModule
    from policies.slot_scoring import SlotScoringTorchRLModule

    config = build_fen_config(
        "resource_allocation", "fen", seed=0, num_env_runners=0, envs_per_runner=2,
        env_kwargs={"max_cycles": 30, "action_mask": True, "load": 1.1},
        fen_options={"period": 10, "model": model}, overrides=TINY)
    specs = config.rl_module_spec.rl_module_specs
    expected = MaskedPPOTorchRLModule if model == "mlp" else SlotScoringTorchRLModule
    assert specs["sub1"].module_class is expected
    assert specs["ctrl"].module_class not in (MaskedPPOTorchRLModule,  # picks sub-policies
                                              SlotScoringTorchRLModule)
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert result["env_runners"]["fairness/empty_slot_choices"] == 0
    assert result["learners"]["fen"]["intrinsic_reward"] <= 0.0


def test_slot_scoring_needs_job_slots_and_a_known_model():
    with pytest.raises(ValueError, match="'job_scheduling' has none"):
        build_fen_config("job_scheduling", "fen", fen_options={"model": "slot_scoring"})
    with pytest.raises(ValueError, match="unknown model 'cnn'"):
        build_fen_config("resource_allocation", "fen", fen_options={"model": "cnn"})


def test_train_fen_defaults_and_the_authors_preset():
    from policies.fen.train import fen_options, parse_args

    def env_fen(argv):
        args = parse_args(argv)
        config = build_fen_config("job_scheduling", args.variant, num_env_runners=0,
                                  fen_options=fen_options(args, args.variant))
        return {k: config.env_config["fen"][k] for k in ("efficiency", "segment_end")}

    assert env_fen([]) == {"efficiency": "period", "segment_end": "truncate"}
    assert env_fen(["--preset", "authors"]) == {"efficiency": "episode",
                                                "segment_end": "terminate"}
    assert env_fen(["--preset", "authors", "--segment-end", "truncate"]) == {
        "efficiency": "episode", "segment_end": "truncate"}
    # a flat variant takes the preset without complaint: it uses none of its options
    assert fen_options(parse_args(["--variant", "min", "--preset", "authors"]), "min") == {}
