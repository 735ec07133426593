"""An env runner killed while it samples is replaced and the run loses no iteration.

``scripts/train.py`` trains in a child process on a Ray instance of its own (a private
``RAY_TMPDIR``). While iteration 2 samples, the test SIGKILLs one env runner process: a
``ray::MultiAgentEnvRunner`` of this run (the process's environment names our
``RAY_TMPDIR``) whose title has read ``ray::MultiAgentEnvRunner.apply`` (a remote call in
progress) for over half a second; the only call that long is the ``sample`` call of
``synchronous_parallel_sample``. The run must exit 0 with every iteration's env steps and
TensorBoard's ``fault_tolerance/env_runner_restarts`` must count the restart
(``restart_failed_env_runners``, policies/config.py).

Only processes of this test's Ray instance are signalled (matched by its ``RAY_TMPDIR``).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from policies.training import iteration_metrics

ROOT = Path(__file__).resolve().parents[1]
ITERATIONS = 6  # Ray restarts the runner in a few s; RLlib takes it back 1-2 iterations later
BATCH = 3000  # env steps per iteration: about 1.5-2 s of sampling for 2 runners on 2 cores
RUNNER = "ray::MultiAgentEnvRunner"
IN_CALL = f"{RUNNER}.apply"  # the title while the runner executes a remote call
MIN_IN_CALL_S = 0.5  # metrics/weights calls take milliseconds; sampling BATCH/2 takes seconds


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _ours(tmpdir: str) -> list[int]:
    """PIDs of the processes whose environment holds ``RAY_TMPDIR=tmpdir`` (the driver
    and every process of the Ray instance it started: they inherit its environment)."""
    tag = f"RAY_TMPDIR={tmpdir}".encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if tag in f.read().split(b"\0"):
                    pids.append(int(d))
        except OSError:
            continue
    return pids


def _runners(tmpdir: str) -> dict[int, str]:
    out = {}
    for pid in _ours(tmpdir):
        title = _cmdline(pid)
        if title.startswith(RUNNER):
            out[pid] = title
    return out


def _kill_all(tmpdir: str) -> None:
    for pid in _ours(tmpdir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _kill_a_sampling_runner(tmpdir: str, deadline: float) -> tuple[int, float]:
    """SIGKILL an env runner of ``tmpdir``'s Ray that has been in a remote call for
    MIN_IN_CALL_S; returns its PID and how long it had been in that call."""
    since: dict[int, float] = {}
    while time.time() < deadline:
        now = time.time()
        titles = _runners(tmpdir)
        for pid, title in titles.items():
            if title != IN_CALL:
                since.pop(pid, None)
                continue
            since.setdefault(pid, now)
            if now - since[pid] >= MIN_IN_CALL_S and _cmdline(pid) == IN_CALL:
                os.kill(pid, signal.SIGKILL)
                return pid, now - since[pid]
        time.sleep(0.02)
    raise AssertionError("no env runner was seen sampling")


def _scalars(logdir: Path, tag: str) -> dict[int, float]:
    acc = EventAccumulator(str(logdir / "tb"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_env_runner_killed_mid_sample_is_restarted_and_no_iteration_is_lost():
    tmpdir = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths
    logdir = Path(tmpdir) / "run"
    env = dict(os.environ, RAY_TMPDIR=tmpdir, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    cmd = [
        sys.executable, str(ROOT / "scripts" / "train.py"), "--env", "job_scheduling",
        "--algo", "ppo", "--policy-mode", "shared", "--iterations", str(ITERATIONS),
        "--num-env-runners", "2", "--envs-per-runner", "1", "--seed", "0",
        "--logdir", str(logdir), "--summary-json", str(logdir / "summary.json"),
        "--set", f"train_batch_size_per_learner={BATCH}", "--set", f"minibatch_size={BATCH}",
        "--set", "num_epochs=1",
    ]
    try:
        start = time.time()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env, cwd=ROOT, start_new_session=True)
        lines: list[str] = []
        first_done = threading.Event()

        def read():
            for line in p.stdout:
                lines.append(line)
                if line.startswith("iter    1 |"):
                    first_done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert first_done.wait(timeout=180), "".join(lines)[-4000:]
            before = _runners(tmpdir)
            assert len(before) == 2, before
            # iteration 2 is sampling: kill one runner in the middle of its sample call
            killed, in_call_s = _kill_a_sampling_runner(tmpdir, deadline=time.time() + 60)
            rc = p.wait(timeout=300)
            reader.join(timeout=10)
            out = "".join(lines)
            assert rc == 0, out[-6000:]
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            _kill_all(tmpdir)  # whatever of this run's Ray outlived its driver
        took = time.time() - start
        # the kill landed: RLlib took the runner out of service, Ray restarted it
        assert "taking actor" in out and "out of service" in out, out[-6000:]
        for i in range(1, ITERATIONS + 1):
            assert f"iter {i:4d} |" in out, out[-4000:]
        # every iteration sampled its full batch, the one with the kill too
        lifetime = _scalars(logdir, "throughput/env_steps_lifetime")
        assert sorted(lifetime) == list(range(1, ITERATIONS + 1)), lifetime
        steps = [lifetime[i] - lifetime.get(i - 1, 0.0) for i in sorted(lifetime)]
        assert all(s >= BATCH for s in steps), steps
        restarts = _scalars(logdir, "fault_tolerance/env_runner_restarts")
        healthy = _scalars(logdir, "fault_tolerance/healthy_env_runners")
        assert restarts[1] == 0 and healthy[1] == 2, (restarts, healthy)
        assert min(healthy.values()) == 1, healthy  # out of service after the kill
        assert restarts[ITERATIONS] >= 1, restarts
        assert healthy[ITERATIONS] == 2, healthy  # the replacement samples again
        print(f"killed runner {killed} after {in_call_s:.2f} s in its sample call; "
              f"restarts {restarts}, healthy {healthy}, env steps per iteration {steps}, "
              f"{took:.1f} s")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_iteration_metrics_maps_rllib_fault_tolerance_counters():
    """The two ``fault_tolerance/`` tags come from RLlib's ``result["fault_tolerance"]``
    (Algorithm.step); a result without it (e.g. an older checkpoint's) gets neither."""
    base = {"env_runners": {}, "learners": {}, "time_this_iter_s": 1.0}
    ft = {"num_remote_worker_restarts": 3, "num_healthy_workers": 1}
    out = iteration_metrics({**base, "fault_tolerance": ft})
    assert out["fault_tolerance/env_runner_restarts"] == 3.0
    assert out["fault_tolerance/healthy_env_runners"] == 1.0
    assert not any(k.startswith("fault_tolerance/") for k in iteration_metrics(base))
