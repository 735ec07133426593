"""``scripts/train.py`` and ``scripts/run_experiment.py`` with ``--address`` on Ray clusters
of two nodes, built on this machine.

* ``test_train_and_experiment_on_two_raylet_cluster`` (no root): Ray's
  ``ray.cluster_utils.Cluster`` starts a head raylet and a second raylet, both on
  127.0.0.1, in a child interpreter (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` before
  ``import ray``, a private short ``RAY_TMPDIR`` so the machine's
  ``/tmp/ray/ray_current_cluster`` is never touched, its own token). One CPU per node:
  ``train.py`` with two env runners of one CPU each, then ``run_experiment.py`` with two
  trials of one CPU each; Ray must place one runner, then one trial, on each raylet; the
  actor table says where they ran.
* ``test_train_across_network_namespaces_survives_worker_node_loss`` (root and
  ``ip netns``): a head node and a worker node in two network namespaces of their own,
  joined by a veth pair on private 10.x addresses (no route anywhere else), started
  with ``ray start --block`` and token authentication. The driver runs in the head's
  namespace; after its first iteration the test kills every process of the worker
  node, and training must finish on the head with the runner left there.

Processes are stopped by PID (never ``ray stop``, which walks every Ray process on
the machine). See docs/cluster.md for what these tests prove and what they do not.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "scripts" / "train.py")
RAY = str(Path(sys.executable).with_name("ray"))
TRAIN_ARGS = [
    "--env", "job_scheduling", "--algo", "ppo", "--policy-mode", "shared",
    "--num-env-runners", "2", "--envs-per-runner", "1", "--seed", "0",
    "--env-kwargs", '{"max_cycles": 25}', "--set", "minibatch_size=200",
    "--set", "num_epochs=1",
]
RUNNER_CLASS = "MultiAgentEnvRunner"
#: the actor class of a Tune function trial (Ray names it ``wrap_function.<locals>.ImplicitFunc``
#: or ``ImplicitFunc``)
TRIAL_CLASS = "ImplicitFunc"


def _short_tmpdir() -> str:
    # Ray's Unix socket paths live under it and must stay under 108 characters
    return tempfile.mkdtemp(prefix="r", dir="/tmp")


def _pids_with_env(name: str, value: str) -> list[int]:
    """PIDs of processes whose environment holds ``name=value`` (a value unique to a test:
    only processes that test started, and their children, inherit it)."""
    tag = f"{name}={value}".encode()
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


def _terminate(pids: list[int], grace_s: float = 5.0) -> None:
    """SIGTERM ``pids``, wait up to ``grace_s``, SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace_s
        while alive and time.time() < deadline:
            alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
            time.sleep(0.1)
        pids = alive
        if not pids:
            return


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _tb(logdir: Path, tag: str) -> dict[int, float]:
    acc = EventAccumulator(str(logdir / "tb"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def _runner_nodes(state: dict) -> set[str]:
    """Node ids that ran an env runner, from the actor table."""
    return {a["Address"]["NodeID"] for a in state["actors"].values()
            if a["ActorClassName"] == RUNNER_CLASS}


# ------------------------------------------------------------ two raylets, loopback
#: runs in a fresh interpreter: the environment is set before ``import ray``
CLUSTER_CHILD = textwrap.dedent("""
    import json, subprocess, sys
    import ray
    from ray.cluster_utils import Cluster

    commands, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    out = {}
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out["address"] = cluster.address
        out["head"], out["worker"] = cluster.head_node.node_id, worker.node_id
        out["runs"] = []
        for cmd in commands:
            p = subprocess.run([*cmd, "--address", cluster.address],
                               capture_output=True, text=True, timeout=timeout)
            out["runs"].append(dict(rc=p.returncode, stdout=p.stdout,
                                    stderr=p.stderr[-6000:]))
        ray.init(address=cluster.address, logging_level="ERROR")
        out["nodes"] = ray.nodes()
        out["actors"] = ray._private.state.actors()
    finally:
        ray.shutdown()
        cluster.shutdown()
        print("RESULT " + json.dumps(out, default=str), flush=True)
""")


#: a 2-trial experiment: one trial of one CPU per raylet
EXPERIMENT = """
name: cluster_test
trial:
  kind: rllib
  params: {env: job_scheduling, algo: ppo, policy_mode: shared, envs_per_runner: 1,
           env_kwargs: {max_cycles: 25},
           overrides: {train_batch_size_per_learner: 200, minibatch_size: 100, num_epochs: 1}}
search: {seed: [0, 1]}
stop: {iterations: 2}
checkpoint: {every: 2, keep: 1}
"""


def test_train_and_experiment_on_two_raylet_cluster():
    """``train.py --address`` (two env runners) and ``run_experiment.py --address`` (two
    trials) on one two-raylet cluster: runners and trials on both raylets."""
    tmpdir = _short_tmpdir()
    logdir = Path(tmpdir) / "run"
    study = Path(tmpdir) / "study"
    study.mkdir()
    (study / "experiment.yaml").write_text(EXPERIMENT)
    experiment_cmd = [sys.executable, str(ROOT / "scripts" / "run_experiment.py"),
                      str(study / "experiment.yaml"), "--storage", str(Path(tmpdir) / "tune"),
                      "--out", str(study)]
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_TMPDIR=tmpdir,
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    train_cmd = [sys.executable, TRAIN, *TRAIN_ARGS, "--iterations", "2",
                 "--set", "train_batch_size_per_learner=200", "--logdir", str(logdir)]
    start = time.time()
    child = subprocess.Popen(
        [sys.executable, "-c", CLUSTER_CHILD, json.dumps([train_cmd, experiment_cmd]), "240"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=540)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        _terminate(_pids_with_env("RAY_TMPDIR", tmpdir), grace_s=2.0)
    took = time.time() - start
    try:
        lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
        assert child.returncode == 0 and lines, stdout[-3000:] + stderr[-6000:]
        state = json.loads(lines[-1][len("RESULT "):])
        train, experiment = state["runs"]
        assert train["rc"] == 0, train["stdout"][-3000:] + train["stderr"]
        assert "iter    2 |" in train["stdout"], train["stdout"]
        assert experiment["rc"] == 0, experiment["stdout"][-3000:] + experiment["stderr"]
        # two raylets, both alive, both on loopback
        alive = [n for n in state["nodes"] if n["Alive"]]
        assert {n["NodeID"] for n in alive} == {state["head"], state["worker"]}
        assert {n["NodeManagerAddress"] for n in alive} == {"127.0.0.1"}
        # env runners ran on both raylets
        assert _runner_nodes(state) == {state["head"], state["worker"]}, state["actors"]
        lifetime = _tb(logdir, "throughput/env_steps_lifetime")
        assert lifetime[2] >= 400, lifetime
        # the experiment's two trials ran at once, one on each raylet (the actor table),
        # and each trial's summary names the node it ran on
        trials = {a["Address"]["NodeID"] for a in state["actors"].values()
                  if a["ActorClassName"].endswith(TRIAL_CLASS)}
        assert trials == {state["head"], state["worker"]}, state["actors"]
        summaries = [json.loads(f.read_text()) for f in (study / "trials").glob("*.json")]
        assert sorted(s["trial"] for s in summaries) == ["seed=0", "seed=1"]
        assert {s["node"] for s in summaries} == trials
        assert all(s["iterations"] == 2 for s in summaries)
        print(f"two-raylet cluster: runners on {sorted(_runner_nodes(state))}, trials on "
              f"{sorted(trials)}, {took:.1f} s")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# ------------------------------------------------------ two network namespaces (root)
SUBNET = "10.231.{}.{}"  # a /24 on a veth pair of our own, no other route
ITERATIONS = 5


def _netns_missing() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (ip netns add)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    probe = f"fmprobe{secrets.token_hex(3)}"
    p = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if p.returncode != 0:
        return f"`ip netns add` fails here: {p.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _ns_pids(ns: str) -> list[int]:
    p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split()] if p.returncode == 0 else []


def _stop_namespaces(head_ns: str, worker_ns: str) -> None:
    """Worker node, then the head's processes but its GCS, then the GCS; then the
    namespaces (their veth ends go with them)."""
    _terminate(_ns_pids(worker_ns))
    head = _ns_pids(head_ns)
    gcs = [p for p in head if "gcs_server" in _cmdline(p)]
    _terminate([p for p in head if p not in gcs])
    _terminate(gcs + _ns_pids(head_ns))
    for ns in (worker_ns, head_ns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


#: runs in the head namespace, connected to the cluster: waits for ``n`` alive nodes,
#: then prints the node and actor tables for every line it reads on stdin
OBSERVER = textwrap.dedent("""
    import json, sys, time
    import ray
    address, n = sys.argv[1], int(sys.argv[2])
    ray.init(address=address, logging_level="ERROR")
    deadline = time.time() + 60
    while sum(x["Alive"] for x in ray.nodes()) < n:
        assert time.time() < deadline, ray.nodes()
        time.sleep(0.5)
    for _ in iter(lambda: sys.stdin.readline() or None, None):
        print("STATE " + json.dumps({"nodes": ray.nodes(),
                                     "actors": ray._private.state.actors()}, default=str),
              flush=True)
""")


class _Observer:
    """A driver of its own in namespace ``ns`` that reads Ray's tables on request."""

    def __init__(self, ns: str, address: str, env: dict, nodes: int):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", OBSERVER, address, str(nodes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()

        def read():
            for line in self.proc.stdout:
                if line.startswith("STATE "):
                    self.lines.put(line[len("STATE "):])
            self.lines.put(None)  # it exited

        threading.Thread(target=read, daemon=True).start()

    def state(self, timeout: float = 90.0) -> dict:
        """The node and actor tables (the first call waits for the nodes to be up)."""
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise AssertionError(f"the observer exited with {self.proc.wait()}") from None
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no tables from the observer in {timeout:.0f} s") from None
        if line is None:
            raise AssertionError(f"the observer exited with {self.proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def test_train_across_network_namespaces_survives_worker_node_loss():
    missing = _netns_missing()
    if missing:
        pytest.skip(missing)
    suffix = secrets.token_hex(3)
    head_ns, worker_ns = f"fmhead{suffix}", f"fmwork{suffix}"
    octet = int(suffix[:2], 16) % 250 + 1
    head_ip, worker_ip = SUBNET.format(octet, 1), SUBNET.format(octet, 2)
    address = f"{head_ip}:6379"
    tmpdir = _short_tmpdir()
    logdir = Path(tmpdir) / "run"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_TMPDIR=tmpdir, OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    node_args = ["--block", "--disable-usage-stats", "--num-cpus=1",
                 f"--object-store-memory={100 * 1024 * 1024}"]
    logs = [open(Path(tmpdir) / f"{name}.log", "w") for name in ("head", "worker")]
    nodes: list[subprocess.Popen] = []
    driver: subprocess.Popen | None = None
    observer: _Observer | None = None
    start = time.time()
    try:
        _ip("netns", "add", head_ns)
        _ip("netns", "add", worker_ns)
        _ip("link", "add", f"vh{suffix}", "netns", head_ns, "type", "veth",
            "peer", "name", f"vw{suffix}", "netns", worker_ns)
        for ns, dev, ip in ((head_ns, f"vh{suffix}", head_ip),
                            (worker_ns, f"vw{suffix}", worker_ip)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        nodes.append(subprocess.Popen(
            ["ip", "netns", "exec", head_ns, RAY, "start", "--head", "--port=6379",
             f"--node-ip-address={head_ip}", "--include-dashboard=false",
             f"--temp-dir={tmpdir}/h", *node_args],
            stdout=logs[0], stderr=subprocess.STDOUT, env=env, start_new_session=True))
        nodes.append(subprocess.Popen(
            ["ip", "netns", "exec", worker_ns, RAY, "start", f"--address={address}",
             f"--node-ip-address={worker_ip}", f"--temp-dir={tmpdir}/w", *node_args],
            stdout=logs[1], stderr=subprocess.STDOUT, env=env, start_new_session=True))
        observer = _Observer(head_ns, address, env, nodes=2)
        up = observer.state()
        by_ip = {n["NodeManagerAddress"]: n["NodeID"] for n in up["nodes"] if n["Alive"]}
        assert set(by_ip) == {head_ip, worker_ip}, up["nodes"]
        setup_s = time.time() - start

        # 1 CPU per node, 2 runners of 1 CPU: Ray must place one on each node. Once the
        # worker node is gone its runner has no CPU to be restarted on; RLlib's ping of it
        # at the start of each iteration fails at once (measured: with the default 30 s
        # probe timeout the 4 iterations after the kill took 14 s, as with 2 s).
        driver = subprocess.Popen(
            ["ip", "netns", "exec", head_ns, sys.executable, TRAIN, *TRAIN_ARGS,
             "--iterations", str(ITERATIONS), "--set", "train_batch_size_per_learner=1000",
             "--address", address,
             "--logdir", str(logdir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
            start_new_session=True)
        lines: list[str] = []
        first = threading.Event()

        def read():
            for line in driver.stdout:
                lines.append(line)
                if line.startswith("iter    1 |"):
                    first.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert first.wait(timeout=180), "".join(lines)[-4000:]
        before = observer.state()  # iteration 1 is done, iteration 2 under way
        killed_at = time.time()
        _terminate(_ns_pids(worker_ns), grace_s=0)  # SIGKILL at once: the node is lost
        rc = driver.wait(timeout=300)
        reader.join(timeout=10)
        out = "".join(lines)
        assert rc == 0, out[-6000:]
        run_s = time.time() - killed_at
        after = observer.state()
        observer.close()

        # before the loss, env runners ran on both nodes
        assert _runner_nodes(before) == {by_ip[head_ip], by_ip[worker_ip]}, before["actors"]
        for i in range(1, ITERATIONS + 1):
            assert f"iter {i:4d} |" in out, out[-4000:]
        healthy = _tb(logdir, "fault_tolerance/healthy_env_runners")
        lifetime = _tb(logdir, "throughput/env_steps_lifetime")
        steps = [lifetime[i] - lifetime.get(i - 1, 0.0) for i in sorted(lifetime)]
        assert healthy[1] == 2, healthy
        # after the loss only the head's runner sampled, and every iteration's batch came
        assert healthy[ITERATIONS] == 1, healthy
        assert sorted(lifetime) == list(range(1, ITERATIONS + 1)), lifetime
        assert all(s >= 1000 for s in steps), steps
        runners = sorted((a["State"], a["Address"]["NodeID"][:8])
                         for a in after["actors"].values()
                         if a["ActorClassName"] == RUNNER_CLASS)
        print(f"netns cluster: setup {setup_s:.1f} s, run after the kill {run_s:.1f} s, "
              f"healthy runners {healthy}, env steps per iteration {steps}, "
              f"worker node alive after the run: "
              f"{[n['Alive'] for n in after['nodes'] if n['NodeID'] == by_ip[worker_ip]]}, "
              f"runners after the run (state, node): {runners}")
    finally:
        if observer is not None:
            observer.close()
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        _stop_namespaces(head_ns, worker_ns)
        for proc in nodes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
        print(f"netns test total {time.time() - start:.1f} s")
