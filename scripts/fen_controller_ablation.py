#!/usr/bin/env python
"""Which part of a trained FEN limits its utilization: its controllers or its sub-policies.

    python scripts/fen_controller_ablation.py \
        --fen 'runs/experiments/fen_matthew_budget/variant=fen,seed=*' \
        --reference 'runs/experiments/fen_matthew_budget/variant=independent,seed=*' \
        [--episodes 5] [--seed 10000] [--out results/fen_matthew_budget/controller_ablation.md]

Every FEN checkpoint is evaluated with its own controllers, then with every controller
pinned to sub-policy z, for each z (``evaluate_checkpoint(fixed_actions=...)``); the
``--reference`` checkpoints (e.g. independent PPO of the same study) as they are. Actions
are sampled from the policies, as in training; the same episode seeds for every row.
Each pattern is a glob of checkpoints or of Tune trial folders (their latest
``checkpoint_*``). Rows: mean ± std over the checkpoints of utilization, CV and min
utility. Prints the table; with ``--out``, writes it (.md) and the same name with .json
(checkpoint paths relative to the working directory). Bad input: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("OMP_NUM_THREADS", "1")

from policies.cli import cli_errors, nonneg_int, positive_int  # noqa: E402

METRICS = ("utilization", "cv", "min_utility")
#: FEN's episode stat: the share of controller decisions that picked sub-policy 0
SUB0 = "controller/choice_freq/sub0"


def checkpoints(pattern: str) -> list[Path]:
    """The checkpoints a glob names: a trial folder's latest ``checkpoint_*``, or the
    matched path itself."""
    found = []
    for match in sorted(glob.glob(pattern)):
        path = Path(match)
        inside = sorted(d for d in path.glob("checkpoint_[0-9]*") if d.is_dir())
        found.append(inside[-1] if inside else path)
    if not found:
        raise ValueError(f"no checkpoint or trial folder matches {pattern!r}")
    return found


def sampled_steps(checkpoint: Path) -> tuple[int, dict[str, float]]:
    """The checkpoint's training iteration and the agent steps each module acted in since
    the run began (RLlib's lifetime counters
    ``env_runners/num_module_steps_sampled_lifetime/<module>`` in its algorithm state)."""
    import pickle

    from policies.training import open_checkpoint

    path = open_checkpoint(checkpoint)[0] / "algorithm_state.pkl"
    with path.open("rb") as f:
        state = pickle.load(f)
    prefix = "env_runners--num_module_steps_sampled_lifetime--"
    steps = {key[len(prefix):]: float(value["lifetime_sum"])
             for key, value in state["metrics_logger"]["stats"].items()
             if key.startswith(prefix)}
    return int(state["training_iteration"]), steps


def training_utilization(trial: Path, iteration: float) -> float | None:
    """The training utilization a Tune trial folder's ``result.json`` reports at
    ``iteration`` (rounded to the nearest; the last reported value at or before it, as
    utilization is reported only by iterations in which episodes ended); None without
    a result.json or such a value."""
    path = trial / "result.json"
    if not path.is_file():
        return None
    value = None
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("training_iteration", 0) > round(iteration):
            break
        if row.get("fairness/utilization") is not None:
            value = float(row["fairness/utilization"])
    return value


def controllers(checkpoint: Path) -> tuple[list[str], int]:
    """The controller module ids of a FEN checkpoint and their number of sub-policies."""
    from policies.fen.variants import parse_sub_module_id
    from policies.training import load_checkpoint_modules, open_checkpoint

    module = load_checkpoint_modules(open_checkpoint(checkpoint)[0])
    ctrls = sorted({p[0] for m in module.keys() if (p := parse_sub_module_id(m))})
    if not ctrls:
        raise ValueError(f"{checkpoint} holds no FEN hierarchy (modules: "
                         f"{sorted(module.keys())}); pass it as --reference")
    return ctrls, int(module[ctrls[0]].action_space.n)


def summary(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, std and values over the checkpoints of :data:`METRICS` and of how often the
    controllers picked sub-policy 0 (absent for reference checkpoints)."""
    out: dict[str, Any] = {"checkpoints": len(reports)}
    figures = [{key: r[key] for key in METRICS} for r in reports]
    for r, f in zip(reports, figures, strict=True):
        picks = [e[SUB0] for e in r["per_episode"] if SUB0 in e]
        if picks:
            f[SUB0] = statistics.fmean(picks)
    for key in (*METRICS, SUB0):
        if not all(key in f for f in figures):
            continue
        values = [f[key] for f in figures]
        out[key] = {"mean": statistics.fmean(values),
                    "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                    "values": values}
    return out


def compare_experience(fen: list[Path], refs: dict[str, list[Path]]) -> dict[str, Any]:
    """How much experience FEN's sub-policy 0 had: its agent steps (mean over the FEN
    checkpoints), and for each reference the iteration at which the reference had acted
    as many agent steps, with its training utilization there (mean over its trials)."""
    from policies.fen.variants import parse_sub_module_id

    sub0 = []
    for ck in fen:
        _, steps = sampled_steps(ck)
        sub0.append(sum(n for m, n in steps.items()
                        if (p := parse_sub_module_id(m)) is not None and p[1] == 0))
    out: dict[str, Any] = {"sub0_agent_steps": statistics.fmean(sub0), "references": {}}
    for pattern, cks in refs.items():
        per_iteration, utilization = [], []
        for ck in cks:
            iteration, steps = sampled_steps(ck)
            per_iteration.append(sum(steps.values()) / max(iteration, 1))
        same = out["sub0_agent_steps"] / statistics.fmean(per_iteration)
        for ck in cks:
            if ck.name.startswith("checkpoint_"):
                value = training_utilization(ck.parent, same)
                if value is not None:
                    utilization.append(value)
        out["references"][pattern] = {
            "agent_steps_per_iteration": statistics.fmean(per_iteration),
            "iteration_with_as_many_steps": same,
            "training_utilization_there": statistics.fmean(utilization) if utilization else None,
            "trials_with_a_curve": len(utilization),
        }
    return out


def render_experience(experience: dict[str, Any]) -> str:
    lines = [
        "",
        f"Experience: FEN's sub-policy 0 acted {experience['sub0_agent_steps']:,.0f} agent "
        "steps (mean over the FEN checkpoints; RLlib's lifetime count in each checkpoint).",
        "",
    ]
    for pattern, ref in experience["references"].items():
        there = ref["training_utilization_there"]
        lines.append(
            f"* reference {pattern}: {ref['agent_steps_per_iteration']:,.0f} agent steps per "
            f"iteration, so as many by iteration {ref['iteration_with_as_many_steps']:.1f}; "
            + (f"its training utilization there: {there:.3f} (mean over "
               f"{ref['trials_with_a_curve']} trials' result.json)." if there is not None
               else "no training curve (result.json) next to its checkpoints."))
    return "\n".join(lines) + "\n"


def render(rows: dict[str, dict[str, Any]], command: str, episodes: int) -> str:
    lines = [
        "# FEN's controllers against pinned ones",
        "",
        f"Command: `{command}`",
        "",
        f"{episodes} episodes per checkpoint, actions sampled from the policies, the same "
        "episode seeds for every row; mean ± std over the checkpoints. `pinned to z`: every "
        "controller always picks sub-policy z (sub-policy 0 is trained on the environment's "
        "reward, the others on the discriminator's).",
        "",
        "| row | checkpoints | utilization | CV | min utility | controllers pick sub-policy 0 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        cells = [f"{row[k]['mean']:.3f} ±{row[k]['std']:.3f}" if k in row else "-"
                 for k in (*METRICS, SUB0)]
        lines.append(f"| {name} | {row['checkpoints']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fen", required=True, help="glob of FEN checkpoints or trial folders")
    p.add_argument("--reference", action="append", default=[],
                   help="glob of other checkpoints evaluated as they are (repeatable)")
    p.add_argument("--episodes", type=positive_int, default=5, help="episodes per evaluation")
    p.add_argument("--seed", type=nonneg_int, default=10_000, help="seed of the first episode")
    p.add_argument("--out", default=None, help="markdown file (default: print only)")
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    with cli_errors():
        out = Path(args.out) if args.out else None
        if out is not None and not out.parent.is_dir():
            raise ValueError(f"--out: folder {str(out.parent)!r} does not exist")
        fen = checkpoints(args.fen)
        refs = {pattern: checkpoints(pattern) for pattern in args.reference}
        ctrls, n_sub = controllers(fen[0])
        from tqdm import tqdm

        from policies.training import evaluate_checkpoint

        modes: dict[str, dict[str, int]] = {"FEN, own controllers": {}}
        modes.update({f"FEN, controllers pinned to {z}": dict.fromkeys(ctrls, z)
                      for z in range(n_sub)})
        jobs = [(name, ck, fixed) for name, fixed in modes.items() for ck in fen]
        jobs += [(f"reference {pattern}", ck, {}) for pattern, cks in refs.items()
                 for ck in cks]
        reports: dict[str, list[dict[str, Any]]] = {}
        for name, ck, fixed in tqdm(jobs, desc="evaluations", unit="ckpt"):
            report = evaluate_checkpoint(ck, episodes=args.episodes, seed=args.seed,
                                         sample=True, fixed_actions=fixed)
            reports.setdefault(name, []).append(report)
        experience = compare_experience(fen, refs)
    rows = {name: summary(rs) for name, rs in reports.items()}
    command = " ".join(["python scripts/fen_controller_ablation.py",
                        *(f"'{a}'" if "*" in a else a for a in argv)])
    text = render(rows, command, args.episodes) + render_experience(experience)
    print(text)
    if out is not None:
        out.write_text(text)
        data = {"command": command, "episodes": args.episodes, "seed": args.seed,
                "checkpoints": {name: [os.path.relpath(r["checkpoint"]) for r in rs]
                                for name, rs in reports.items()},
                "rows": rows, "experience": experience}
        out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
