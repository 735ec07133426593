"""Bad command-line input ends with one ``error:`` line and exit code 2, quickly."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(*args: str, timeout: float = 60,
           script: str = "train.py") -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
    return proc, time.perf_counter() - start


def _one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("script, args", [
    ("train.py", ["--env", "job_scheduling", "--algo", "ppo"]),
    ("train_fen.py", ["--env", "job_scheduling", "--variant", "fen"]),
])
def test_address_where_nothing_listens_fails_fast(script, args):
    address = f"127.0.0.1:{_free_port()}"
    proc, elapsed = _train(*args, "--address", address, "--iterations", "1", script=script)
    _one_error_line(proc, address, "no Ray cluster")
    assert elapsed < 30


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.0 200 OK\r\n\r\nhello\n"],
                         ids=["silent", "http"])
def test_address_of_something_that_is_no_ray_cluster_fails_within_30_s(reply):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:  # a plain TCP server: silent, or an HTTP/1 answer to anything
        while True:
            try:
                conn = server.accept()[0]
            except OSError:
                return
            accepted.append(conn)
            conn.sendall(reply)

    threading.Thread(target=accept, daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    try:
        proc, elapsed = _train("--env", "job_scheduling", "--algo", "ppo", "--address",
                               address, "--iterations", "1", timeout=90)
    finally:
        server.close()
        for conn in accepted:
            conn.close()
    _one_error_line(proc, address, "did not answer as a Ray GCS")
    assert accepted  # the probe did connect
    assert elapsed < 30


@pytest.mark.parametrize("address", ["abc", "host:notaport", ":0", "127.0.0.1:0",
                                     "127.0.0.1:70000"])
def test_malformed_address_is_rejected_before_anything_starts(address, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from train import main
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as exc:
        main(["--env", "job_scheduling", "--algo", "ppo", "--address", address])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and repr(address) in err and "HOST:PORT" in err


def _script_main(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        module = __import__(name)
    finally:
        sys.path.pop(0)
    return module.main


@pytest.mark.parametrize("setting, words", [
    ("gamma=5", ["gamma", "<= 1", "5"]),
    ("lr=-1", ["lr", "> 0", "-1"]),
    ("train_batch_size_per_learner=abc", ["train_batch_size_per_learner", "an integer",
                                          "'abc'"]),
    ("minibatch_size=0", ["minibatch_size", ">= 1"]),
    ("num_epochs=2.5", ["num_epochs", "an integer", "2.5"]),
    ("lambda_=1.5", ["lambda_", "<= 1"]),
    ("entropy_coeff=-0.1", ["entropy_coeff", ">= 0"]),
    ("clip_param=0", ["clip_param", "> 0"]),
    ("gamma=nan", ["gamma", "nan"]),
])
def test_set_values_out_of_range_are_errors(setting, words, capsys):
    main = _script_main("train")
    with pytest.raises(SystemExit) as exc:
        main(["--env", "job_scheduling", "--algo", "ppo", "--set", setting])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    for word in words:
        assert word in err, err


def test_set_values_in_range_still_apply():
    from policies.config import build_config

    config = build_config("job_scheduling", "ppo", "shared", num_env_runners=0,
                          overrides={"gamma": 1, "lr": 1e-4, "grad_clip": None})
    assert (config.gamma, config.lr, config.grad_clip) == (1, 1e-4, None)


@pytest.mark.parametrize("argv, words", [
    (["--seed", "-1"], ["--seed", ">= 0", "-1"]),
    (["--episodes", "0"], ["--episodes", ">= 1"]),
    (["--json", "/nonexistent_dir_fairmarl/eval.json"], ["--json", "does not exist"]),
])
def test_evaluate_rejects_bad_flags_before_evaluating(argv, words, tmp_path, capsys):
    main = _script_main("evaluate")
    # the checkpoint is never opened: the flags are checked first
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(tmp_path / "no_checkpoint"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("argv, words", [
    (["--problem", "chain0101", "--agents", "0"], ["agents", ">= 1"]),
    (["--problem", "chain0101", "--agents", "1"], ["n_agents", ">= 2", "1"]),
    (["--problem", "chain0101", "--seed", "-1"], ["--seed", ">= 0"]),
    (["--problem", "chain0101", "--algos", ","], ["--algos", "no algorithm"]),
    (["--problem", "chain0101", "--json", "/nonexistent_dir_fairmarl/s.json"],
     ["--json", "does not exist"]),
])
def test_run_bandits_rejects_bad_flags_before_running(argv, words, tmp_path, capsys):
    main = _script_main("run_bandits")
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    for word in words:
        assert word in err, err
    assert not list(tmp_path.iterdir())  # no report written
