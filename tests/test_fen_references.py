"""The reference rows of train_fen.py's final table."""

import json

import pytest

from policies.fen.references import PAPER, independent_row, reference_rows
from policies.fen.train import fairness_table


def test_reference_rows_job_scheduling():
    rows = dict(reference_rows("job_scheduling"))
    names = list(rows)
    assert names[0] == "random play (5 episodes, now)"
    assert 0.1 < rows[names[0]]["utilization"] < 0.3  # measured: about 0.16
    independent = [n for n in names if n.startswith("independent PPO")]
    assert independent == ["independent PPO (results/fen_job_scheduling, 5 seeds x 30 it)"]
    assert rows[independent[0]]["utilization"] > 0.9 and rows[independent[0]]["cv"] > 1.0
    assert rows["FEN, paper"] == {m: v for m, (v, _) in PAPER["job_scheduling"]["fen"].items()}
    # other env kwargs: the committed runs are not of this env, so no independent row
    assert not [n for n, _ in reference_rows("job_scheduling", {"max_cycles": 50})
                if n.startswith("independent")]
    assert [n for n, _ in reference_rows("matthew_effect")][-1].startswith("independent PPO")


def test_final_table_puts_the_run_above_its_references():
    metrics = {"fairness/utilization": 0.91, "fairness/cv": 0.05, "fairness/min_utility": 0.2,
               "fairness/max_utility": 0.25, "fairness/utility/agent_0": 0.2,
               "fairness/controller/choice_freq/sub0": 0.4}
    text = fairness_table(metrics, [("FEN, paper", {"utilization": 0.9, "cv": 0.17})])
    lines = text.splitlines()
    assert lines[0].split() == ["utilization", "CV", "min", "utility", "max", "utility"]
    assert lines[1].split() == ["this", "run", "0.910", "0.050", "0.200", "0.250"]
    assert lines[2].split() == ["FEN,", "paper", "0.900", "0.170", "-", "-"]
    assert "utility per agent: agent_0 0.2000" in text
    assert "controllers pick: sub0 0.400" in text
    assert fairness_table({}, []).splitlines()[1].strip() == "this run"
    # no episode ended in the run: its row is blank, the references still show
    early = fairness_table({}, [("FEN, paper", {"utilization": 0.9, "cv": 0.17})]).splitlines()
    assert early[0].split() == ["utilization", "CV"]
    assert early[1].split() == ["this", "run", "-", "-"]
    assert early[2].split() == ["FEN,", "paper", "0.900", "0.170"]


@pytest.mark.parametrize("env", ["job_scheduling", "manufacturing_plant"])
def test_random_play_is_measured_on_the_env(env):
    rows = dict(reference_rows(env))
    assert set(rows["random play (5 episodes, now)"]) >= {"utilization", "cv"}


def test_the_independent_row_takes_the_largest_budget_of_plain_runs(tmp_path):
    trials = tmp_path / "fen_job_scheduling" / "trials"
    trials.mkdir(parents=True)

    def trial(name, iterations, utilization, **params):
        summary = {"trial": name, "iterations": iterations,
                   "params": {"variant": "independent", "env_kwargs": {}, "overrides": {},
                              **params}, "metrics": {"utilization": utilization, "cv": 1.0}}
        (trials / f"{name}.json").write_text(json.dumps(summary))

    trial("a", 20, 0.5)
    trial("b", 40, 0.8)
    trial("c", 40, 0.9)
    trial("d", 60, 0.1, overrides={"lr": 0.1})  # another setup: not the reference
    trial("e", 60, 0.1, variant="fen")
    name, figures = independent_row("job_scheduling", tmp_path)
    assert name == "independent PPO (results/fen_job_scheduling, 2 seeds x 40 it)"
    assert figures == pytest.approx({"utilization": 0.85, "cv": 1.0})
    assert independent_row("matthew_effect", tmp_path) is None
