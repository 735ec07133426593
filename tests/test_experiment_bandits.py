"""Trial kind ``bandit`` (policies/experiments/bandit_trials.py): parameter errors, trials
run directly (seeded, learning beats random), the report's notes and anchors, the
committed studies' reports rewritten from their trials alone, and one whole
``scripts/run_experiment.py`` run of a tiny study."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policies.experiments.bandit_trials import BANDIT, anchors
from policies.experiments.cli import main
from policies.experiments.report import load_summaries, write_report
from policies.experiments.spec import ExperimentError, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("bandits_chain0101", "bandits_gem_mining", "bandits_wind_farm")


def study(params=None, search=None, **changes):
    data = {"name": "bandit_tiny",
            "trial": {"kind": "bandit", "params": {"problem": "chain0101", "agents": 3,
                                                   "horizon": 50, "curve_points": 5,
                                                   **(params or {})}},
            "search": search if search is not None else {"algorithm": ["mauce", "random"]},
            **changes}
    return data


def params(**changes):
    return {**{k: p.default for k, p in BANDIT.params.items()}, "agents": 4, "horizon": 200,
            "curve_points": 5, **changes}


@pytest.mark.parametrize("change, words", [
    ({"search": {"algorithm": ["mauce", "ucb"]}},
     ["search.algorithm (trial algorithm=ucb)", "'ucb' is not allowed", "'mats_gaussian'"]),
    ({"params": {"problem": "chain"}},
     ["trial.params.problem", "'chain' is not allowed", "'gem_mining'", "'wind_farm'"]),
    ({"params": {"agents": 0}}, ["trial.params.agents", "0 is not an integer >= 1",
                                 "or null"]),
    ({"params": {"agents": 1}}, ["agents 1 for problem 'chain0101'", "n_agents", ">= 2"]),
    ({"params": {"problem": "wind_farm", "agents": 3}},
     ["agents 3 for problem 'wind_farm'", "allowed: 7"]),
    ({"params": {"horizon": 0}}, ["trial.params.horizon", "0 is not an integer >= 1"]),
    ({"search": {"seed": [0, -1]}}, ["search.seed (trial seed=-1)", "-1 is not an integer >= 0"]),
    ({"params": {"curve_points": 1}}, ["trial.params.curve_points", "1 is not an integer >= 2"]),
    ({"search": {"algorithm": []}}, ["search.algorithm", "[]", "non-empty list"]),
    ({"stop": {"iterations": 3}}, ["stop", "does not train"]),
    ({"report": {"curves_scale": "log"}}, ["report: unknown key(s) ['curves_scale']",
                                           "curves_yscale"]),
])
def test_bad_parameters_name_the_value(change, words):
    with pytest.raises(ExperimentError) as e:
        parse_experiment(study(**change))
    for word in words:
        assert word in str(e.value), str(e.value)


def test_trials_run_directly_are_seeded_and_summarised():
    summary = BANDIT.run(params(algorithm="mauce", seed=3), None)
    assert set(summary["metrics"]) == set(BANDIT.metrics) == {"regret", "us_per_step",
                                                             "wall_us_per_step"}
    curve = summary["curves"]["regret"]
    assert [t for t, _ in curve] == [1, 50, 100, 150, 200]  # curve_points 5
    assert summary["metrics"]["regret"] > 0
    assert curve[-1][1] == pytest.approx(summary["metrics"]["regret"], abs=1e-4)
    assert all(a[1] <= b[1] for a, b in zip(curve, curve[1:], strict=False))  # cumulative
    assert summary["env_steps"] == 200
    again = BANDIT.run(params(algorithm="mauce", seed=3), None)
    assert again["curves"] == summary["curves"]  # the seed fixes the run
    other = BANDIT.run(params(algorithm="mauce", seed=4), None)
    assert other["curves"] != summary["curves"]
    json.dumps(summary)  # a summary is JSON


def test_learning_algorithms_beat_random_on_the_chain():
    def regret(algorithm: str) -> float:
        runs = [BANDIT.run(params(algorithm=algorithm, agents=6, horizon=1000, seed=s), None)
                for s in (0, 1)]
        return sum(r["metrics"]["regret"] for r in runs) / len(runs)

    res = {a: regret(a) for a in ("mauce", "mats", "llr", "random")}
    for algorithm in ("mauce", "mats", "llr"):
        assert res[algorithm] < 0.5 * res["random"], res
    assert res["mats"] < res["llr"], res


def test_gem_mining_instances_follow_the_seed():
    a = BANDIT.run(params(problem="gem_mining", agents=None, algorithm="random", seed=0), None)
    b = BANDIT.run(params(problem="gem_mining", agents=None, algorithm="random", seed=1), None)
    assert a["metrics"]["regret"] != b["metrics"]["regret"]


def test_notes_give_the_95_ci_and_anchors_only_in_the_reference_setting(tmp_path):
    exp = parse_experiment(study(search={"algorithm": ["mauce"], "seed": [0, 1, 2]}))
    summaries = [{"trial": f"algorithm=mauce,seed={s}", "kind": "bandit",
                  "params": {**exp.params, "algorithm": "mauce", "seed": s},
                  "point": {"algorithm": "mauce", "seed": s},
                  "metrics": {"regret": float(s + 1)},
                  "curves": {"regret": [[1, 0.0], [50, float(s + 1)]]}}
                 for s in (0, 1, 2)]
    write_report(exp, summaries, tmp_path, ["cmd"])
    text = (tmp_path / "report.md").read_text()
    # mean 2, std 1 over 3 runs: 2 +- t(0.975, 2) / sqrt(3) = 2 +- 2.484
    assert "| algorithm=mauce | 3 | 2.0 | -0.5 .. 4.5 | 1.0 | 3.0 |" in text
    assert "| algorithm=mauce | 3 | - | 2.0 ±1.0 |" in text
    assert "* `mauce`: MAUCE with exact UCVE" in text and "`random`" not in text
    assert "divided by n - 1" in text
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert anchors(exp) == []
    reference = parse_experiment(study(params={"agents": 10, "horizon": 10_000}))
    rows = anchors(reference)
    assert [r["label"] for r in rows][-1] == "AI-Toolbox reference: MAUCE"
    assert rows[-1]["metrics"] == {"regret": 39.4} and rows[-1]["std"] == {"regret": 3.4}
    longer = parse_experiment(study(params={"agents": 10, "horizon": 10_000},
                                    search={"horizon": [10_000, 20_000]}))
    assert anchors(longer) == []


@pytest.mark.parametrize("name", STUDIES)
def test_report_only_on_a_copy_rewrites_the_same_report(name, tmp_path, monkeypatch):
    """A fresh clone rewrites a bandit study's report from its committed files alone."""
    committed = ROOT / "results" / name
    study_dir = tmp_path / "results" / name
    shutil.copytree(committed, study_dir)
    (study_dir / "report.md").unlink()
    (study_dir / "report.json").unlink()
    monkeypatch.chdir(tmp_path)  # the report names its files relative to the working dir
    assert main([f"results/{name}/experiment.yaml", "--out", f"results/{name}",
                 "--report-only"]) == 0
    assert (study_dir / "report.md").read_text() == (committed / "report.md").read_text()
    assert (json.loads((study_dir / "report.json").read_text())
            == json.loads((committed / "report.json").read_text()))
    grid = {t.name for t in load_experiment(committed / "experiment.yaml").trials()}
    assert {s["trial"] for s in load_summaries(committed / "trials")} == grid  # all rerun
    assert "/work/" not in "".join(p.read_text() for p in committed.rglob("*")
                                   if p.suffix in (".json", ".md", ".yaml"))


def test_run_experiment_end_to_end(tmp_path):
    """A two-trial study through scripts/run_experiment.py (local Ray), then the same report
    again from its trials/ alone (--report-only)."""
    path = tmp_path / "bandit_tiny" / "experiment.yaml"
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
    assert set(trials) == {"algorithm=mauce.json", "algorithm=random.json"}
    mauce = trials["algorithm=mauce.json"]
    assert mauce["source"] == "run_experiment" and mauce["params"]["horizon"] == 50
    direct = BANDIT.run(dict(mauce["params"]), None)
    assert mauce["curves"] == json.loads(json.dumps(direct["curves"]))
    assert mauce["metrics"]["regret"] == direct["metrics"]["regret"]
    report = (path.parent / "report.md").read_text()
    assert "| algorithm=mauce | 1 | - | " in report and "| algorithm=random | 1 | - | " in report
    assert (path.parent / "curves.png").stat().st_size > 1000
    again = subprocess.run([*base, "--report-only"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (path.parent / "report.md").read_text() == report
