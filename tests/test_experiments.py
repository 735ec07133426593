"""The experiment layer: experiment files, their validation, reports, and whole runs of
``scripts/run_experiment.py`` (a tiny RLlib experiment run, interrupted and resumed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from policies.experiments.report import load_summaries, row_label, table, write_report
from policies.experiments.spec import ExperimentError, parse_experiment, read_file

ROOT = Path(__file__).resolve().parents[1]
TINY = {"env": "job_scheduling", "algo": "ppo", "policy_mode": "shared", "envs_per_runner": 1,
        "overrides": {"train_batch_size_per_learner": 200, "minibatch_size": 100,
                      "num_epochs": 1}}


def experiment(**changes):
    data = {"name": "tiny", "trial": {"kind": "rllib", "params": dict(TINY)},
            "search": {"seed": [0, 1]}, "stop": {"iterations": 2}}
    data.update(changes)
    return data


@pytest.mark.parametrize("change, message", [
    ({"nme": "x"}, "unknown key(s) ['nme']"),
    ({"name": "Tiny Study"}, "name: 'Tiny Study' is not allowed"),
    ({"trial": {"kind": "sarsa"}}, "unknown kind 'sarsa'; allowed:"),
    ({"trial": {"kind": "rllib", "params": {**TINY, "lr": 1}}},
     "trial.params: unknown key(s) ['lr']"),
    ({"search": {"seed": []}}, "search.seed: [] is not allowed; allowed: a non-empty list"),
    ({"search": {"seed": [0, 0]}}, "without repeated values"),
    ({"search": {"gamma": [0.9]}}, "search.gamma: 'gamma' is no parameter of kind 'rllib'"),
    ({"search": {"seed": [0, -1]}}, "search.seed (trial seed=-1): -1 is not an integer >= 0"),
    ({"stop": {}}, "give exactly one of iterations, env_steps"),
    ({"stop": {"iterations": 0}}, "stop.iterations: 0 is not allowed; allowed: an integer >= 1"),
    ({"checkpoint": {"mode": "best"}}, "checkpoint.mode: 'best' is not allowed"),
    ({"evaluation": {"episodes": 20, "seed": 0, "test_seed": 10}}, "overlap"),
    ({"search": {"algo": ["ppo", "sac"]}}, "trial algo=sac: unknown algorithm 'sac'"),
    ({"search": {"overrides.gamma": [0.9, 2.0]}}, "trial overrides.gamma=2.0:"),
])
def test_bad_experiments_name_key_and_value(change, message):
    with pytest.raises(ExperimentError) as e:
        parse_experiment(experiment(**change))
    assert message in str(e.value)


def test_grid_names_and_dotted_keys():
    exp = parse_experiment(experiment(search={"algo": ["ppo", "a2c"],
                                              "overrides.lr": [0.001, 0.0003]}))
    trials = exp.trials()
    assert [t.name for t in trials] == [
        "algo=ppo,overrides.lr=0.001", "algo=ppo,overrides.lr=0.0003",
        "algo=a2c,overrides.lr=0.001", "algo=a2c,overrides.lr=0.0003"]
    assert trials[3].params["overrides"] == {**TINY["overrides"], "lr": 0.0003}
    assert trials[3].params["algo"] == "a2c" and trials[3].params["seed"] == 0
    assert exp.params["overrides"] == TINY["overrides"]  # the file's values are not changed


def test_files_yaml_toml_and_syntax_errors(tmp_path):
    (tmp_path / "e.toml").write_text(
        'name = "t"\n[trial]\nkind = "rllib"\n[trial.params]\nenv = "job_scheduling"\n'
        '[stop]\niterations = 1\n')
    assert read_file(tmp_path / "e.toml")["trial"]["params"]["env"] == "job_scheduling"
    (tmp_path / "e.yaml").write_text("name: [t\n")
    with pytest.raises(ExperimentError, match="not valid YAML"):
        read_file(tmp_path / "e.yaml")
    with pytest.raises(ExperimentError, match="unknown file type '.json'"):
        read_file(tmp_path / "e.json") if (tmp_path / "e.json").write_text("{}") else None


def _summary(trial, seed, utilization, **params):
    return {"trial": trial, "params": {**TINY, "seed": seed, **params},
            "point": {"seed": seed}, "metrics": {"utilization": utilization, "cv": 0.1},
            "iterations": 2, "wall_time_s": 1.0, "source": "run_experiment"}


def test_report_rows_group_seeds_and_label_differences(tmp_path):
    exp = parse_experiment(experiment())
    summaries = [_summary("seed=0", 0, 0.5), _summary("seed=1", 1, 0.7),
                 {**_summary("old", 0, 0.9, algo="a2c"), "iterations": 5,
                  "source": "imported: somewhere"}]
    assert row_label(exp, summaries[2]) == "tiny [algo=a2c] (5 it)"
    rows = {r["label"]: r for r in table(exp, summaries, ["utilization"])}
    cell = rows["tiny"]["metrics"]["utilization"]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(0.6)
    assert cell["std"] == pytest.approx(0.1414, abs=1e-3)  # n - 1
    written = write_report(exp, summaries, tmp_path, ["python scripts/run_experiment.py x"])
    text = (tmp_path / "report.md").read_text()
    assert "| tiny | 2 | 2 | 60.0% ±14.1 |" in text
    assert "1 of the 3 trials were imported" in text
    assert json.loads((tmp_path / "report.json").read_text())["rows"][0]["label"] == "tiny"
    assert {p.name for p in written} == {"report.md", "report.json"}


def _run(args, **kw):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "run_experiment.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, **kw)


def test_bad_file_is_one_error_line(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text("name: t\ntrial: {kind: rllib, params: {env: job_scheduling}}\n"
                    "stop: {iterations: 1}\nsearch: {seed: [0, -3]}\n")
    r = _run([str(path), "--storage", str(tmp_path / "s")], timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {path}: search.seed (trial seed=-3): -3 is not an integer >= 0")


def test_run_interrupt_resume_and_report_only(tmp_path):
    """Two trials one at a time; Ctrl-C while the second trains; the rerun resumes it from
    its checkpoint (Tune's restore) without rerunning the first; --report-only rewrites
    the same report from trials/ alone."""
    import yaml

    study = tmp_path / "study"
    study.mkdir()
    exp = experiment(name="tiny_resume", stop={"iterations": 12},
                     checkpoint={"every": 1, "keep": 1})
    (study / "experiment.yaml").write_text(yaml.safe_dump(exp))
    args = [str(study / "experiment.yaml"), "--storage", str(tmp_path / "storage"),
            "--out", str(study), "--max-concurrent", "1", "--num-cpus", "2"]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_experiment.py"), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("done: "):  # the first trial finished; the second starts
                break
        assert any(x.startswith("done: ") for x in lines), "".join(lines)[-3000:]
        ckpt = tmp_path / "storage" / "tiny_resume"
        deadline = time.monotonic() + 120  # until the second trial has a checkpoint
        while time.monotonic() < deadline and len(list(ckpt.glob("seed=*/checkpoint_*"))) < 2:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    first = lines[-1].split()[1]
    interrupted = len(load_summaries(study / "trials"))
    assert interrupted <= 1, out[-3000:]
    # said as such, not as a failure: exit 1, the trial named, how to go on
    assert proc.returncode == 1, out[-3000:]
    (said,) = [x for x in out.splitlines() if "interrupted: 1 trial(s) unfinished" in x]
    assert "run the same command again to resume" in said and "failed" not in out, out[-3000:]
    r = _run(args, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    done_lines = [x for x in r.stdout.splitlines() if x.startswith("done: ")]
    assert first not in " ".join(x.split()[1] for x in done_lines), r.stdout
    summaries = {s["trial"]: s for s in load_summaries(study / "trials")}
    assert set(summaries) == {"seed=0", "seed=1"}, r.stdout[-3000:]
    assert all(s["iterations"] == 12 for s in summaries.values()), r.stdout[-3000:]
    assert "resumed_at" not in summaries[first]
    (other,) = set(summaries) - {first}
    resumed_at = summaries[other].get("resumed_at")  # from its checkpoint, not from 0
    assert resumed_at and 1 <= resumed_at[0] < 12, (out[-2000:], r.stdout[-2000:])
    resumed = json.loads((tmp_path / "storage" / "tiny_resume" / "fairmarl_experiment.json")
                         .read_text())
    assert resumed["trials"] == ["seed=0", "seed=1"]
    for trial in ("seed=0", "seed=1"):  # every iteration's metrics, fairness included
        folder = tmp_path / "storage" / "tiny_resume" / trial
        results = [json.loads(x) for x in (folder / "result.json").read_text().splitlines()]
        assert len(results) >= 12
        assert any(k.startswith("fairness/") for res in results for k in res), results[-1]
        assert not (folder / "progress.csv").exists()  # Tune's CSV dropped late columns
    before = (study / "report.md").read_text()
    r = _run([str(study / "experiment.yaml"), "--out", str(study), "--report-only"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert (study / "report.md").read_text() == before, r.stdout
    r = _run(args, timeout=120)  # nothing left to run: Ray is not even started
    assert "every trial is in the study folder already" in r.stdout


def test_address_without_cluster_is_one_error_line_within_seconds(tmp_path):
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "experiment.yaml"
    path.write_text("name: t\ntrial: {kind: rllib, params: {env: job_scheduling}}\n"
                    "stop: {iterations: 1}\n")
    start = time.monotonic()
    r = _run([str(path), "--storage", str(tmp_path / "s"), "--address", f"127.0.0.1:{port}"],
             timeout=120)
    assert r.returncode == 2 and time.monotonic() - start < 30
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"error: no Ray cluster at '127.0.0.1:{port}'"), r.stderr


@pytest.mark.parametrize("only, words", [
    ("algo=ppo", "--only 'algo=ppo': give KEY=VALUE with KEY one of the searched keys ['seed']"),
    ("seed=7", "--only 'seed=7': seed takes ['0', '1'] in this grid"),
])
def test_only_names_searched_keys_and_values(tmp_path, only, words):
    import yaml

    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment()))
    r = _run([str(path), "--storage", str(tmp_path / "s"), "--only", only], timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == f"error: {words}"
