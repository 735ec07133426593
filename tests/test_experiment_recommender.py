"""Trial kind ``recommender`` (policies/experiments/recommender_trials.py): parameter
errors, trials run directly (heuristics and a one-iteration DQN), the report's targets,
and one whole ``scripts/run_experiment.py`` run of a tiny study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from policies.experiments.recommender_trials import RECOMMENDER
from policies.experiments.report import write_report
from policies.experiments.spec import ExperimentError, parse_experiment
from policies.recommender_evaluation import METRICS

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_users": 10, "n_streamers": 12, "days": 1}


def study(**changes):
    data = {"name": "rec", "trial": {"kind": "recommender",
                                     "params": {"env_kwargs": SMALL, "episodes": 1}},
            "search": {"recommender": ["random", "repeat"]}}
    data.update(changes)
    return data


def params(**changes):
    return {**{k: p.default for k, p in RECOMMENDER.params.items()}, "env_kwargs": SMALL,
            "episodes": 1, "seed": 5, **changes}


@pytest.mark.parametrize("change, words", [
    ({"search": {"recommender": ["random", "sarsa"]}},
     ["search.recommender (trial recommender=sarsa)", "'sarsa'", "oracle", "repeat"]),
    ({"search": {"recommender": ["/abs/dqn/checkpoints/iter_000001"]}},
     ["'/abs/dqn/checkpoints/iter_000001' is an absolute path", "relative to the repository"]),
    ({"search": {"episodes": [1, 0]}}, ["search.episodes (trial episodes=0)", "0 is not an "
                                        "integer >= 1"]),
    ({"search": {"seed": [-1]}}, ["search.seed", "-1 is not an integer >= 0"]),
    ({"search": {"rerank_beta": [float("inf")]}}, ["search.rerank_beta", "inf", "> 0"]),
    ({"search": {"masked": ["yes"]}}, ["search.masked", "'yes' is not true or false"]),
    ({"trial": {"kind": "recommender", "params": {"env_kwargs": {"n_user": 3}}}},
     ["trial.params.env_kwargs", "['n_user']", "n_users"]),
    ({"trial": {"kind": "recommender", "params": {"env_kwargs": {"n_users": -3}}}},
     ["env_kwargs {'n_users': -3}", "n_users"]),
    ({"trial": {"kind": "recommender", "params": {"rerank_beta": 3}}},
     ["rerank_beta 3 re-ranks a DQN's Q-values", "'random' is a heuristic"]),
    ({"report": {"target": {}}}, ["report: unknown key(s) ['target']", "targets"]),
])
def test_bad_parameters_name_the_value(change, words):
    with pytest.raises(ExperimentError) as e:
        parse_experiment(study(**change))
    for word in words:
        assert word in str(e.value)


def test_heuristic_trials_run_directly_on_the_same_episodes():
    random = RECOMMENDER.run(params(recommender="random"), None)
    oracle = RECOMMENDER.run(params(recommender="oracle"), None)
    assert set(METRICS) <= set(random["metrics"]) and set(RECOMMENDER.metrics) <= set(
        random["metrics"])
    assert all(isinstance(v, float) for v in random["metrics"].values())
    assert random["metrics"]["episodes"] == 1.0 and random["metrics"]["invalid_rate"] == 0.0
    assert oracle["metrics"]["watch_time_per_user"] > random["metrics"]["watch_time_per_user"]
    assert RECOMMENDER.run(params(recommender="random"), None) == random  # seeded
    other = RECOMMENDER.run(params(recommender="random", seed=6), None)
    assert other["metrics"] != random["metrics"]


def _summary(name, point, **metrics):
    return {"trial": name, "kind": "recommender", "params": params(**point), "point": point,
            "metrics": {"watch_time_per_user": 50.0, "hr10": 0.5, "exposure_gini": 0.8,
                        "active_streamers": 10.0, **metrics}}


def test_report_targets_and_the_rows_of_imported_trials(tmp_path):
    exp = parse_experiment(study(report={"targets": {
        "model": "dqn", "heuristic": "recommender=repeat", "fairness": ["fair"]}}))
    summaries = [_summary("recommender=random", {"recommender": "random"}),
                 _summary("recommender=repeat", {"recommender": "repeat"}),
                 _summary("dqn", {"recommender": "runs/dqn/checkpoints/iter_000002"},
                          watch_time_per_user=60.0, hr10=0.4),
                 _summary("fair", {"recommender": "runs/dqn/checkpoints/iter_000002",
                                   "rerank_beta": 3}, watch_time_per_user=54.0,
                          active_streamers=11.0)]
    write_report(exp, summaries, tmp_path, ["cmd"])
    text = (tmp_path / "report.md").read_text()
    assert "* `dqn`: recommender=runs/dqn/checkpoints/iter_000002\n" in text
    assert "* `fair`: recommender=runs/dqn/checkpoints/iter_000002, rerank_beta=3" in text
    assert ("* `dqn` vs `recommender=repeat`, watch time per user: 60.000 vs 50.000 -> met"
            in text)
    assert "* `dqn` vs `recommender=repeat`, HR@10: 0.400 vs 0.500 -> MISSED" in text
    assert ("* `fair` vs `dqn`: active streamers 11.0 vs 10.0 (+1.0), exposure Gini 0.800 vs "
            "0.800, watch time 54.0 vs 60.0 (10.0% cost) -> keeps more streamers") in text
    bad = parse_experiment(study(report={"targets": [{"model": "dqn", "fairness": ["nope"]}]}))
    with pytest.raises(ValueError, match=r"report.targets\[0\].fairness: 'nope' is no trial"):
        write_report(bad, summaries, tmp_path, ["cmd"])


def test_run_experiment_end_to_end(tmp_path):
    """A two-trial study through scripts/run_experiment.py (local Ray), then the same report
    again from its trials/ alone (--report-only)."""
    path = tmp_path / "rec" / "experiment.yaml"
    path.parent.mkdir()
    path.write_text(json.dumps(study()))  # JSON is YAML
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    base = [sys.executable, str(ROOT / "scripts" / "run_experiment.py"), str(path),
            "--out", str(path.parent)]
    run = subprocess.run([*base, "--storage", str(tmp_path / "tune"), "--num-cpus", "1",
                          "--max-concurrent", "1"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    trials = {p.name: json.loads(p.read_text()) for p in (path.parent / "trials").glob("*")}
    assert set(trials) == {"recommender=random.json", "recommender=repeat.json"}
    repeat = trials["recommender=repeat.json"]
    assert repeat["source"] == "run_experiment" and repeat["params"]["episodes"] == 1
    assert repeat["metrics"] == RECOMMENDER.run(params(recommender="repeat", seed=10_000),
                                                None)["metrics"]
    report = (path.parent / "report.md").read_text()
    assert "| recommender=repeat | 1 | - | " in report
    again = subprocess.run([*base, "--report-only"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (path.parent / "report.md").read_text() == report


# ------------------------------------------------------------------ a DQN checkpoint
@pytest.mark.parametrize("action_mask", [False, True])
def test_dqn_checkpoint_trials(tmp_path, monkeypatch, action_mask):
    import ray

    from policies.config import build_config
    from policies.training import init_ray, run_training

    tiny = {"n_users": 6, "n_streamers": 8, **({"action_mask": True} if action_mask else {})}
    init_ray(None, num_cpus=2)
    try:
        config = build_config(
            "live_recommendation", "dqn", "shared", seed=0, num_env_runners=0,
            envs_per_runner=1, env_kwargs=tiny,
            overrides={"train_batch_size_per_learner": 16, "training_intensity": 16,
                       "num_steps_sampled_before_learning_starts": 0,
                       "min_sample_timesteps_per_iteration": 10, "dueling": True,
                       "model_config.fcnet_hiddens": [16]})
        info = {"env": "live_recommendation", "algo": "dqn", "policy_mode": "shared",
                "command": "train.py --env live_recommendation --algo dqn"}
        summary = run_training(config, iterations=1, logdir=tmp_path / "run",
                               run_info=info, verbose=False)
    finally:
        ray.shutdown()
    assert summary["metrics"]["fairness/active_streamers"] <= 8
    if action_mask:  # epsilon-greedy exploration only drew live streamers
        assert summary["metrics"]["fairness/invalid_rate"] == 0.0
    world = {"n_users": 6, "n_streamers": 8}  # the evaluation env: the mask is no change
    ckpt = summary["checkpoint"]
    RECOMMENDER.check_trial(params(recommender=ckpt, env_kwargs=world))
    dqn = RECOMMENDER.run(params(recommender=ckpt, env_kwargs=world), None)
    assert dqn["trained_by"] == info["command"] and dqn["mask_in_module"] is action_mask
    assert set(METRICS) <= set(dqn["metrics"]) and dqn["metrics"]["invalid_rate"] == 0.0
    unmasked = RECOMMENDER.run(params(recommender=ckpt, env_kwargs=world, masked=False), None)
    if action_mask:  # the module masks its own Q-values: serving unmasked is the same
        assert unmasked["metrics"] == dqn["metrics"]
    reranked = RECOMMENDER.run(params(recommender=ckpt, env_kwargs=world, rerank_beta=100.0),
                               None)
    assert reranked["metrics"]["active_streamers"] >= 0
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "run_info.json").write_text((Path(ckpt) / "run_info.json").read_text())
    for bad, words in (
            (params(recommender=ckpt, env_kwargs={"n_users": 7, "n_streamers": 8}),
             "was trained with env kwargs {'n_users': 6}"),
            (params(recommender=str(tmp_path / "nope"), env_kwargs=world), "does not exist"),
            (params(recommender=str(partial), env_kwargs=world), "not a complete checkpoint")):
        with pytest.raises(ValueError, match=words):
            RECOMMENDER.check_trial(bad)
    import policies.training

    opened = policies.training.open_checkpoint(ckpt)  # the same checkpoint, another env's
    monkeypatch.setattr(policies.training, "open_checkpoint",
                        lambda path: (opened[0], {**opened[1], "env": "job_scheduling"}))
    with pytest.raises(ValueError, match="'dqn' policy for env 'job_scheduling'; allowed: a "
                                         "dqn one for 'live_recommendation'"):
        RECOMMENDER.check_trial(params(recommender=ckpt, env_kwargs=world))
