"""A study's report from its trial summaries: ``report.md``, ``report.json`` (the
figures) and ``curves.png`` (learning curves), written from ``trials/*.json`` alone, so a
fresh clone rewrites them without checkpoints (``run_experiment.py FILE --report-only``).

Rows: trials that differ only in their seed form one row, labelled by their searched
values and any parameter that differs from the experiment file (trials imported from
an older runner may have other options, or another budget: both show in the label).
Each cell: mean ± std over the row's seeds (std with n - 1; ± 0 for one seed). The
kind's anchors (the paper, random play) follow the rows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from policies.experiments.kinds import get_kind
from policies.experiments.spec import SEED, Experiment, trial_file_name, value_text

TRIALS_DIR = "trials"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"
CURVES_PNG = "curves.png"


def portable(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies under it, else its name:
    nothing written into ``results/`` names a folder of this machine."""
    p = Path(path)
    try:
        return Path(os.path.relpath(p.resolve(), Path.cwd())).as_posix() \
            if p.resolve().is_relative_to(Path.cwd()) else p.name
    except ValueError:
        return p.name


def load_summaries(folder: str | Path) -> list[dict[str, Any]]:
    """Every trial summary in ``folder`` (``*.json``), in name order."""
    return [json.loads(f.read_text()) for f in sorted(Path(folder).glob("*.json"))]


def write_summaries(summaries: Sequence[Mapping[str, Any]], folder: str | Path) -> list[Path]:
    """One ``<trial>.json`` per summary in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for s in summaries:
        path = folder / trial_file_name(s["trial"])
        path.write_text(json.dumps(s, indent=1, sort_keys=True) + "\n")
        out.append(path)
    return out


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def row_label(experiment: Experiment, summary: Mapping[str, Any]) -> str:
    """The searched values (but the seed), then ``[key=value, ...]`` for each parameter
    that differs from the experiment file, then the budget when it is not the file's; an
    imported trial outside the grid whose label would be a grid row's gets
    ``[imported]``."""
    point = {k: v for k, v in summary.get("point", {}).items() if k != SEED}
    base, params = _flat(experiment.params), _flat(summary.get("params", {}))
    differ = {k: v for k, v in params.items()
              if k != SEED and k not in point and base.get(k, v) != v}
    differ.update({k: v for k, v in params.items() if k not in base and k not in point})
    label = _point_label(experiment, point)
    if differ:
        label += " [" + ", ".join(f"{k}={value_text(v)}" for k, v in sorted(differ.items())) + "]"
    budget = summary.get("iterations")
    if experiment.stop.iterations and budget and budget != experiment.stop.iterations:
        label += f" ({budget} it)"
    grid = {t.name for t in experiment.trials()}
    if summary.get("trial") not in grid and summary.get("source", "").startswith("imported"):
        # an imported run outside the grid never joins the row of the grid's own trials
        if label in {_point_label(experiment, t.point) for t in experiment.trials()}:
            label += " [imported]"
    return label


def _point_label(experiment: Experiment, point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={value_text(v)}" for k, v in point.items() if k != SEED) \
        or experiment.name


def order(experiment: Experiment, summaries: Sequence[Mapping[str, Any]]
          ) -> list[Mapping[str, Any]]:
    """``summaries`` in grid order, then the trials outside the grid by label and name."""
    grid = {t.name: i for i, t in enumerate(experiment.trials())}
    return sorted(summaries, key=lambda s: (grid.get(s["trial"], len(grid)),
                                            row_label(experiment, s), s["trial"]))


def _stats(values: Sequence[float]) -> dict[str, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def table(experiment: Experiment, summaries: Sequence[Mapping[str, Any]],
          metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per label: seeds, budget, and each metric's mean/std/n over the seeds. Rows
    of the grid come first, in its order; other trials' rows after them, by label."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for s in order(experiment, summaries):
        groups.setdefault(row_label(experiment, s), []).append(s)
    rows = []
    for label, members in groups.items():
        cells = {}
        for m in metrics:
            values = [float(s["metrics"][m]) for s in members
                      if isinstance(s.get("metrics", {}).get(m), int | float)]
            if values:
                cells[m] = _stats(values)
        rows.append({
            "label": label,
            "seeds": sorted(s.get("params", {}).get(SEED, 0) for s in members),
            "iterations": sorted({s.get("iterations") for s in members if s.get("iterations")}),
            "wall_time_s": _stats([float(s["wall_time_s"]) for s in members
                                   if isinstance(s.get("wall_time_s"), int | float)] or [0.0]),
            "sources": sorted({s.get("source", "run_experiment") for s in members}),
            "metrics": cells,
        })
    return rows


def _cell(stat: Mapping[str, float] | None, fmt: str) -> str:
    if not stat:
        return "-"
    mean, std = stat["mean"], stat.get("std")
    if fmt == "pct":
        return f"{100 * mean:.1f}%" + (f" ±{100 * std:.1f}" if std is not None else "")
    return format(mean, fmt) + (f" ±{format(std, fmt)}" if std is not None else "")


def metric_formats(experiment: Experiment) -> dict[str, str]:
    """The report's columns: ``report.metrics`` of the file (names, or name: format),
    else the kind's defaults."""
    chosen = experiment.report.get("metrics")
    defaults = get_kind(experiment.kind).metrics
    if chosen is None:
        return dict(defaults)
    if isinstance(chosen, Mapping):
        return {str(k): str(v) for k, v in chosen.items()}
    return {str(m): defaults.get(str(m), ".3f") for m in chosen}


def markdown(experiment: Experiment, rows: Sequence[Mapping[str, Any]],
             anchors: Sequence[Mapping[str, Any]], summaries: Sequence[Mapping[str, Any]],
             commands: Sequence[str]) -> str:
    """The report's text."""
    kind = get_kind(experiment.kind)
    formats = metric_formats(experiment)
    title = experiment.report.get("title") or experiment.name
    lines = [f"# {title}", ""]
    if experiment.description:
        lines += [experiment.description.strip(), ""]
    lines += ["Written by (the first runs or resumes the experiment, the second rewrites "
              "this report from `trials/`):", "", "```", *commands, "```", ""]
    head = ["row", "seeds", "iterations", *formats]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        its = ", ".join(str(i) for i in r["iterations"]) or "-"
        lines.append("| " + " | ".join([r["label"], str(len(r["seeds"])), its,
                                        *(_cell(r["metrics"].get(m), f)
                                          for m, f in formats.items())]) + " |")
    for a in anchors:
        cells = {m: ({"mean": v, "std": a.get("std", {}).get(m)} if v is not None else None)
                 for m, v in a["metrics"].items()}
        lines.append("| " + " | ".join([f"*{a['label']}*", str(a.get("seeds", "-")), "-",
                                        *(_cell(cells.get(m), f) for m, f in formats.items())])
                     + " |")
    lines += ["", "Each cell: mean ± std over the row's seeds (a single seed shows ±0); rows "
              "in italics are references, not trials of this experiment."]
    imported = [s for s in summaries if s.get("source", "run_experiment") != "run_experiment"]
    if imported:
        origins = sorted({s["source"] for s in imported})
        lines += ["", f"{len(imported)} of the {len(summaries)} trials were imported from the "
                  "runner this layer replaced (not rerun); their summaries name where they "
                  "came from and the command that trained them: " + "; ".join(origins[:6])
                  + (" ..." if len(origins) > 6 else "") + "."]
    notes = experiment.report.get("notes")
    if notes:
        lines += ["", str(notes).strip()]
    if kind.notes is not None:
        extra = kind.notes(experiment, list(summaries))
        if extra:
            lines += ["", extra.strip()]
    missing = still_to_run(experiment, summaries)
    if missing:
        lines += ["", missing]
    lines += ["", "## Trials", "", "| trial | iterations | env steps | wall time | node | source |",
              "|---|---|---|---|---|---|"]
    for s in summaries:
        wall = s.get("wall_time_s")
        lines.append("| " + " | ".join([
            s["trial"], str(s.get("iterations", "-")), str(s.get("env_steps", "-")),
            f"{wall:.0f} s" if isinstance(wall, int | float) else "-",
            str(s.get("node", "-"))[:8], s.get("source", "run_experiment")]) + " |")
    return "\n".join(lines) + "\n"


def still_to_run(experiment: Experiment, summaries: Sequence[Mapping[str, Any]]) -> str:
    """The grid's trials without a summary, by row (empty when the grid is complete)."""
    have = {s["trial"] for s in summaries}
    todo: dict[str, list[Any]] = {}
    for t in experiment.trials():
        if t.name not in have:
            todo.setdefault(_point_label(experiment, t.point), []).append(
                t.params.get(SEED))
    if not todo:
        return ""
    n = sum(len(v) for v in todo.values())
    return (f"Still to run ({n} of the grid's {len(experiment.trials())} trials; the first "
            "command above runs exactly these): "
            + "; ".join(f"{k} (seeds {', '.join(str(s) for s in v)})" for k, v in todo.items())
            + ".")


def plot_curves(experiment: Experiment, summaries: Sequence[Mapping[str, Any]],
                path: Path) -> bool:
    """Mean learning curve of each row (``report.curves`` tags, default the first tag the
    summaries have); False when no summary has a curve. A kind may offer the report keys
    ``curves_xlabel`` (default ``iteration``) and ``curves_yscale`` (default ``linear``)."""
    tags = experiment.report.get("curves")
    have = [t for s in summaries for t, c in (s.get("curves") or {}).items() if c]
    if tags is None:
        tags = have[:1]
    tags = [t for t in tags if t in have]
    if not tags:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(tags), figsize=(6 * len(tags), 4), squeeze=False)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for s in summaries:
        groups.setdefault(row_label(experiment, s), []).append(s)
    for ax, tag in zip(axes[0], tags, strict=True):
        for label, members in groups.items():
            curves = [dict((int(i), float(v)) for i, v in (s.get("curves") or {}).get(tag, []))
                      for s in members]
            its = sorted(set().union(*curves))
            if not its:
                continue
            mean = [np.mean([c[i] for c in curves if i in c]) for i in its]
            ax.plot(its, mean, label=f"{label} ({len(members)})")
        ax.set_xlabel(experiment.report.get("curves_xlabel", "iteration"))
        ax.set_yscale(experiment.report.get("curves_yscale", "linear"))
        ax.set_title(tag)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(experiment: Experiment, summaries: Sequence[Mapping[str, Any]],
                 out: str | Path, commands: Sequence[str]) -> list[Path]:
    """``report.md``, ``report.json`` and (with curves) ``curves.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kind = get_kind(experiment.kind)
    summaries = order(experiment, summaries)
    formats = metric_formats(experiment)
    rows = table(experiment, summaries, list(formats))
    anchors = kind.anchors(experiment) if kind.anchors is not None else []
    (out / REPORT_MD).write_text(markdown(experiment, rows, anchors, summaries, commands))
    (out / REPORT_JSON).write_text(json.dumps(
        {"experiment": experiment.name, "rows": rows, "anchors": anchors}, indent=1,
        sort_keys=True) + "\n")
    written = [out / REPORT_MD, out / REPORT_JSON]
    if plot_curves(experiment, summaries, out / CURVES_PNG):
        written.append(out / CURVES_PNG)
    return written
