"""Reproduce the FEN paper's tables: every variant x several seeds, aggregated.

Each (variant, seed) run trains with :func:`policies.training.run_training` into
``<runs_dir>/<env>/<variant>/seed<k>/`` and leaves ``final.json`` (the run's final
fairness figures, its iterations, env steps and wall time). Runs that already
reached the requested iterations are reused and shorter ones are resumed from
their latest checkpoint, so the same command extends an experiment (more seeds,
more variants, more iterations) without redoing finished work.

The figures of a run are its training-episode metrics at the final iteration
(RLlib's window of the last 20 episodes): utilization, CV, min/max utility and,
for the plant, products per agent (mean, min, max, CV over agents) and in all, its
utilization being the share of collected gems that went into products
(:mod:`marl_envs.manufacturing_plant_v0`). The table gives mean ± std over seeds next to
the paper.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policies.fen.references import (
    METRICS,
    PAPER,
    PLANT_METRICS,
    random_policy_figures,
)
from policies.fen.variants import (
    HIERARCHICAL_VARIANTS,
    PRESET_DEFAULTS,
    PRESETS,
    RESOLVED_KEY,
    VARIANTS,
    check_variant,
    options_for,
    recorded_options,
)

FINAL_FILE = "final.json"


PLANT = "manufacturing_plant"

#: what a reader must know to compare an environment's table with the paper's
ENV_NOTES = {
    PLANT: (
        "The plant as the paper measures it (issue 23; `fen_plant_measure.md`, written by\n"
        "`python scripts/measure_plant.py --episodes 50 --out results/fen_plant_measure.md`):\n"
        "\n"
        "* Products are per agent, as the authors' script prints them (`su`): `products per\n"
        "  agent` is the mean over agents, beside the paper's column, with the least and most\n"
        "  productive agent and the CV over agents; `products` is the episode total (5x).\n"
        "* Utilization is the share of the collected gems that went into products (each\n"
        "  product consumes its recipe's 2 or 3 gems; an episode ends after 700 gems). From\n"
        "  the paper's products per agent it predicts the paper's utilization within one of\n"
        "  its standard deviations on all seven rows (FEN 80.7-82.2% against 82%; the six\n"
        "  baselines 0.6-3.8 points above theirs with the lowest share their CV allows).\n"
        "  The generic mean(u) / c (c = 0.003), kept as `reward_utilization`, is 100% for\n"
        "  random play and every run, and cannot give the paper's figures.\n"
        "* Uniform random play (50 episodes): 35.0 products per agent (agents 0 and 4, whose\n"
        "  recipes take 3 gems, 23.3 and 23.9; the others 41.4-43.7), utilization 56.6%:\n"
        "  above the paper's six baselines (9-23 per agent, 13-34%), below its FEN (48, 82%).\n"
        "* \"Where utilization goes\" below measures each step by the generic reward earned\n"
        "  / (n c), clipped to 1, not by the gem share.\n"
    ),
    "matthew_effect": "The paper gives Matthew-effect results as a figure only.\n",
}


def plant_figures_missing(final: dict[str, Any]) -> bool:
    """Whether a plant run was recorded before the plant logged its products per agent and
    its gem-share utilization (issue 23): its ``utilization`` is then the generic
    mean(u) / c (today's ``reward_utilization``) and its per-agent figures are unknown."""
    return bool(final.get("metrics")) and "products_per_agent" not in final["metrics"]


def run_metrics(final: dict[str, Any], env: str) -> dict[str, float]:
    """A run's figures under today's names: a plant run recorded before issue 23 has its
    generic utilization as ``reward_utilization`` and no (gem-share) ``utilization``."""
    metrics = dict(final.get("metrics", {}))
    if env == PLANT and plant_figures_missing(final) and "utilization" in metrics:
        metrics["reward_utilization"] = metrics.pop("utilization")
    return metrics


def env_notes(env: str, finals: Sequence[dict[str, Any]]) -> str:
    """:data:`ENV_NOTES` of ``env``; for the plant, which rows lack the new figures."""
    note = ENV_NOTES.get(env, "")
    if env == PLANT:
        old = [lab for lab in labels(finals)
               if any(plant_figures_missing(f) for f in finals if _label(f) == lab)]
        if old:
            note += textwrap.fill(
                "* Runs recorded before these figures were logged (rows "
                + ", ".join(f"`{lab}`" for lab in old)
                + ") show '-' for utilization and products per agent: their logs hold the "
                "episode total (`products`) and the generic utilization only, which was "
                "100%; their utilization curves are left out of the plot. The table is "
                "to be rerun with FEN's defaults (>= 3 seeds).",
                width=86, subsequent_indent="  ", break_on_hyphens=False,
            ) + "\n"
    return note


@dataclass
class ReproductionPlan:
    """What to run: one environment, variants x seeds, a training budget."""

    env: str
    variants: Sequence[str]
    seeds: Sequence[int]
    iterations: int
    runs_dir: Path
    num_env_runners: int = 1
    envs_per_runner: int = 4
    #: the hierarchical variants' sampler (``build_fen_config(sampler=...)``); the flat
    #: variants always sample with RLlib's ``MultiAgentEnvRunner``
    sampler: str = "multi_agent"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: FEN options beyond the paper's (``feature_scale``, ``controller_entropy``, ...); each
    #: variant gets the ones it uses (:func:`policies.fen.variants.options_for`)
    fen_options: dict[str, Any] = field(default_factory=dict)
    #: other runs dirs whose finished runs join the report (rows labelled by their options)
    also_report: Sequence[Path] = ()

    def __post_init__(self) -> None:
        for v in self.variants:
            check_variant(v)
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        self.runs_dir = Path(self.runs_dir)
        self.also_report = [Path(d) for d in self.also_report]
        dirs = [d.resolve() for d in (self.runs_dir, *self.also_report)]
        if len(set(dirs)) < len(dirs):
            raise ValueError(f"a runs dir is given twice (--runs-dir and --also-report): "
                             f"{[str(d) for d in (self.runs_dir, *self.also_report)]}")

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.runs_dir / self.env / variant / f"seed{seed}"


def run_one(plan: ReproductionPlan, variant: str, seed: int, command: str = "") -> dict[str, Any]:
    """Train (or resume, or reuse) one run and return its ``final.json`` contents."""
    from policies.fen.config import build_fen_config
    from policies.training import LATEST_FILE, read_run_info, run_training

    run_dir = plan.run_dir(variant, seed)
    final_path = run_dir / FINAL_FILE
    done = json.loads(final_path.read_text()) if final_path.exists() else None
    if done is not None and done["training_iteration"] >= plan.iterations:
        if (run_dir / "tb").exists():  # refresh the figures from the local TensorBoard
            done.update(final_figures(run_dir / "tb"))
            final_path.write_text(json.dumps(done, indent=2, sort_keys=True))
        return done
    latest = run_dir / LATEST_FILE
    resume = latest.read_text().strip() if latest.exists() else None
    if resume is not None and not Path(resume).exists():
        resume = None  # checkpoints are not committed: a fresh clone retrains from scratch
    # a run stopped before it wrote final.json resumes from its last checkpoint too
    already = read_run_info(resume)["training_iteration"] if resume is not None else 0
    if resume is None:
        done = None
    sampler = plan.sampler if variant in HIERARCHICAL_VARIANTS else "multi_agent"
    config = build_fen_config(
        plan.env, variant, seed=seed, num_env_runners=plan.num_env_runners,
        envs_per_runner=plan.envs_per_runner, env_kwargs=plan.env_kwargs,
        overrides=plan.overrides, fen_options=options_for(variant, plan.fen_options),
        sampler=sampler,
    )
    options = options_for(variant, plan.fen_options)
    run_info = {"script": "reproduce_fen", "env": plan.env, "variant": variant, "seed": seed,
                "env_kwargs": plan.env_kwargs, "overrides": plan.overrides, "sampler": sampler,
                "fen_options": options,
                RESOLVED_KEY: {**options_for(variant, PRESET_DEFAULTS), **options}}
    summary = run_training(
        config, iterations=plan.iterations - already, logdir=run_dir,
        checkpoint_every=10, resume=resume, run_info=run_info,
    )
    final = {
        "variant": variant,
        "seed": seed,
        "training_iteration": summary["training_iteration"],
        "env_steps": summary["env_steps"],
        "wall_time_s": summary["wall_time_s"] + (done or {}).get("wall_time_s", 0.0),
        "command": command,
        **final_figures(run_dir / "tb"),
    }
    final_path.write_text(json.dumps(final, indent=2, sort_keys=True))
    return final


#: the learning curves a run's final.json keeps (TensorBoard files are not committed, so
#: the plots of a fresh clone are drawn from these)
CURVE_TAGS = ("fairness/utilization", "fairness/cv")


def final_figures(tb_dir: Path) -> dict[str, dict[str, Any]]:
    """A run's final fairness figures, controller statistics and learning curves
    (:data:`CURVE_TAGS`, ``[[iteration, value], ...]``), from its TensorBoard.

    An iteration in which no episode ended reports NaN figures, so each figure is its
    latest finite value (itself RLlib's mean over the last 20 episodes), and the curves
    hold the finite values only.
    """
    acc = _accumulator(tb_dir)
    tags = acc.Tags().get("scalars", []) if acc is not None else []
    metrics, controller = {}, {}
    for tag in tags:
        if not tag.startswith("fairness/"):
            continue
        name = tag.removeprefix("fairness/")
        value = last_finite(tb_dir, tag, acc)
        if value is None:
            continue
        if name in PLANT_METRICS:
            metrics[name] = value
        elif name.startswith("controller/"):
            controller[name] = value
    curves = {}
    for tag in CURVE_TAGS:
        steps, values = read_scalar_curve(tb_dir, tag, acc)
        keep = np.isfinite(values)
        curves[tag] = [[int(st), float(v)] for st, v in zip(steps[keep], values[keep],
                                                             strict=True)]
    return {"metrics": metrics, "controller": controller, "curves": curves}


def run_curve(final: dict[str, Any], tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, finite values) of a run's learning curve: from its final.json, or
    from its TensorBoard files for a run written before final.json kept curves."""
    points = final.get("curves", {}).get(tag)
    if points is not None:
        arr = np.array(points, dtype=np.float64).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]
    if "dir" not in final:
        return np.array([]), np.array([])
    steps, values = read_scalar_curve(Path(final["dir"]) / "tb", tag)
    return steps[np.isfinite(values)], values[np.isfinite(values)]


def run_curves(final: dict[str, Any], env: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A run's :data:`CURVE_TAGS` curves (:func:`run_curve`), without the utilization curve
    of a plant run recorded before issue 23 (it logged the generic mean(u) / c under that
    tag, not today's gem share: :func:`plant_figures_missing`)."""
    return {tag: run_curve(final, tag) for tag in CURVE_TAGS
            if not (env == PLANT and tag == "fairness/utilization"
                    and plant_figures_missing(final))}


def run_label(variant: str, fen_options: dict[str, Any] | None = None,
              overrides: dict[str, Any] | None = None) -> str:
    """The table row of a run: its variant, with the non-default FEN options it used
    (a whole preset as ``preset=NAME``) and the AlgorithmConfig fields it set (``--set``)
    when it has any, e.g. ``fen [preset=authors]``, ``fen [segment_end=terminate]`` or
    ``fen [minibatch_size=128]``."""
    used = {**options_for(variant, dict(fen_options or {})), **dict(overrides or {})}
    words = []
    for name, preset in PRESETS.items():
        preset = options_for(variant, preset)
        if preset and all(used.get(k, object()) == v for k, v in preset.items()):
            used = {k: v for k, v in used.items() if k not in preset}
            words.append(f"preset={name}")
    words += [f"{k}={v}" for k, v in sorted(used.items())]
    return f"{variant} [" + ", ".join(words) + "]" if words else variant


def label_variant(label: str) -> str:
    """The variant of a row label (:func:`run_label`, maybe with ``" (N it)"``)."""
    return label.split(" ", 1)[0]


def _label(final: dict[str, Any]) -> str:
    return final.get("label", final["variant"])


def labels(finals: Sequence[dict[str, Any]]) -> list[str]:
    """The row labels of ``finals``, variants in :data:`VARIANTS` order, plain first."""
    found = {_label(f) for f in finals}
    return sorted(found, key=lambda lab: (VARIANTS.index(label_variant(lab)), lab))


def aggregate(finals: Sequence[dict[str, Any]], env: str) -> dict[str, dict[str, dict]]:
    """``{label: {metric: {"mean", "std", "seeds"}}}`` over the runs' final figures; a
    run's label is its variant (:func:`run_label` when it ran with FEN options)."""
    metrics = PLANT_METRICS if env == PLANT else METRICS
    table: dict[str, dict[str, dict]] = {}
    for label in labels(finals):
        runs = [run_metrics(f, env) for f in finals if _label(f) == label]
        table[label] = {}
        for m in metrics:
            values = [r[m] for r in runs if m in r]
            if values:
                table[label][m] = {"mean": float(np.mean(values)),
                                   "std": float(np.std(values)), "seeds": len(values)}
    return table


def _fmt(mean: float, std: float | None, pct: bool) -> str:
    if pct:  # one decimal: the targets sit at whole percentages
        return f"{100 * mean:.1f}% ±{100 * std:.1f}" if std is not None else f"{100 * mean:.1f}%"
    digits = 0 if abs(mean) >= 5 else 2
    return f"{mean:.{digits}f} ±{std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def training_budgets(finals: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Per row label, the training iterations of its runs (``"20"``, or ``"20-60"``)."""
    out = {}
    for label in labels(finals):
        its = sorted({f["training_iteration"] for f in finals if _label(f) == label})
        out[label] = str(its[0]) if len(its) == 1 else f"{its[0]}-{its[-1]}"
    return out


#: the plant table's columns: (metric, heading, whether the paper's figure sits beside it)
PLANT_COLUMNS = (
    ("utilization", "utilization", True),
    ("cv", "cv", True),
    ("products_per_agent", "products per agent", True),
    ("products_min", "products, least agent", False),
    ("products_max", "products, most agent", False),
    ("products_cv", "products cv over agents", False),
    ("products", "products, all agents", False),
    ("min_utility", "min_utility", False),
    ("max_utility", "max_utility", False),
)


def markdown_table(env: str, table: dict[str, dict[str, dict]],
                   budgets: dict[str, str] | None = None) -> str:
    """Ours (mean ± std over seeds) next to the paper's figure for each cell; with
    ``budgets`` (:func:`training_budgets`), a column of each row's training iterations.
    The plant's columns are :data:`PLANT_COLUMNS` (the paper's figure beside the three it
    reports: utilization, CV, products per agent)."""
    if env == PLANT:
        columns = PLANT_COLUMNS
    else:
        columns = tuple((m, m, True) for m in METRICS)
    paper = PAPER.get(env, {})
    budget_col = budgets is not None
    header = "| method | seeds | " + ("iterations | " if budget_col else "") + " | ".join(
        f"{h} (ours) | {h} (paper)" if beside else f"{h} (ours)"
        for _, h, beside in columns) + " |"
    width = 2 + budget_col + sum(1 + beside for _, _, beside in columns)
    lines = [header, "|" + "---|" * width]
    for label, row in table.items():
        seeds = max((c["seeds"] for c in row.values()), default=0)
        cells = []
        for m, _, beside in columns:
            pct = m == "utilization"
            ours = row.get(m)
            cells.append(_fmt(ours["mean"], ours["std"], pct) if ours else "-")
            if beside:
                ref = paper.get(label_variant(label), {}).get(m)
                cells.append(_fmt(ref[0], ref[1], pct) if ref else "-")
        if budget_col:
            cells.insert(0, (budgets or {}).get(label, "-"))
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_learning_curves(env: str, finals: Sequence[dict[str, Any]], path: Path) -> int:
    """Utilization and CV per iteration (mean over seeds), from each run's curves; the
    number of runs drawn (a run written before final.json kept its curves, whose
    TensorBoard files are not here, has none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    drawn = 0
    for label in labels(finals):
        # each run's curves once (an older run's come from reading its TensorBoard files)
        runs = [run_curves(f, env) for f in finals if _label(f) == label]
        drawn += sum(any(c[0].size for c in run.values()) for run in runs)
        for ax, tag in zip(axes, CURVE_TAGS, strict=True):
            curves = [run[tag] for run in runs if tag in run and run[tag][0].size]
            if not curves:
                continue
            n = min(c[0].size for c in curves)
            steps = curves[0][0][:n]
            mean = np.mean([c[1][:n] for c in curves], axis=0)
            ax.plot(steps, mean, label=label)
    for ax, title in zip(axes, ("utilization", "CV (lower is fairer)"), strict=True):
        if not ax.lines:
            ax.text(0.5, 0.5, "no run has this curve", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
        ax.set_xlabel("training iteration")
        ax.set_title(f"{env}: {title}")
        ax.grid(alpha=0.3)
    for ax in axes:  # the legend on the first panel with curves
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
            break
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def plot_controller_behaviour(finals: Sequence[dict[str, Any]], env: str, path: Path) -> bool:
    """P(controller picks sub-policy 0) per bin of (u_i - ubar)/ubar, FEN variants."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policies.fen.envs import RELATIVE_UTILITY_BIN_NAMES

    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for label in _hierarchical_labels(finals):
        runs = [f for f in finals if _label(f) == label and f.get("controller")]
        if not runs:
            continue
        ys = []
        for name in RELATIVE_UTILITY_BIN_NAMES:
            vals = [r["controller"].get(f"controller/p_sub0/rel_utility_{name}") for r in runs]
            vals = [v for v in vals if v is not None]
            ys.append(np.mean(vals) if vals else math.nan)
        ax.plot(range(len(ys)), ys, marker="o", label=label)
        drawn = True
    ax.set_xticks(range(len(RELATIVE_UTILITY_BIN_NAMES)), RELATIVE_UTILITY_BIN_NAMES,
                  rotation=20, fontsize=8)
    ax.set_xlabel("(u_i - ubar) / ubar at the decision")
    ax.set_ylabel("P(controller picks sub-policy 0)")
    ax.set_title(f"{env}: controller behaviour")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def _accumulator(tb_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not tb_dir.exists():
        return None
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def last_finite(tb_dir: Path, tag: str, acc: Any = None) -> float | None:
    """The latest finite value of a TensorBoard scalar, None if it never had one."""
    _, values = read_scalar_curve(tb_dir, tag, acc)
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else None


def read_scalar_curve(tb_dir: Path, tag: str, acc: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one TensorBoard scalar; empty arrays when absent."""
    acc = acc if acc is not None else _accumulator(tb_dir)
    if acc is None or tag not in acc.Tags().get("scalars", []):
        return np.array([]), np.array([])
    events = acc.Scalars(tag)
    return np.array([e.step for e in events]), np.array([e.value for e in events])


def reproduce(plan: ReproductionPlan, results_dir: Path, command: str) -> dict[str, Any]:
    """Run every (variant, seed) of ``plan`` and write ``results/fen_<env>.{md,json,png}``."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    for seed in plan.seeds:  # seed-major: a complete (one-seed) table comes first
        for variant in plan.variants:
            print(f"=== {plan.env} / {variant} / seed {seed} ===", flush=True)
            run_one(plan, variant, seed, command)
            write_report(plan, finished_runs(plan), results_dir)
    return write_report(plan, finished_runs(plan), results_dir)


def finished_runs(plan: ReproductionPlan, refresh: bool = False) -> list[dict[str, Any]]:
    """Every run of ``plan.env`` with a final.json under the runs dir or a dir of
    ``plan.also_report`` (any invocation), with its row ``label`` and its ``dir``.

    Every run is labelled with :func:`run_label` (its variant and non-default options,
    from its ``run_info.json``: :func:`policies.fen.variants.recorded_options`), plus
    ``" (N it)"`` when an earlier dir has that setup at another budget. A row that would
    hold one seed twice is an error.

    ``refresh``: re-read each run's figures from its TensorBoard files where present.
    """
    finals: list[dict[str, Any]] = []
    for runs_dir in [plan.runs_dir, *plan.also_report]:
        # a setup already in an earlier dir with another budget: a row of its own
        earlier: dict[str, set[int]] = {}
        for f in finals:
            earlier.setdefault(f["label"], set()).add(f["training_iteration"])
        for variant in VARIANTS:
            for path in sorted((runs_dir / plan.env / variant).glob(f"seed*/{FINAL_FILE}")):
                final = json.loads(path.read_text())
                if refresh and (path.parent / "tb").exists():
                    final.update(final_figures(path.parent / "tb"))
                    path.write_text(json.dumps(final, indent=2, sort_keys=True))
                info_path = path.parent / "run_info.json"
                info = json.loads(info_path.read_text()) if info_path.exists() else {}
                label = run_label(variant, recorded_options(variant, info), info.get("overrides"))
                its = final["training_iteration"]
                if label in earlier and its not in earlier[label]:
                    label = f"{label} ({its} it)"
                same = [f for f in finals if f["label"] == label and f["seed"] == final["seed"]]
                if same:
                    raise ValueError(
                        f"row {label!r} would hold seed {final['seed']} twice: {same[0]['dir']} "
                        f"and {path.parent}; report one of their runs dirs only")
                final["label"] = label
                final["dir"] = path.parent
                finals.append(final)
    return finals


def _hierarchical_labels(finals: Sequence[dict[str, Any]]) -> list[str]:
    return [lab for lab in labels(finals) if label_variant(lab) in HIERARCHICAL_VARIANTS]


def utilization_breakdown(finals: Sequence[dict[str, Any]]) -> str:
    """Markdown: per hierarchical variant and k, the share of steps with k agents on
    sub-policy 0 and the utilization of those steps (mean over seeds); '' if none."""
    rows = []
    for label in _hierarchical_labels(finals):
        runs = [f["controller"] for f in finals
                if _label(f) == label and f.get("controller")]
        ks = sorted({int(key.split("_")[2]) for c in runs for key in c
                     if key.startswith("controller/steps_with_")})
        for k in ks:
            share = [c.get(f"controller/steps_with_{k}_on_sub0", 0.0) for c in runs]
            use = [c[f"controller/utilization_with_{k}_on_sub0"] for c in runs
                   if f"controller/utilization_with_{k}_on_sub0" in c]
            rows.append(f"| {label} | {k} | {np.mean(share):.2f} | "
                        f"{np.mean(use):.2f} | {len(runs)} |")
    if not rows:
        return ""
    return "\n".join([
        "## Where utilization goes",
        "",
        "Share of steps on which k agents run sub-policy 0 (the one trained on the "
        "environment reward) and the utilization of those steps, mean over seeds "
        "(training episodes, last iteration):",
        "",
        "| variant | k on sub-policy 0 | share of steps | utilization | seeds |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])


def curve_note(drawn: int, runs: int) -> str:
    """What the learning-curve plot leaves out, when it leaves out any run."""
    if drawn == runs:
        return ""
    return (f" (the curves of {drawn} of the {runs} runs: the others were written before "
            "final.json kept its curves, and their TensorBoard files are not on the machine "
            "that wrote this report)")


def write_report(plan: ReproductionPlan, finals: Sequence[dict[str, Any]],
                 results_dir: Path) -> dict[str, Any]:
    """Write the table (md + json) and plots for the runs finished so far."""
    env = plan.env
    results_dir.mkdir(parents=True, exist_ok=True)
    table = aggregate(finals, env)
    table["random_untrained"] = random_policy_figures(env, plan.env_kwargs)
    (results_dir / f"fen_{env}.json").write_text(json.dumps(table, indent=2, sort_keys=True))
    curves = results_dir / f"fen_{env}_learning_curves.png"
    behaviour = results_dir / f"fen_{env}_controller.png"
    drawn = plot_learning_curves(env, finals, curves)
    has_behaviour = plot_controller_behaviour(finals, env, behaviour)
    run_rows = "\n".join(
        f"| {_label(f)} | {f['seed']} | {f['training_iteration']} | {f['env_steps']} | "
        f"{f['wall_time_s'] / 60:.1f} |" for f in finals
    )
    total_wall = sum(f["wall_time_s"] for f in finals)
    also = "".join(f" --also-report {d}" for d in plan.also_report)
    commands = "\n".join(dict.fromkeys(
        f.get("command") or "(not recorded)" for f in finals))
    md = f"""# FEN reproduction: {env}

Produced by (each run's final.json names its command; runs of an earlier invocation
with the same runs dir are reused or extended, never retrained):

```
{commands}
```

Each cell: mean ± std over seeds of the training-episode figures at the final
iteration (RLlib's window of the last 20 episodes); the paper's figure beside it.
`random_untrained` is uniform random actions (5 episodes, "seeds" counts episodes),
the reference any learning must beat.
Rows: a variant, with the FEN options its runs used that differ from today's defaults
(rhat over the period just ended, truncated segments); `preset=authors` is the authors'
code (rhat over the episode, terminated segments). Runs recorded before the defaults
changed (their commands above name the flags of that time) are labelled as what they ran.
Budget: the iterations of PPO (4000 env steps each) in the `iterations` column and per
run below (rows trained for different budgets are not an equal-budget comparison);
the paper trains far longer (up to 100,000 episodes in the authors' code), so
short-budget numbers measure early learning, not converged policies.

{markdown_table(env, table, training_budgets(finals))}

{env_notes(env, finals)}
Learning curves: `{curves.name}`{curve_note(drawn, len(finals))}.
{"Controller behaviour: `" + behaviour.name + "`." if has_behaviour else ""}

{utilization_breakdown(finals)}
## Runs

| variant | seed | iterations | env steps | wall time (min) |
|---|---|---|---|---|
{run_rows}

Total training wall time: {total_wall / 60:.1f} min on this machine (2 CPU cores, shared
with other jobs, so wall times are inflated). Figures come only from the runs listed; the
tables are rewritten from the runs' final.json files by
`python scripts/reproduce_fen.py --env {env} --runs-dir {plan.runs_dir}{also} --report-only`.
"""
    (results_dir / f"fen_{env}.md").write_text(md)
    return table


def main(argv: list[str] | None = None) -> int:
    """``scripts/reproduce_fen.py``: train every variant x seed, write results/fen_<env>.*"""
    import argparse
    import shlex
    import sys

    from policies.cli import cli_errors, parse_env_kwargs
    from policies.config import parse_overrides
    from policies.fen.train import add_fen_arguments, fen_options

    p = argparse.ArgumentParser(
        description="Reproduce the FEN paper's table on one env. The FEN options apply to the "
                    "variants that use them (policies/fen/variants.py, VARIANT_OPTIONS).")
    p.add_argument("--env", default="job_scheduling")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated subset of {list(VARIANTS)}")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    p.add_argument("--iterations", type=int, default=50, help="PPO iterations per run")
    p.add_argument("--num-env-runners", type=int, default=1)
    p.add_argument("--envs-per-runner", type=int, default=8)
    p.add_argument("--sampler", default="multi_agent",
                   help="the hierarchical variants' sampler: multi_agent or vector (FEN's fast "
                        "sampler, the same learning: policies/fen/vector_runner.py); the flat "
                        "variants always use multi_agent")
    p.add_argument("--runs-dir", default="results/fen_runs",
                   help="per-run TensorBoard logs, checkpoints and final.json (resumable)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--also-report", action="append", default=[], metavar="RUNS_DIR",
                   help="add the finished runs of another runs dir to the report (repeatable); "
                        "their rows are labelled with the FEN options they used, e.g. "
                        "'fen [efficiency=period]'")
    p.add_argument("--env-kwargs", default="{}", help="JSON dict of env keyword arguments")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    add_fen_arguments(p)
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rewrite the report from the finished runs in --runs-dir")
    args = p.parse_args(argv)
    with cli_errors():
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(
                f"--seeds must be comma-separated integers, got {args.seeds!r}"
            ) from None
        plan = ReproductionPlan(
            env=args.env,
            variants=[v.strip() for v in args.variants.split(",") if v.strip()],
            seeds=seeds,
            iterations=args.iterations,
            runs_dir=Path(args.runs_dir),
            num_env_runners=args.num_env_runners,
            envs_per_runner=args.envs_per_runner,
            sampler=args.sampler,
            env_kwargs=parse_env_kwargs(args.env_kwargs),
            overrides=parse_overrides(args.overrides),
            fen_options=fen_options(args),
            also_report=[Path(d) for d in args.also_report],
        )
        if args.report_only:
            table = write_report(plan, finished_runs(plan, refresh=True), Path(args.results_dir))
            print(markdown_table(plan.env, table))
            return 0
        from policies.training import init_ray

        init_ray(None)
        command = "python scripts/reproduce_fen.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        table = reproduce(plan, Path(args.results_dir), command)
    print(markdown_table(plan.env, table))
    return 0
