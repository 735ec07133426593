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


def _train(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args],
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


def test_address_where_nothing_listens_fails_fast():
    address = f"127.0.0.1:{_free_port()}"
    proc, elapsed = _train("--env", "job_scheduling", "--algo", "ppo", "--address", address,
                           "--iterations", "1")
    _one_error_line(proc, address, "no Ray cluster")
    assert elapsed < 30


def test_address_of_something_that_is_no_ray_cluster_fails_within_30_s():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:  # a plain TCP server that never speaks
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

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
