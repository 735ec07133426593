"""One config trains one run: two invocations of a training script give the same run
whatever string-hash seed they were started with (``policies.cli.fix_hash_seed``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_fen_losses(tmp_path: Path, hash_seed: str) -> dict[str, float]:
    """The warm start's figures and the losses of one tiny FEN iteration on
    resource_allocation (new agent ids every period, the case whose agent order RLlib takes
    from a set), in the comparison's setup (action mask, slot-scoring sub-policies, feature
    scale, warm start), started with ``hash_seed``."""
    out = tmp_path / f"hash{hash_seed}"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_fen.py"), "--env", "resource_allocation",
         "--variant", "fen", "--period", "10", "--segment-end", "truncate",
         "--env-kwargs", '{"load": 1.5, "max_cycles": 40, "reward_scale": 0.02, '
         '"action_mask": true}', "--model", "slot_scoring", "--feature-scale", "10",
         "--warm-start", "central_sjf", "--warm-start-episodes", "5",
         "--iterations", "1", "--num-env-runners", "0", "--envs-per-runner", "2",
         "--set", "train_batch_size_per_learner=400", "--set", "minibatch_size=200",
         "--set", "num_epochs=1", "--logdir", str(out), "--summary-json",
         str(out / "summary.json"), "--quiet"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    losses = {k: v for k, v in summary["latest_metrics"].items() if k.startswith("loss/")}
    return {**losses, **{f"warm_start/{k}": v for k, v in summary["warm_start"]["sub0"].items()}}


def test_fen_runs_do_not_depend_on_the_string_hash_seed(tmp_path: Path) -> None:
    first, second = train_fen_losses(tmp_path, "1"), train_fen_losses(tmp_path, "7")
    assert {k.split("/")[1] for k in first} >= {"ctrl", "sub0", "sub3"}  # every module trained
    assert first == second
