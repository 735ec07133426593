"""Bad command-line input ends with one ``error:`` line and exit code 2, quickly."""

import argparse
import importlib.util
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
    from policies.train import main

    with pytest.raises(SystemExit) as exc:
        main(["--env", "job_scheduling", "--algo", "ppo", "--address", address])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and repr(address) in err and "HOST:PORT" in err


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
    from policies.train import main

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
    dqn = build_config("job_scheduling", "dqn", "shared", num_env_runners=0,
                       overrides={"n_step": [1, 3]})
    assert dqn.n_step == [1, 3]
    with pytest.raises(ValueError, match=r"--set n_step: must be an integer >= 1, got 0"):
        build_config("job_scheduling", "dqn", "shared", num_env_runners=0,
                     overrides={"n_step": [0, 3]})


@pytest.mark.parametrize("argv, words", [
    (["--seed", "-1"], ["--seed", ">= 0", "-1"]),
    (["--episodes", "0"], ["--episodes", ">= 1"]),
    (["--json", "/nonexistent_dir_fairmarl/eval.json"], ["--json", "does not exist"]),
    (["--fix", "ctrl"], ["--fix", "MODULE=ACTION", "'ctrl'"]),
    (["--fix", "ctrl=-1"], ["--fix", "'ctrl=-1'"]),
])
def test_evaluate_rejects_bad_flags_before_evaluating(argv, words, tmp_path, capsys,
                                                      load_script):
    main = load_script("evaluate").main
    # the checkpoint is never opened: the flags are checked first
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(tmp_path / "no_checkpoint"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    for word in words:
        assert word in err, err


def _exits_2_naming(call, capsys, *words: str) -> str:
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


MISSING = "/nonexistent_dir_fairmarl/out"


@pytest.mark.parametrize("script, argv, words", [
    ("benchmark_envs", ["--steps", "0"], ["--steps", ">= 1", "0"]),
    ("benchmark_envs", ["--repeats", "0"], ["--repeats", ">= 1", "0"]),
    ("benchmark_envs", ["--seed", "-1"], ["--seed", ">= 0", "-1"]),
    ("bench_mauce_speed", ["--agents", "10,1"], ["--agents", ">= 2", "1"]),
    ("bench_mauce_speed", ["--horizon", "0"], ["--horizon", ">= 1", "0"]),
    ("bench_mauce_speed", ["--agents", ","], ["--agents", "','"]),
    ("measure_plant", ["--episodes", "1"], ["--episodes", ">= 2", "1"]),
    ("measure_plant", ["--out", f"{MISSING}/plant.md"], ["--out", "does not exist", MISSING]),
    ("train_bandits_rllib", ["--agents", "0"], ["--agents", ">= 1", "0"]),
    ("train_bandits_rllib", ["--agents", "1"], ["--agents 1", "n_agents", ">= 2"]),
    ("train_bandits_rllib", ["--env", "wind_farm", "--agents", "3"], ["--agents 3", "7"]),
    ("train_bandits_rllib", ["--seed", "-1"], ["--seed", ">= 0", "-1"]),
    ("train_bandits_rllib", ["--env-runners", "-1"], ["--env-runners", ">= 0", "-1"]),
    ("train_bandits_rllib", ["--batch-size", "abc"], ["--batch-size", "integer", "'abc'"]),
    ("train_bandits_rllib", ["--json", f"{MISSING}/h.json"], ["--json", "does not exist"]),
])
def test_scripts_reject_bad_numbers_and_output_folders_before_any_work(script, argv, words,
                                                                        capsys, load_script):
    main = load_script(script).main
    _exits_2_naming(lambda: main(argv), capsys, *words)


@pytest.mark.parametrize("argv, words", [
    (["--seconds", "0"], ["--seconds", "> 0", "'0'"]),
    (["--seconds", "nan"], ["--seconds", "'nan'"]),
    (["--copies", "0"], ["--copies", ">= 1", "0"]),
    (["--json", f"{MISSING}/t.json"], ["--json", "does not exist"]),
])
def test_benchmark_rllib_rejects_bad_flags_before_measuring(argv, words, capsys, monkeypatch,
                                                             load_script):
    module = load_script("benchmark_rllib")
    monkeypatch.setattr(sys, "argv", ["benchmark_rllib.py", *argv])
    _exits_2_naming(module.main, capsys, *words)


@pytest.mark.parametrize("module, argv", [
    ("policies.train", ["--env", "job_scheduling", "--algo", "ppo"]),
    ("policies.fen.train", ["--env", "job_scheduling", "--variant", "fen"]),
])
def test_summary_json_in_a_missing_folder_is_an_error_before_training(module, argv, capsys):
    main = importlib.import_module(module).main
    _exits_2_naming(lambda: main([*argv, "--summary-json", f"{MISSING}/s.json"]), capsys,
                    "--summary-json", "does not exist", MISSING)


def test_summary_json_may_go_into_the_logdir_the_run_creates(tmp_path):
    from policies import train as module
    from policies.cli import run_settings

    logdir = tmp_path / "run"  # made by the run, after the flags are checked
    args = module.parse_args(["--env", "job_scheduling", "--algo", "ppo", "--logdir",
                              str(logdir), "--summary-json", str(logdir / "summary.json")])
    assert run_settings(args)["logdir"] == str(logdir)
    args.logdir = str(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="--summary-json: folder .* does not exist"):
        run_settings(args)


def test_shared_argparse_types():
    from policies.cli import int_list_at_least, nonneg_int, output_file, positive_float

    assert nonneg_int("0") == 0 and positive_float("0.5") == 0.5
    assert int_list_at_least(2)("10, 20,") == [10, 20]
    assert output_file("") == ""  # the scripts' "none"
    for parse, text, message in [(nonneg_int, "-3", "must be >= 0, got -3"),
                                 (nonneg_int, "1.5", "must be an integer >= 0, got '1.5'"),
                                 (positive_float, "inf", "finite number > 0, got 'inf'"),
                                 (output_file, ROOT.as_posix(), "is a folder")]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)


def test_config_file_gives_defaults_that_flags_override(tmp_path):
    from policies.fen.train import parse_args as fen_args
    from policies.train import parse_args

    path = tmp_path / "run.yaml"
    path.write_text("env: matthew_effect\nalgo: a2c\niterations: 7\nquiet: true\n"
                    "set: {lr: 0.001, model_config: {fcnet_hiddens: [32]}}\n"
                    "env_kwargs: {max_cycles: 50}\n")
    args = parse_args(["--config", str(path), "--iterations", "3"])
    assert (args.env, args.algo, args.iterations, args.quiet) == ("matthew_effect", "a2c", 3,
                                                                  True)
    from policies.cli import parse_env_kwargs, parse_overrides

    assert parse_overrides(args.overrides) == {"lr": 0.001,
                                               "model_config": {"fcnet_hiddens": [32]}}
    assert parse_env_kwargs(args.env_kwargs) == {"max_cycles": 50}
    (tmp_path / "fen.toml").write_text('variant = "avg"\nperiod = 10\n')
    args = fen_args(["--config", str(tmp_path / "fen.toml")])
    assert (args.variant, args.period) == ("avg", 10)


@pytest.mark.parametrize("text, words", [
    ("algoo: ppo\n", ["unknown key 'algoo'", "allowed:", "'algo'"]),
    ("iterations: many\n", ["argument --iterations", "'many'"]),
    ("quiet: 3\n", ["'quiet' must be true or false"]),
    ("set: [1]\n", ["'set' must be a mapping"]),
    ("env: [\n", ["not valid YAML"]),
])
def test_bad_config_file_is_a_usage_error(tmp_path, text, words, capsys):
    from policies.train import parse_args

    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        parse_args(["--env", "job_scheduling", "--algo", "ppo", "--config", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert "argument --config" in err or "argument --iterations" in err
    assert all(w in err for w in words), err


def test_controller_ablation_names_a_pattern_that_matches_nothing(tmp_path, capsys,
                                                                   load_script):
    main = load_script("fen_controller_ablation").main
    pattern = str(tmp_path / "variant=fen,seed=*")
    with pytest.raises(SystemExit) as exc:
        main(["--fen", pattern])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "no checkpoint or trial folder matches" in err
    assert pattern in err
