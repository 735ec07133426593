#!/usr/bin/env python
"""FEN training throughput on Job Scheduling: the MultiAgentEnvRunner path FEN trained on
before the fast hierarchical sampler against today's default, in one run on one machine.

    python scripts/benchmark_fen_sampling.py [--iterations 4] [--warmup 1] \
        [--baseline-commit 4fb7de3] [--out results/fen_sampling/README.md]

Every setup trains FEN with build_fen_config's defaults (PPO settings, 4000 env steps per
iteration, minibatch, epochs), seed 0, 8 env copies, one after the other on 2 CPUs. The
first row is the code of ``--baseline-commit`` (the parent of the fast sampler's commit:
RLlib's MultiAgentEnvRunner and PPOTorchLearner, 1 remote env runner), run from a
temporary ``git worktree`` in a subprocess; the others are this tree's setups
(:data:`SETUPS`), which differ only in the sampler, where it runs and the learner class.
Env steps are counted as RLlib counts them for FEN (controller steps and base steps).
Throughput = env steps of the timed iterations / their wall time (sampling + learning);
RLlib's sampling and learner-update timers are reported beside it. Writes ``--out`` (.md)
and the same name with .json; an existing file is kept unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

DEFAULT_OUT = "results/fen_sampling/README.md"
#: the parent of the fast sampler's commit (78005b2): FEN's MultiAgentEnvRunner path
BASELINE_COMMIT = "4fb7de3"
BASELINE, DEFAULT = "before", "default"
#: name -> (what it is, sampler, remote env runners, main-process CPUs, FEN's learner?)
SETUPS: dict[str, tuple[str, str, int, int, bool]] = {
    "multi_agent": ("this tree, RLlib's MultiAgentEnvRunner and PPOTorchLearner, 1 remote "
                    "env runner", "multi_agent", 1, 1, False),
    "vector_remote": ("fast sampler, FEN's learner (2 threads), 1 remote env runner",
                      "vector", 1, 1, True),
    DEFAULT: ("today's default (train_fen.py): fast sampler in the main process, FEN's "
              "learner, 2 main-process CPUs", "vector", 0, 2, True),
}
_RESULT = "BENCHMARK-RESULT "


def time_training(config, iterations: int, warmup: int) -> dict:
    """Build ``config``'s algorithm, train ``warmup`` then ``iterations`` iterations; the
    timed iterations' throughput and RLlib's timers."""
    algo = config.build_algo()
    try:
        for _ in range(warmup):
            algo.train()
        steps, sample_s, learn_s = 0, 0.0, 0.0
        start = time.perf_counter()
        for _ in range(iterations):
            result = algo.train()
            steps += int(result["env_runners"]["num_env_steps_sampled"])
            timers = result.get("timers", {})
            sample_s += float(timers.get("env_runner_sampling_timer", 0.0))
            learn_s += float(timers.get("learner_update_timer", 0.0))
        wall = time.perf_counter() - start
    finally:
        algo.stop()
    return {
        "iterations": iterations, "env_steps": steps, "wall_s": wall,
        "env_steps_per_s": steps / wall, "s_per_iteration": wall / iterations,
        # RLlib's timers are smoothed means over iterations, not sums: one iteration each
        "sampling_s_per_iteration": sample_s / iterations,
        "learner_update_s_per_iteration": learn_s / iterations,
        "train_batch_size_per_learner": config.train_batch_size_per_learner,
        "minibatch_size": config.minibatch_size, "num_epochs": config.num_epochs,
        "rollout_fragment_length": config.get_rollout_fragment_length(),
        "learner": config.learner_class.__name__,
    }


def run_setup(name: str, iterations: int, warmup: int, seed: int) -> dict:
    """Train FEN on Job Scheduling with this tree's setup ``name``."""
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

    from policies.fen.config import build_fen_config, sampler_of

    what, sampler, runners, main_cpus, fen_learner = SETUPS[name]
    config = build_fen_config("job_scheduling", "fen", seed=seed, num_env_runners=runners,
                              envs_per_runner=8, sampler=sampler, main_cpus=main_cpus)
    if not fen_learner:
        config.learners(learner_class=PPOTorchLearner)
    return {"setup": name, "what": what, "sampler": sampler_of(config),
            "num_env_runners": runners, "main_cpus": main_cpus,
            **time_training(config, iterations, warmup)}


def run_commit(commit: str, iterations: int, warmup: int, seed: int) -> dict:
    """Train FEN on Job Scheduling as the code of ``commit`` does (its build_fen_config
    defaults, 1 remote env runner x 8 copies), from a temporary git worktree."""
    with tempfile.TemporaryDirectory(prefix="fen-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(ROOT)]
        done = subprocess.run([*git, "worktree", "add", "--detach", str(tree), commit],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"cannot check out --baseline-commit {commit!r} (needs this "
                             f"repository's history): {done.stderr.strip()}")
        try:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--_in-tree", str(tree),
                 "--iterations", str(iterations), "--warmup", str(warmup),
                 "--seed", str(seed)],
                capture_output=True, text=True, cwd=tree)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)],
                           capture_output=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(_RESULT)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the baseline run at {commit} failed:\n{proc.stderr[-3000:]}")
    row = json.loads(lines[-1][len(_RESULT):])
    return {"setup": BASELINE, "what": f"the code at {commit} (before the fast sampler): "
            "RLlib's MultiAgentEnvRunner and PPOTorchLearner, 1 remote env runner",
            "sampler": "multi_agent", "num_env_runners": 1, "main_cpus": 1, **row}


def _in_tree(tree: str, iterations: int, warmup: int, seed: int) -> int:
    """The subprocess of :func:`run_commit`: the old tree's FEN config, timed."""
    sys.path.insert(0, tree)
    from policies.fen.config import build_fen_config
    from policies.training import init_ray

    init_ray(num_cpus=2)
    config = build_fen_config("job_scheduling", "fen", seed=seed, num_env_runners=1,
                              envs_per_runner=8)
    print(_RESULT + json.dumps(time_training(config, iterations, warmup)), flush=True)
    return 0


def render(rows: dict[str, dict], command: str, load: dict[str, list[float]]) -> str:
    base, default = rows[BASELINE], rows[DEFAULT]
    lines = [
        "# FEN training throughput on Job Scheduling: before the fast sampler vs today",
        "",
        f"Command: `{command}`",
        "",
        f"One run, one machine ({platform.machine()}, {os.cpu_count()} CPUs shared with other "
        f"work); load average (1/5/15 min) before: {load['before']}, after: {load['after']}.",
        f"FEN defaults of build_fen_config, seed 0, 8 env copies; "
        f"{base['train_batch_size_per_learner']} env steps per iteration, minibatch "
        f"{base['minibatch_size']}, {base['num_epochs']} epochs (the same for every setup); "
        f"{base['iterations']} timed iterations each after warm-up.",
        "",
        "| setup | env steps/s (sampling + learning) | s / iteration | sampling s / it. "
        "| learner update s / it. | rollout fragment | ratio to before |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        lines.append(
            f"| {r['setup']}: {r['what']} | {r['env_steps_per_s']:,.0f} | "
            f"{r['s_per_iteration']:.2f} | {r['sampling_s_per_iteration']:.2f} | "
            f"{r['learner_update_s_per_iteration']:.2f} | {r['rollout_fragment_length']} | "
            f"{r['env_steps_per_s'] / base['env_steps_per_s']:.2f}x |")
    ratio = default["env_steps_per_s"] / base["env_steps_per_s"]
    learn = default["learner_update_s_per_iteration"]
    lines += [
        "",
        f"**Ratio {DEFAULT} / {BASELINE}: {ratio:.2f}x** (target >= 5x).",
        "",
        f"Bound: {DEFAULT}'s iteration is {default['s_per_iteration']:.2f} s, of which the "
        f"learner update (RLlib's learner connectors and PPO's minibatch steps, the same "
        f"arithmetic as {BASELINE}'s) takes {learn:.2f} s; with sampling free, no sampler "
        f"could exceed {base['s_per_iteration'] / max(learn, 1e-9):.1f}x with these PPO "
        "settings on this machine.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=4, help="timed iterations per setup")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline-commit", default=BASELINE_COMMIT,
                   help=f"the commit whose FEN path is the baseline (default {BASELINE_COMMIT})")
    p.add_argument("--out", default=None, help=f"markdown file (default {DEFAULT_OUT}; an "
                                               "existing file is overwritten only when given)")
    p.add_argument("--_in-tree", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.iterations < 1 or args.warmup < 0:
        print("--iterations must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if args._in_tree:
        return _in_tree(args._in_tree, args.iterations, args.warmup, args.seed)
    out = Path(args.out or DEFAULT_OUT)
    out_json = out.with_suffix(".json")
    if args.out is None and (out.exists() or out_json.exists()):
        print(f"{out} exists; pass --out to overwrite or write elsewhere", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    command = " ".join(["python scripts/benchmark_fen_sampling.py", *sys.argv[1:]])
    load_before = [round(x, 2) for x in os.getloadavg()]
    total = 1 + len(SETUPS)
    rows = {BASELINE: run_commit(args.baseline_commit, args.iterations, args.warmup,
                                 args.seed)}
    print(f"[1/{total}] {BASELINE}: {rows[BASELINE]['env_steps_per_s']:,.0f} env steps/s",
          flush=True)
    from policies.training import init_ray

    init_ray(num_cpus=2)
    for k, name in enumerate(SETUPS):
        rows[name] = run_setup(name, args.iterations, args.warmup, args.seed)
        print(f"[{k + 2}/{total}] {name}: {rows[name]['env_steps_per_s']:,.0f} env steps/s",
              flush=True)
    load = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows, command, load))
    ratio = rows[DEFAULT]["env_steps_per_s"] / rows[BASELINE]["env_steps_per_s"]
    out_json.write_text(json.dumps({"command": command, "load_average": load, "ratio": ratio,
                                    **rows}, indent=2) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
