"""scripts/train.py and scripts/evaluate.py end to end: errors, kill + resume, evaluation."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--env-kwargs", '{"max_cycles": 25}',
    "--set", "train_batch_size_per_learner=100", "--set", "minibatch_size=50",
    "--set", "num_epochs=1", "--num-env-runners", "0", "--envs-per-runner", "2",
]


def _env():
    env = dict(os.environ)
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(script, *args, timeout=240):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT,
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--env", "nope", "--algo", "ppo"], "unknown environment 'nope'"),
        (["--env", "job_scheduling", "--algo", "sac"], "unknown algorithm 'sac'"),
        (["--env", "job_scheduling", "--algo", "ppo", "--policy-mode", "x"], "policy mode 'x'"),
        (["--env", "job_scheduling", "--algo", "ppo", "--set", "lrr=1"], "'lrr'"),
        (["--env", "job_scheduling", "--algo", "ppo", "--resume", "/no/such"], "does not exist"),
        (["--env", "job_scheduling", "--algo", "ppo", "--iterations", "0"], "--iterations"),
        (["--env", "resource_allocation", "--algo", "a2c", "--baseline", "same_seed_mean"],
         "baseline 'same_seed_mean' is for a2c or ppo with --sampler vector"),
        (["--env", "resource_allocation", "--algo", "a2c", "--baseline", "mean"],
         "unknown baseline 'mean'"),
    ],
)
def test_train_bad_input_exits_2_with_one_line(args, needle):
    p = _run("train.py", *args)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], p.stderr


def test_evaluate_bad_input_exits_2(tmp_path):
    p = _run("evaluate.py", "--checkpoint", str(tmp_path / "missing"), "--episodes", "1")
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_killed_training_resumes_from_last_checkpoint(tmp_path):
    logdir = tmp_path / "run"
    cmd = [
        sys.executable, str(ROOT / "scripts" / "train.py"), "--env", "job_scheduling",
        "--algo", "ppo", "--policy-mode", "shared", "--iterations", "200",
        "--checkpoint-every", "2", "--logdir", str(logdir), *TINY,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
        cwd=ROOT, start_new_session=True,
    )
    ckpt = logdir / "checkpoints" / "iter_000002"
    try:
        deadline = time.time() + 180
        while not (ckpt / "run_info.json").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "no checkpoint within 180 s"
            time.sleep(0.5)
        time.sleep(1.0)  # the run goes on past the checkpoint ...
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # ... and is killed (its own process group)
        proc.wait(timeout=30)
    assert proc.returncode != 0
    p = _run(
        "train.py", "--env", "job_scheduling", "--algo", "ppo", "--policy-mode", "shared",
        "--iterations", "1", "--logdir", str(tmp_path / "resumed"), "--resume", str(ckpt),
        "--summary-json", str(tmp_path / "summary.json"), *TINY,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "iter    3 |" in p.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["training_iteration"] == 3
    out = tmp_path / "eval.json"
    ev = _run(
        "evaluate.py", "--checkpoint", summary["checkpoint"], "--episodes", "2",
        "--json", str(out), "--render", "ansi",
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert "utilization" in ev.stdout and "agent_3" in ev.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {
        "utilization", "cv", "min_utility", "max_utility", "per_agent_utility", "episodes",
        "actions", "fixed_actions",
    }
    assert figures["episodes"] == 2 and len(figures["per_agent_utility"]) == 4
    assert figures["actions"] == "greedy" and figures["fixed_actions"] == {}
    bad = _run("evaluate.py", "--checkpoint", summary["checkpoint"], "--episodes", "1",
               "--env-kwargs", '{"nosuch": 1}')
    assert bad.returncode == 2, bad.stderr[-3000:]
    lines = [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "unknown keyword argument(s) ['nosuch']" in lines[0], bad.stderr


def test_report_scripts_name_their_command_and_turn_bad_input_into_exit_2(capsys):
    import argparse

    from policies.cli import report_main

    seen = []

    def parse(argv):
        return argparse.Namespace(argv=argv)

    def run(args, command):
        seen.append(command)
        if "--bad" in args.argv:
            raise ValueError("--bad is not allowed")

    assert report_main("x.py", parse, run, ["a b.json", "--episodes", "3"]) == 0
    assert seen == ["python scripts/x.py 'a b.json' --episodes 3"]
    with pytest.raises(SystemExit) as exit_info:
        report_main("x.py", parse, run, ["--bad"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --bad is not allowed\n"


def test_env_runners_that_always_fail_stop_the_run_with_exit_2(tmp_path):
    """A remote env runner that raises on every sample (here: the vector sampler's check,
    which live_recommendation's agents fail) is restarted by RLlib again and again; the
    run must not checkpoint and exit 0 having sampled nothing (policies.training.EmptySampling)."""
    logdir = tmp_path / "run"
    p = _run("train.py", "--env", "live_recommendation", "--algo", "ppo", "--sampler", "vector",
             "--policy-mode", "shared", "--iterations", "1", "--num-env-runners", "1",
             "--logdir", str(logdir))
    assert p.returncode == 2, p.stdout[-3000:] + p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "sampled no env step" in lines[0], p.stderr[-3000:]
    assert "the vector sampler needs all of" in p.stderr  # the runner's own error, above
    assert "done:" not in p.stdout
    assert not (logdir / "checkpoints").exists()


def _result(steps, it):
    return {"training_iteration": it, "env_runners": {"num_env_steps_sampled": steps},
            "fault_tolerance": {"num_remote_worker_restarts": it, "num_healthy_workers": 0}}


def test_empty_sampling_tolerates_a_lost_iteration_and_stops_a_run_that_samples_nothing():
    from policies.cli import RunError
    from policies.training import MAX_EMPTY_ITERATIONS, EmptySampling, SamplingError

    assert issubclass(SamplingError, RunError)  # one line and exit 2 in the scripts
    ok = EmptySampling()
    for it, steps in enumerate([100, 0, 0, 100, float("nan"), 100], start=1):
        ok.update(_result(steps, it), last=it == 6)  # restarted runners: no error
    streak = EmptySampling()
    streak.update(_result(100, 1), last=False)
    for it in range(2, 1 + MAX_EMPTY_ITERATIONS):
        streak.update(_result(0, it), last=False)
    with pytest.raises(SamplingError, match=f"{MAX_EMPTY_ITERATIONS} iteration.*up to "
                                            f"iteration {MAX_EMPTY_ITERATIONS + 1}"):
        streak.update(_result(0, MAX_EMPTY_ITERATIONS + 1), last=False)
    # a run's only iteration sampled nothing (a NaN count: RLlib's for ids that never acted)
    with pytest.raises(SamplingError, match="sampled no env step"):
        EmptySampling().update(_result({"a": float("nan")}, 1), last=True)
    # a last iteration without samples after sampled ones keeps the run
    tail = EmptySampling()
    tail.update(_result(100, 1), last=False)
    tail.update(_result(0, 2), last=True)
