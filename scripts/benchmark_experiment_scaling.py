#!/usr/bin/env python
"""Wall time of one experiment on a two-raylet Ray cluster: trials in parallel vs one at a
time (``run_experiment.py --max-concurrent 1``), measured in one run on one machine.

    python scripts/benchmark_experiment_scaling.py [--trials 4] [--iterations 20] \
        [--out results/experiment_scaling/README.md]

Builds a cluster of two raylets on 127.0.0.1 with ``ray.cluster_utils.Cluster`` (one CPU
each, a private short ``RAY_TMPDIR``, its own token), then runs the same experiment file
(``--trials`` PPO trials on Job Scheduling, seeds 0..n-1, each training in its own
process) twice through ``scripts/run_experiment.py --address``: once with
``--max-concurrent 1``, once as resources allow (one trial per raylet at a time). Each
run starts from an empty Tune folder. The ratio is parallel wall time / sequential wall
time of the whole command (start-up included). Writes ``--out`` (.md) and the same name
with .json; an existing file is kept unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_OUT = "results/experiment_scaling/README.md"
#: the trials: small PPO runs, one CPU each (no remote env runners)
EXPERIMENT = """
name: scaling_benchmark
trial:
  kind: rllib
  params: {{env: job_scheduling, algo: ppo, policy_mode: shared, envs_per_runner: 4,
           overrides: {{train_batch_size_per_learner: 1000, minibatch_size: 250,
                        num_epochs: 2}}}}
search: {{seed: {seeds}}}
stop: {{iterations: {iterations}}}
checkpoint: {{every: {iterations}, keep: 1}}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from policies.cli import int_at_least, output_file

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int_at_least(2), default=4, help="trials (seeds)")
    p.add_argument("--iterations", type=int_at_least(1), default=20,
                   help="PPO iterations per trial")
    p.add_argument("--out", type=output_file, default=None,
                   help=f"report (.md; default {DEFAULT_OUT}, kept if it exists)")
    return p.parse_args(argv)


def run(study: Path, storage: Path, address: str, env: dict[str, str],
        max_concurrent: int | None) -> dict:
    """One ``run_experiment.py`` invocation; its wall time and the nodes of its trials."""
    cmd = [sys.executable, str(ROOT / "scripts" / "run_experiment.py"),
           str(study / "experiment.yaml"), "--address", address, "--storage", str(storage),
           "--out", str(study / "out")]
    if max_concurrent is not None:
        cmd += ["--max-concurrent", str(max_concurrent)]
    shutil.rmtree(storage, ignore_errors=True)
    shutil.rmtree(study / "out", ignore_errors=True)
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"run_experiment.py failed ({p.returncode}):\n{p.stderr[-3000:]}")
    summaries = [json.loads(f.read_text()) for f in (study / "out" / "trials").glob("*.json")]
    return {"max_concurrent": max_concurrent, "wall_s": wall, "trials": len(summaries),
            "nodes": len({s["node"] for s in summaries}),
            "trial_wall_s": sorted(round(s["wall_time_s"], 1) for s in summaries)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out or DEFAULT_OUT)
    if args.out is None and out.exists():
        print(f"error: {out} exists; pass --out to overwrite it", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # Ray's socket paths must stay short
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_TMPDIR=tmp,
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    os.environ.update(env)
    import ray
    from ray.cluster_utils import Cluster

    study = Path(tmp) / "study"
    study.mkdir()
    seeds = list(range(args.trials))
    (study / "experiment.yaml").write_text(EXPERIMENT.format(seeds=seeds,
                                                             iterations=args.iterations))
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        print(f"two raylets at {cluster.address}; {args.trials} trials x {args.iterations} "
              "iterations", flush=True)
        sequential = run(study, Path(tmp) / "tune", cluster.address, env, 1)
        print(f"--max-concurrent 1: {sequential['wall_s']:.1f} s", flush=True)
        parallel = run(study, Path(tmp) / "tune", cluster.address, env, None)
        print(f"parallel: {parallel['wall_s']:.1f} s", flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = parallel["wall_s"] / sequential["wall_s"]
    report = {
        "command": "python scripts/benchmark_experiment_scaling.py "
                   f"--trials {args.trials} --iterations {args.iterations} --out {out}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "cluster": "2 raylets on 127.0.0.1 (ray.cluster_utils.Cluster), 1 CPU each",
        "experiment": EXPERIMENT.format(seeds=seeds, iterations=args.iterations).strip(),
        "sequential": sequential, "parallel": parallel, "ratio": ratio,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.write_text(
        "# Experiment scaling on a two-raylet cluster\n\n"
        f"Command: `{report['command']}` ({report['machine']}; the machine is shared, "
        "so other work may have run at the same time).\n\n"
        f"Cluster: {report['cluster']}. The experiment ({args.trials} PPO trials on Job "
        f"Scheduling, {args.iterations} iterations of 1000 env steps each, one CPU per "
        "trial) ran twice through `scripts/run_experiment.py --address`, each time from an "
        "empty Tune folder; wall time of the whole command, start-up included.\n\n"
        "| run | wall time | trials | raylets used | trials' own wall times (s) |\n"
        "|---|---|---|---|---|\n"
        f"| `--max-concurrent 1` | {sequential['wall_s']:.1f} s | {sequential['trials']} | "
        f"{sequential['nodes']} | {sequential['trial_wall_s']} |\n"
        f"| parallel (as resources allow) | {parallel['wall_s']:.1f} s | "
        f"{parallel['trials']} | {parallel['nodes']} | {parallel['trial_wall_s']} |\n\n"
        f"**Ratio parallel / sequential: {ratio:.2f}** (target <= 0.6; two raylets of "
        "one CPU bound it below by 0.5).\n\n"
        "```yaml\n" + report["experiment"] + "\n```\n")
    print(f"ratio {ratio:.2f}; wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
