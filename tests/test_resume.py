"""Checkpoints and resume: completeness check, run folders, env_config, TensorBoard steps.

Issue 24 ("Reliability"): a checkpoint without ``learner_group/`` resumed silently from
fresh weights, a truncated weights file gave a pickle traceback, a run folder as
``--resume`` died in RLlib, other env kwargs were accepted, and a run killed after an
iteration was logged but before it was checkpointed wrote that step twice on resume.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from policies.config import build_config
from policies.training import (
    CHECKPOINT_DIR,
    COMPLETE_FILE,
    LATEST_FILE,
    check_checkpoint,
    check_resume_compatible,
    evaluate_checkpoint,
    open_checkpoint,
    run_training,
)

ROOT = Path(__file__).resolve().parents[1]
ENV, ALGO, MODE = "job_scheduling", "ppo", "shared"
ENV_KWARGS = {"max_cycles": 25}
TINY = {"train_batch_size_per_learner": 100, "minibatch_size": 50, "num_epochs": 1}
CLI = [
    sys.executable, str(ROOT / "scripts" / "train.py"), "--env", ENV, "--algo", ALGO,
    "--policy-mode", MODE, "--env-kwargs", '{"max_cycles": 25}',
    "--set", "train_batch_size_per_learner=100", "--set", "minibatch_size=50",
    "--set", "num_epochs=1", "--num-env-runners", "0", "--envs-per-runner", "2",
]
WEIGHTS = "learner_group/learner/rl_module/shared/module_state.pkl"


def _config(env_kwargs=None):
    return build_config(ENV, ALGO, MODE, seed=0, num_env_runners=0, envs_per_runner=2,
                        overrides=TINY, env_kwargs=ENV_KWARGS if env_kwargs is None else env_kwargs)


def _info(config):
    return {"env": ENV, "algo": ALGO, "policy_mode": MODE, "sampler": "multi_agent",
            "env_config": config.env_config}


def _env():
    env = dict(os.environ)
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["OMP_NUM_THREADS"] = "1"
    return env


def _script(script, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                          capture_output=True, text=True, timeout=240, env=_env(), cwd=ROOT)


def _one_error_line(p, *needles):
    """The CLI failed with exit code 2 and one ``error:`` line holding ``needles``."""
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, p.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]



@pytest.fixture(scope="module")
def trained(local_ray, tmp_path_factory):
    """A run folder with complete checkpoints after iterations 1 and 2."""
    logdir = tmp_path_factory.mktemp("trained")
    config = _config()
    run_training(config, iterations=2, logdir=logdir, checkpoint_every=1,
                 run_info=_info(config), verbose=False)
    return logdir


def _copy(trained, tmp_path, name="iter_000002"):
    return Path(shutil.copytree(trained / CHECKPOINT_DIR / name, tmp_path / name))


def test_a_checkpoint_without_learner_group_is_refused_naming_it(trained, tmp_path):
    ckpt = _copy(trained, tmp_path)
    shutil.rmtree(ckpt / "learner_group")
    config = _config()
    with pytest.raises(ValueError, match="not a complete checkpoint: missing learner_group"):
        run_training(config, iterations=1, logdir=tmp_path / "resumed", resume=ckpt,
                     run_info=_info(config), verbose=False)
    assert not (tmp_path / "resumed").exists()  # refused before anything was trained
    with pytest.raises(ValueError, match="missing learner_group"):
        evaluate_checkpoint(ckpt, episodes=1)
    # the CLI: one error line, before Ray starts
    p = subprocess.run([*CLI, "--iterations", "1", "--logdir", str(tmp_path / "cli"),
                        "--resume", str(ckpt)],
                       capture_output=True, text=True, timeout=240, env=_env(), cwd=ROOT)
    _one_error_line(p, "missing learner_group", str(ckpt))
    assert not (tmp_path / "cli").exists()


def test_b_truncated_or_corrupt_weights_give_a_clear_error(trained, tmp_path):
    ckpt = _copy(trained, tmp_path)
    weights = ckpt / WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    config = _config()
    with pytest.raises(ValueError, match=f"damaged {WEIGHTS} .*truncated"):
        run_training(config, iterations=1, logdir=tmp_path / "resumed", resume=ckpt,
                     run_info=_info(config), verbose=False)
    p = _script("evaluate.py", "--checkpoint", str(ckpt), "--episodes", "1")
    _one_error_line(p, "not a complete checkpoint", WEIGHTS, "truncated")
    # the same size, other bytes
    weights.write_bytes(data[:100] + bytes(255 - b for b in data[100:200]) + data[200:])
    with pytest.raises(ValueError, match=f"damaged {WEIGHTS} \\(its content is not what"):
        check_checkpoint(ckpt)


def test_c_a_run_folder_resumes_from_its_latest_complete_checkpoint(trained, tmp_path):
    # a moved (copied) run folder: its latest_checkpoint.txt names the original's path,
    # the checkpoint is looked up by name inside the copy
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    path, info = open_checkpoint(run)
    assert path == run / CHECKPOINT_DIR / "iter_000002"
    assert info["training_iteration"] == 2
    config = _config()
    summary = run_training(config, iterations=1, logdir=run, resume=run,
                           run_info=_info(config), verbose=False)
    assert summary["training_iteration"] == 3 and summary["iterations"] == 1
    # without a latest_checkpoint.txt: refused, naming the checkpoints inside
    (run / LATEST_FILE).unlink()
    with pytest.raises(ValueError, match=r"is a run folder .*'iter_000001', 'iter_000002', "
                                         r"'iter_000003'"):
        open_checkpoint(run)


def test_d_other_env_kwargs_on_resume_are_an_error_naming_the_keys(trained, tmp_path):
    ckpt = trained / CHECKPOINT_DIR / "iter_000002"
    config = _config({"max_cycles": 30, "grid_size": 7})
    with pytest.raises(ValueError, match=r"another env_config: env_kwargs\.grid_size "
                                         r"\(checkpoint unset, this run 7\); "
                                         r"env_kwargs\.max_cycles \(checkpoint 25, this run 30\)"):
        run_training(config, iterations=1, logdir=tmp_path / "resumed", resume=ckpt,
                     run_info=_info(config), verbose=False)
    assert not (tmp_path / "resumed").exists()
    assert check_resume_compatible(_info(_config()), ckpt) == ckpt  # the same kwargs: fine


def test_d2_a_default_typed_out_resumes_the_same_run(trained):
    """grid_size 5 is job_scheduling's default: unset in the checkpoint, 5 in this run (or
    the other way round) is the same env; another value is not."""
    import marl_envs

    ckpt = trained / CHECKPOINT_DIR / "iter_000002"
    defaults = {"env_config": {"env_kwargs": marl_envs.default_kwargs(ENV)}}
    assert defaults["env_config"]["env_kwargs"]["grid_size"] == 5
    typed = {**_info(_config({**ENV_KWARGS, "grid_size": 5})), "defaults": defaults}
    assert check_resume_compatible(typed, ckpt) == ckpt
    with pytest.raises(ValueError, match=r"grid_size \(checkpoint unset, this run 5\)"):
        check_resume_compatible({**typed, "defaults": {}}, ckpt)  # no defaults given
    other = {**_info(_config({**ENV_KWARGS, "grid_size": 6})), "defaults": defaults}
    with pytest.raises(ValueError, match=r"grid_size \(checkpoint unset, this run 6\)"):
        check_resume_compatible(other, ckpt)


def test_e_a_checkpoint_killed_while_saving_is_never_taken(trained, tmp_path, monkeypatch):
    # a whole checkpoint without its marker (the marker is written last)
    ckpt = _copy(trained, tmp_path)
    (ckpt / COMPLETE_FILE).unlink(missing_ok=True)
    with pytest.raises(ValueError, match=f"no completion marker {COMPLETE_FILE}"):
        open_checkpoint(ckpt)

    # the process dies after RLlib wrote iteration 2's files, before the marker
    from ray.rllib.algorithms.ppo import PPO

    class Killed(Exception):
        pass

    save = PPO.save_to_path

    def save_then_die(self, *args, **kwargs):
        out = save(self, *args, **kwargs)
        if self.iteration == 2:
            raise Killed
        return out

    monkeypatch.setattr(PPO, "save_to_path", save_then_die)
    logdir = tmp_path / "killed"
    config = _config()
    with pytest.raises(Killed):
        run_training(config, iterations=3, logdir=logdir, checkpoint_every=1,
                     run_info=_info(config), verbose=False)
    partial = logdir / CHECKPOINT_DIR / "iter_000002"
    assert (partial / "learner_group").is_dir() and not (partial / COMPLETE_FILE).exists()
    with pytest.raises(ValueError, match=f"no completion marker {COMPLETE_FILE}"):
        open_checkpoint(partial)
    first = (logdir / CHECKPOINT_DIR / "iter_000001").resolve()
    assert (logdir / LATEST_FILE).read_text().strip() == str(first)
    assert open_checkpoint(logdir)[0].resolve() == first


def _scalars(path):
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_f_a_run_killed_after_logging_resumes_without_duplicate_steps(tmp_path):
    logdir = tmp_path / "run"
    proc = subprocess.Popen(
        [*CLI, "--iterations", "100", "--checkpoint-every", "2", "--logdir", str(logdir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=ROOT,
        start_new_session=True,
    )
    seen = []
    try:
        deadline = time.time() + 180
        for line in proc.stdout:  # iteration 3 is logged (TensorBoard is flushed first) ...
            seen.append(line)
            if line.startswith("iter    3 |"):
                break
            assert time.time() < deadline, "no iteration 3 within 180 s"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # ... and the run dies before checkpoint 4
        proc.wait(timeout=30)
    assert any(ln.startswith("iter    3 |") for ln in seen), "".join(seen)[-3000:]
    assert not (logdir / CHECKPOINT_DIR / "iter_000004" / COMPLETE_FILE).exists()
    (killed_file,) = (logdir / "tb").iterdir()
    killed = _scalars(killed_file)
    assert [s for s, _ in killed["throughput/iteration_time_s"]] == [1, 2, 3]

    p = subprocess.run(
        [*CLI, "--iterations", "2", "--logdir", str(logdir),
         "--resume", str(logdir / CHECKPOINT_DIR / "iter_000002")],
        capture_output=True, text=True, timeout=240, env=_env(), cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "at iteration 2" in p.stdout and "iter    4 |" in p.stdout
    (resumed_file,) = set((logdir / "tb").iterdir()) - {killed_file}
    resumed = _scalars(resumed_file)
    merged = _scalars(logdir / "tb")
    assert set(merged) == set(killed) | set(resumed)
    for tag, points in merged.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), (tag, steps)
        # steps 1-2 come from the killed run, 3 and later from the resumed one
        expected = [pt for pt in killed.get(tag, []) if pt[0] < 3] + resumed.get(tag, [])
        assert points == expected, tag
    assert [s for s, _ in merged["throughput/iteration_time_s"]] == [1, 2, 3, 4]
    # the killed run's step 3 differed: the test tells the two runs apart
    assert any(dict(killed[t]).get(3) != dict(resumed[t]).get(3) for t in resumed)


def test_config_text_is_written_once_per_run():
    from policies.training import config_text

    class Config:
        def __init__(self, lr: float = 1e-3) -> None:
            self.lr = lr

        def to_dict(self) -> dict:
            return {"lr": self.lr, "gamma": 0.99, "fn": print}

    text = config_text(Config(lr=5e-4), {"env": "job_scheduling"})
    assert all(line.startswith("    ") for line in text.splitlines())  # a code block
    assert '"lr": 0.0005' in text and '"gamma"' not in text and '"env": "job_scheduling"' in text
