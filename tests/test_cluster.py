"""A real Ray cluster on loopback started with ``ray start --head``; train with --address.

Only the head node: a second raylet cannot join on this machine while Ray stays on
loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes ``ray start --address``
abort with "Multi-node Ray clusters are not supported"; with ``=1`` Ray rewrites
127.0.0.1 to the external address; a node on 127.0.0.2 did not register within
120 s). See docs/training.md.

The nodes are started with ``ray start --block`` in their own process groups, and
the test ends exactly those groups (``ray stop`` would stop every Ray on the machine,
including other users' runs).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ)
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1",
               RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    return env


def _start(args, log, **env):
    return subprocess.Popen(
        [RAY, "start", "--block", "--disable-usage-stats", *args],
        stdout=log, stderr=subprocess.STDOUT, env={**_env(), **env}, start_new_session=True,
    )


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _nodes(address):
    code = (
        f"import ray, json; ray.init(address={address!r}, logging_level='ERROR');"
        "print(json.dumps([n['Alive'] for n in ray.nodes()]))"
    )
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=_env(), timeout=60)
    except subprocess.TimeoutExpired:
        return []
    return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else []


def test_train_on_two_node_cluster(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = open(tmp_path / "ray.log", "w")
    head = _start(["--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                   "--node-ip-address=127.0.0.1"], log)
    try:
        deadline = time.time() + 120
        time.sleep(3)
        while head.poll() is None and sum(_nodes(address)) < 1:
            assert time.time() < deadline, "head node did not come up"
            time.sleep(2)
        assert head.poll() is None, (tmp_path / "ray.log").read_text()[-3000:]
        summary = tmp_path / "summary.json"
        p = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "train.py"), "--env", "job_scheduling",
             "--algo", "ppo", "--policy-mode", "shared", "--iterations", "2",
             "--address", address, "--num-env-runners", "2", "--envs-per-runner", "2",
             "--logdir", str(tmp_path / "run"), "--summary-json", str(summary),
             "--env-kwargs", '{"max_cycles": 25}', "--set", "train_batch_size_per_learner=200",
             "--set", "minibatch_size=100", "--set", "num_epochs=1"],
            capture_output=True, text=True, env=_env(), timeout=400, cwd=ROOT,
        )
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
        assert "iter    2 |" in p.stdout
        result = json.loads(summary.read_text())
        assert result["training_iteration"] == 2 and result["env_steps"] >= 400
    finally:
        _stop(head)
        log.close()
