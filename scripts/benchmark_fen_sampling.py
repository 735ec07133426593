#!/usr/bin/env python
"""FEN training throughput on Job Scheduling: RLlib's MultiAgentEnvRunner vs the fast
hierarchical sampler (policies/fen/vector_runner.py), in one run on one machine.

    python scripts/benchmark_fen_sampling.py [--iterations 4] [--warmup 1] \
        [--out results/fen_sampling/README.md]

Both train FEN with build_fen_config's defaults (PPO settings, 4000 env steps per
iteration, rollout fragments), seed 0, as ``scripts/train_fen.py`` does (1 remote env
runner x 8 env copies), one after the other in this process's Ray; only ``sampler``
differs. Env steps are counted as RLlib counts them for FEN (controller steps and base
steps). Throughput = env steps of the timed iterations / their wall time (sampling +
learning); RLlib's sampling and learner-update timers are reported beside it. Writes
``--out`` (.md) and the same name with .json; an existing file is kept unless ``--out``
is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

DEFAULT_OUT = "results/fen_sampling/README.md"
SAMPLERS = ("multi_agent", "vector")


def run_sampler(sampler: str, iterations: int, warmup: int, seed: int) -> dict:
    """Train FEN on Job Scheduling with ``sampler``; throughput of the timed iterations."""
    from policies.fen.config import build_fen_config

    config = build_fen_config("job_scheduling", "fen", seed=seed, num_env_runners=1,
                              envs_per_runner=8, sampler=sampler)
    algo = config.build_algo()
    try:
        for _ in range(warmup):
            algo.train()
        steps, sample_s, learn_s, utilization = 0, 0.0, 0.0, None
        start = time.perf_counter()
        for _ in range(iterations):
            result = algo.train()
            steps += int(result["env_runners"]["num_env_steps_sampled"])
            timers = result.get("timers", {})
            sample_s += float(timers.get("env_runner_sampling_timer", 0.0))
            learn_s += float(timers.get("learner_update_timer", 0.0))
            utilization = result["env_runners"].get("fairness/utilization", utilization)
        wall = time.perf_counter() - start
    finally:
        algo.stop()
    return {
        "sampler": sampler, "iterations": iterations, "env_steps": steps, "wall_s": wall,
        "env_steps_per_s": steps / wall, "s_per_iteration": wall / iterations,
        # RLlib's timers are smoothed means over iterations, not sums: one iteration each
        "sampling_s_per_iteration": sample_s / iterations,
        "learner_update_s_per_iteration": learn_s / iterations,
        "train_batch_size_per_learner": config.train_batch_size_per_learner,
        "minibatch_size": config.minibatch_size, "num_epochs": config.num_epochs,
        "rollout_fragment_length": config.rollout_fragment_length,
        "fairness_utilization_last": utilization,
    }


def render(rows: dict[str, dict], command: str, load: dict[str, list[float]]) -> str:
    ma, vec = rows["multi_agent"], rows["vector"]
    ratio = vec["env_steps_per_s"] / ma["env_steps_per_s"]
    sample_ratio = ma["sampling_s_per_iteration"] / max(vec["sampling_s_per_iteration"], 1e-9)
    floor = ma["s_per_iteration"] / max(vec["learner_update_s_per_iteration"], 1e-9)
    lines = [
        "# FEN training throughput on Job Scheduling: MultiAgentEnvRunner vs fast sampler",
        "",
        f"Command: `{command}`",
        "",
        f"One run, one machine ({platform.machine()}, {os.cpu_count()} CPUs shared with other "
        f"work); load average (1/5/15 min) before: {load['before']}, after: {load['after']}.",
        f"FEN defaults of build_fen_config, seed 0, 1 remote env runner x 8 env copies; "
        f"{ma['train_batch_size_per_learner']} env steps per iteration, minibatch "
        f"{ma['minibatch_size']}, {ma['num_epochs']} epochs, rollout fragment "
        f"{ma['rollout_fragment_length']} (the same for both); "
        f"{ma['iterations']} timed iterations each after warm-up.",
        "",
        "| sampler | env steps/s (sampling + learning) | s / iteration | sampling s / it. "
        "| learner update s / it. |",
        "|---|---|---|---|---|",
    ]
    for r in (ma, vec):
        lines.append(
            f"| {r['sampler']} | {r['env_steps_per_s']:,.0f} | {r['s_per_iteration']:.2f} | "
            f"{r['sampling_s_per_iteration']:.2f} | {r['learner_update_s_per_iteration']:.2f} |")
    lines += [
        "",
        f"**Ratio vector / multi_agent: {ratio:.2f}x** (target >= 5x); sampling alone "
        f"{sample_ratio:.1f}x faster.",
        "",
        f"Bound: with sampling free, an iteration still costs the learner update "
        f"({vec['learner_update_s_per_iteration']:.2f} s: PPO's epochs over the batch, and "
        "the learner connector pipeline, incl. the discriminator's controller forward "
        f"passes), so no sampler can exceed {floor:.1f}x with these PPO settings.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=4, help="timed iterations per sampler")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help=f"markdown file (default {DEFAULT_OUT}; an "
                                               "existing file is overwritten only when given)")
    args = p.parse_args()
    out = Path(args.out or DEFAULT_OUT)
    out_json = out.with_suffix(".json")
    if args.out is None and (out.exists() or out_json.exists()):
        print(f"{out} exists; pass --out to overwrite or write elsewhere", file=sys.stderr)
        return 2
    if args.iterations < 1 or args.warmup < 0:
        print("--iterations must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    from policies.training import init_ray

    command = " ".join(["python scripts/benchmark_fen_sampling.py", *sys.argv[1:]])
    load_before = [round(x, 2) for x in os.getloadavg()]
    init_ray(num_cpus=2)
    rows = {}
    for sampler in SAMPLERS:
        rows[sampler] = run_sampler(sampler, args.iterations, args.warmup, args.seed)
        print(f"{sampler}: {rows[sampler]['env_steps_per_s']:,.0f} env steps/s", flush=True)
    load = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows, command, load))
    ratio = rows["vector"]["env_steps_per_s"] / rows["multi_agent"]["env_steps_per_s"]
    out_json.write_text(json.dumps({"command": command, "load_average": load, "ratio": ratio,
                                    **rows}, indent=2) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
