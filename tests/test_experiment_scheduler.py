"""The cluster-scheduling studies on the experiment layer: trial kind ``scheduler``
(a heuristic scheduler on ``resource_allocation``), its parameter errors, a trial run
directly and through ``run_experiment.py``, and the committed studies
(``results/resource_allocation_{heuristics,a2c,ppo,fen}/``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policies.experiments.cli import main
from policies.experiments.report import load_summaries
from policies.experiments.scheduler_trials import SCHEDULER, episode_kwargs, run
from policies.experiments.spec import ExperimentError, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("resource_allocation_heuristics", "resource_allocation_a2c",
           "resource_allocation_ppo", "resource_allocation_fen")


def params(**changes):
    return {**{k: json.loads(json.dumps(p.default)) for k, p in SCHEDULER.params.items()},
            "scheduler": "sjf", **changes}


def scheduler_experiment(**trial_params):
    return {"name": "tiny", "trial": {"kind": "scheduler",
                                      "params": {"scheduler": "sjf", **trial_params}}}


@pytest.mark.parametrize("trial_params, message", [
    ({"scheduler": "lottery"}, "trial.params.scheduler: unknown scheduler 'lottery'; allowed: "
                               "['fifo', 'sjf', 'packer', 'tetris', 'drf', 'central_sjf']"),
    ({"env_kwargs": {"lod": 0.7}}, "unknown env kwarg(s) ['lod']"),
    ({"env_kwargs": {"arrival_cycles": 50}}, "set drain_cycles, not arrival_cycles"),
    ({"episodes": 0}, "trial.params.episodes: 0 is not an integer >= 1"),
    ({"drain_cycles": -1}, "trial.params.drain_cycles: -1 is not an integer >= 0"),
    ({"eval_seed": "a"}, "trial.params.eval_seed: 'a' is not an integer >= 0"),
])
def test_bad_scheduler_params_name_the_value(trial_params, message):
    with pytest.raises(ExperimentError) as e:
        parse_experiment(scheduler_experiment(**trial_params))
    assert message in str(e.value)


def test_a_searched_bad_scheduler_names_its_trial_and_stop_is_refused():
    data = {**scheduler_experiment(), "search": {"scheduler": ["sjf", "srpt"]}}
    with pytest.raises(ExperimentError, match=r"search.scheduler \(trial scheduler=srpt\): "
                                              r"unknown scheduler 'srpt'"):
        parse_experiment(data)
    with pytest.raises(ExperimentError, match="kind 'scheduler' does not train"):
        parse_experiment({**scheduler_experiment(), "stop": {"iterations": 3}})
    with pytest.raises(ExperimentError, match="'seed' is no parameter of kind 'scheduler'"):
        parse_experiment({**scheduler_experiment(), "search": {"seed": [0, 1]}})


@pytest.mark.parametrize("learner_params, message", [
    ({"warm_start": "best"}, "'best'"),
    ({"eval_actions": "argmax"}, "eval_actions: 'argmax' is not allowed; allowed: "
                                 "['greedy', 'sampled']"),
])
def test_bad_learner_params_name_the_value(learner_params, message):
    for kind, extra in (("rllib", {"algo": "ppo"}), ("fen", {})):
        with pytest.raises(ExperimentError) as e:
            parse_experiment({"name": "tiny", "stop": {"iterations": 1}, "trial": {
                "kind": kind, "params": {"env": "resource_allocation", **extra,
                                         **learner_params}}})
        assert message in str(e.value)


def test_a_trial_runs_the_scheduler_on_seeded_episodes():
    one = run(params(scheduler="central_sjf", episodes=2,
                     env_kwargs={"load": 1.1, "max_cycles": 30}))
    assert one == run(params(scheduler="central_sjf", episodes=2,
                             env_kwargs={"load": 1.1, "max_cycles": 30}))  # seeded
    assert one["episodes"] == "10000..10001" and len(one["per_episode"]["cv"]) == 2
    assert one["metrics"]["refused_requests"] == 0  # a cluster-wide plan always fits
    plain = run(params(episodes=2, env_kwargs={"load": 1.1, "max_cycles": 30}))
    drained = run(params(episodes=2, env_kwargs={"load": 1.1, "max_cycles": 30},
                         drain_cycles=100))
    assert episode_kwargs(params(env_kwargs={"load": 1.1, "max_cycles": 30},
                                 drain_cycles=100)) == {
        "load": 1.1, "max_cycles": 130, "arrival_cycles": 30}
    assert drained["metrics"]["unfinished_jobs"] == 0 < plain["metrics"]["unfinished_jobs"]
    assert 30 < drained["metrics"]["makespan"] <= 130
    assert drained["metrics"]["avg_slowdown"] >= plain["metrics"]["avg_slowdown"]


def test_a_committed_heuristic_row_is_what_the_kind_computes():
    """Tetris at load 0.7 (the best baseline there, 2.41): the committed trial's figures
    are the kind's on the same 10 episodes."""
    folder = ROOT / "results" / "resource_allocation_heuristics" / "trials"
    summary = json.loads(
        (folder / "drain_cycles=0,env_kwargs.load=0.7,scheduler=tetris.json").read_text())
    again = run(summary["params"])
    assert again["metrics"] == pytest.approx(summary["metrics"])
    assert round(again["metrics"]["avg_slowdown"], 2) == 2.41


def test_run_experiment_end_to_end(tmp_path):
    """Two trials through scripts/run_experiment.py, then the report."""
    spec = tmp_path / "experiment.yaml"
    spec.write_text("name: tiny_schedulers\ntrial:\n  kind: scheduler\n  params: "
                    "{env_kwargs: {load: 1.1, max_cycles: 20}, episodes: 1}\n"
                    "search:\n  scheduler: [sjf, drf]\n")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_experiment.py"), str(spec),
                        "--out", str(tmp_path / "out"), "--max-concurrent", "1"],
                       capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    summaries = load_summaries(tmp_path / "out" / "trials")
    assert [s["trial"] for s in summaries] == ["scheduler=drf", "scheduler=sjf"]
    direct = run(params(scheduler="drf", episodes=1, env_kwargs={"load": 1.1, "max_cycles": 20}))
    assert summaries[0]["metrics"] == pytest.approx(direct["metrics"])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| scheduler=sjf | 1 |" in report and "Best of the issue's baselines" in report


@pytest.mark.parametrize("name", STUDIES[1:])
def test_report_only_on_a_copy_rewrites_the_same_report(tmp_path, monkeypatch, name):
    """A fresh clone rewrites a learner study's report from its committed files alone."""
    study = tmp_path / "results" / name
    shutil.copytree(ROOT / "results" / name, study)
    (study / "report.md").unlink()
    (study / "report.json").unlink()
    monkeypatch.chdir(tmp_path)
    assert main([f"results/{name}/experiment.yaml", "--out", f"results/{name}",
                 "--report-only"]) == 0
    committed = ROOT / "results" / name
    assert (study / "report.md").read_text() == (committed / "report.md").read_text()


@pytest.mark.parametrize("name", STUDIES[1:])
def test_imported_trials_match_their_grid_or_have_names_of_their_own(name):
    folder = ROOT / "results" / name
    exp = load_experiment(folder / "experiment.yaml")
    grid = {t.name: t for t in exp.trials()}
    summaries = load_summaries(folder / "trials")
    assert len(summaries) > len(grid)
    for s in summaries:
        assert s["source"].startswith("imported: results/resource_allocation_")
        assert {"avg_slowdown", "utilization"} <= set(s["metrics"])
        if s["trial"] in grid:
            assert s["params"] == grid[s["trial"]].params
            assert s["iterations"] == exp.stop.iterations
        else:
            assert "=" not in s["trial"]


def test_no_machine_paths_in_the_studies():
    for name in STUDIES:
        for path in (ROOT / "results" / name).rglob("*"):
            if path.is_file() and path.suffix in (".json", ".md", ".yaml"):
                assert "/work/" not in path.read_text(), path
