"""Trial kinds that train with RLlib: ``rllib`` (PPO, DQN or A2C, as ``scripts/train.py``)
and ``fen`` (FEN, a variant or a baseline, as ``scripts/train_fen.py``).

A trial builds its AlgorithmConfig with :func:`policies.config.build_config` or
:func:`policies.fen.config.build_fen_config` (so a bad parameter fails in the driver,
before Ray starts), trains until the experiment's ``stop``, writes the same TensorBoard
tags as the training scripts (``<trial folder>/tb``) and hands Tune a checkpoint every
``checkpoint.every`` iterations and after the last one. A checkpoint is a run folder of
:func:`policies.training.save_checkpoint` (``evaluate.py`` and ``--resume`` take it) plus
:data:`STATE_FILE`, the trial's own bookkeeping, so a restored trial continues its curves.

With ``evaluation.episodes``, every checkpoint is rolled out greedily on validation seeds
and on test seeds (:func:`policies.training.evaluate_checkpoint`); the results carry
``validation/<figure>`` and ``test/<figure>`` (Tune's checkpoint scoring can use them), and
the summary's ``metrics`` are the test figures of the checkpoint with the best validation
figure ``evaluation.select``. Without it, ``metrics`` are the training episodes' latest
figures (RLlib's window of the last 20 episodes).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from policies.experiments.kinds import TrialKind, int_at_least, mapping
from policies.experiments.spec import Param

#: the trial's bookkeeping inside each of its checkpoints
STATE_FILE = "trial_state.json"
#: the learning curves a summary keeps
CURVE_TAGS = ("fairness/utilization", "fairness/cv", "episode/return_mean")
#: fairness figures of an evaluation report that become validation/ and test/ metrics
EVAL_FIGURES = ("utilization", "cv", "min_utility", "max_utility", "average_utility")
FAIRNESS = "fairness/"
CONTROLLER = "controller/"


def _optional_str(value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{value!r} is not a name")


EVAL_ACTIONS = ("greedy", "sampled")


def _eval_actions(value: Any) -> None:
    if value not in EVAL_ACTIONS:
        raise ValueError(f"{value!r} is not allowed; allowed: {list(EVAL_ACTIONS)}")


COMMON_PARAMS: dict[str, Param] = {
    "env": Param(None, None, "the environment (policies.cli.TRAIN_ENVS)"),
    "env_kwargs": Param({}, mapping, "the environment's keyword arguments"),
    "seed": Param(0, int_at_least(0), "the run seed (env, modules, sampling)"),
    "num_env_runners": Param(0, int_at_least(0), "remote env runners (0: in the trial)"),
    "envs_per_runner": Param(8, int_at_least(1), "env copies per runner"),
    "overrides": Param({}, mapping, "AlgorithmConfig fields (as --set)"),
    "eval_actions": Param("greedy", _eval_actions, "how evaluation episodes act: greedy "
                                                   "(argmax) or sampled from the policies"),
    "warm_start": Param(None, _optional_str, "a scheduler to imitate before RL (FEN: its "
                                             "sub-policy 0)"),
    "warm_start_episodes": Param(None, None, "its demonstration episodes"),
}

RLLIB_PARAMS: dict[str, Param] = {
    **COMMON_PARAMS,
    "algo": Param("ppo", None, "ppo, dqn or a2c"),
    "policy_mode": Param("independent", None, "independent or shared"),
    "sampler": Param("multi_agent", None, "multi_agent or vector"),
    "model": Param("mlp", None, "mlp or slot_scoring"),
    "baseline": Param("critic", None, "critic or same_seed_mean"),
}

FEN_PARAMS: dict[str, Param] = {
    **COMMON_PARAMS,
    "variant": Param("fen", None, "policies.fen.variants.VARIANTS"),
    "policy_mode": Param(None, None, "shared or independent (default: the env's)"),
    "preset": Param(None, _optional_str, "a named FEN option set (authors)"),
    "fen_options": Param({}, mapping, "FEN options (build_fen_config's fen_options)"),
    "sampler": Param("auto", None, "auto (vector wherever it applies), vector or "
                                   "multi_agent"),
}


def _build_rllib(params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    from policies.cli import check_warm_start
    from policies.config import build_config

    check_warm_start(params["warm_start"], params["warm_start_episodes"], env=params["env"],
                     algo=params["algo"], resume=None)
    config = build_config(
        params["env"], params["algo"], params["policy_mode"], seed=params["seed"],
        num_env_runners=params["num_env_runners"], envs_per_runner=params["envs_per_runner"],
        overrides=params["overrides"], env_kwargs=params["env_kwargs"],
        sampler=params["sampler"], model=params["model"], baseline=params["baseline"],
    )
    run_info = {"env": params["env"], "algo": params["algo"],
                "policy_mode": params["policy_mode"], "sampler": params["sampler"],
                "factory": config.env_config["factory"], "env_config": config.env_config,
                "seed": params["seed"]}
    return config, run_info


def fen_run_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The FEN options a trial's variant gets: ``preset`` under ``fen_options``, those
    the variant uses (an option no variant knows is an error)."""
    from policies.fen.variants import VARIANT_OPTIONS, options_for, preset_options

    known = frozenset().union(*VARIANT_OPTIONS.values())
    unknown = sorted(set(params["fen_options"]) - known)
    if unknown:
        raise ValueError(f"unknown FEN options {unknown}; allowed: {sorted(known)}")
    return options_for(params["variant"], preset_options(params["preset"],
                                                         dict(params["fen_options"])))


def _build_fen(params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    from policies.cli import check_warm_start
    from policies.fen.config import build_fen_config, sampler_of
    from policies.fen.variants import (
        DEFAULT_POLICY_MODE,
        PRESET_DEFAULTS,
        RESOLVED_KEY,
        options_for,
    )

    check_warm_start(params["warm_start"], params["warm_start_episodes"], env=params["env"],
                     algo="ppo", resume=None)
    options = fen_run_options(params)
    config = build_fen_config(
        params["env"], params["variant"], policy_mode=params["policy_mode"],
        seed=params["seed"], num_env_runners=params["num_env_runners"],
        envs_per_runner=params["envs_per_runner"], env_kwargs=params["env_kwargs"],
        fen_options=options, overrides=params["overrides"], sampler=params["sampler"],
    )
    run_info = {"env": params["env"], "variant": params["variant"], "algo": "ppo",
                "policy_mode": params["policy_mode"] or DEFAULT_POLICY_MODE.get(params["env"]),
                "factory": config.env_config["factory"], "env_config": config.env_config,
                "seed": params["seed"], "sampler": sampler_of(config), "fen_options": options,
                RESOLVED_KEY: {**options_for(params["variant"], PRESET_DEFAULTS), **options}}
    return config, run_info


def _check(build: Callable) -> Callable[[dict[str, Any]], None]:
    def check(params: dict[str, Any]) -> None:
        if not isinstance(params.get("env"), str):
            raise ValueError(f"trial.params.env: {params.get('env')!r} is not an env name")
        build(params)
    return check


def _resources(params: Mapping[str, Any]) -> list[dict[str, float]]:
    # the main process (overrides.num_cpus_for_main_process: FEN's learner updates with
    # them, policies/fen/learner.py), then one CPU per remote env runner
    main = float(params["overrides"].get("num_cpus_for_main_process", 1))
    return [{"CPU": main}] + [{"CPU": 1.0}] * int(params["num_env_runners"])


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _evaluate(checkpoint: Path, episodes: int, seed: int, prefix: str,
              sample: bool = False) -> dict[str, float]:
    """The fairness figures of ``episodes`` evaluation episodes (actions sampled or greedy)
    and the means of the env's own episode figures (``episode_stats`` keys without ``/``:
    resource_allocation's ``avg_slowdown`` etc.), as ``<prefix>/<figure>``."""
    import io

    from policies.training import evaluate_checkpoint

    report = evaluate_checkpoint(checkpoint, episodes=episodes, seed=seed, out=io.StringIO(),
                                 sample=sample)
    per_episode = report["per_episode"]
    env_figures = {k: sum(float(e[k]) for e in per_episode) / len(per_episode)
                   for k in per_episode[0]
                   if "/" not in k and k not in EVAL_FIGURES and _finite(per_episode[0][k])}
    return {f"{prefix}/{k}": v for k, v in
            {**env_figures, **{k: float(report[k]) for k in EVAL_FIGURES}}.items()}


def train_trial(params: dict[str, Any], context: Any, build: Callable) -> dict[str, Any]:
    """Train one trial to the experiment's stop (resuming Tune's checkpoint if any) and
    return its summary (the module docstring says what ``metrics`` are)."""
    from torch.utils.tensorboard import SummaryWriter

    from policies.training import (
        CONFIG_TAG,
        EmptySampling,
        all_scalars,
        config_text,
        iteration_metrics,
        long_lived_objects_frozen,
        open_checkpoint,
        save_checkpoint,
    )

    config, run_info = build(params)
    run_info["trial"] = context.name
    state: dict[str, Any] = {"curves": {t: [] for t in CURVE_TAGS}, "latest": {},
                             "checkpoints": [], "wall_time_s": 0.0, "env_steps": 0}
    algo = config.build_algo()
    writer = None
    try:
        restored = context.restored()
        if restored is not None:
            algo.restore_from_path(str(open_checkpoint(restored)[0].resolve()))
            state = json.loads((restored / STATE_FILE).read_text())
            state.setdefault("resumed_at", []).append(algo.iteration)
        elif params.get("warm_start"):
            from policies.warm_start import DEMO_EPISODES, warm_start_from

            warm = warm_start_from(config, params["warm_start"], seed=params["seed"],
                                   episodes=params.get("warm_start_episodes") or DEMO_EPISODES)
            state["warm_start"] = dict(warm(algo))
        writer = SummaryWriter(log_dir=str(context.trial_dir() / "tb"),
                               purge_step=algo.iteration + 1)
        if restored is None:
            writer.add_text(CONFIG_TAG, config_text(config, run_info), global_step=0)
        every = context.checkpoint.every
        since = time.perf_counter()
        empty = EmptySampling()
        with long_lived_objects_frozen():
            while not context.stop.reached(algo.iteration, state["env_steps"]):
                result = algo.train()
                it = algo.iteration
                for tag, value in all_scalars(result).items():
                    writer.add_scalar(tag, value, global_step=it)
                writer.flush()
                metrics = {k: v for k, v in iteration_metrics(result).items() if _finite(v)}
                state["env_steps"] = int(metrics.get("throughput/env_steps_lifetime", 0))
                state["latest"].update(metrics)
                for tag in CURVE_TAGS:
                    if tag in metrics:
                        state["curves"][tag].append([it, metrics[tag]])
                last = context.stop.reached(it, state["env_steps"])
                empty.update(result, last=last)
                if not (last or (every and it % every == 0)):
                    context.report(metrics)
                    continue
                with tempfile.TemporaryDirectory() as folder:
                    checkpoint = save_checkpoint(algo, Path(folder), run_info)
                    if context.evaluation.episodes:
                        ev = context.evaluation
                        sample = params.get("eval_actions") == "sampled"
                        figures = {**_evaluate(checkpoint, ev.episodes, ev.seed, "validation",
                                               sample),
                                   **_evaluate(checkpoint, ev.episodes, ev.test_seed, "test",
                                               sample)}
                        metrics.update(figures)
                        state["checkpoints"].append({"iteration": it, **figures})
                    state["wall_time_s"] += time.perf_counter() - since
                    since = time.perf_counter()
                    (Path(folder) / STATE_FILE).write_text(json.dumps(state))
                    context.report(metrics, checkpoint=Path(folder))
    finally:
        if writer is not None:
            writer.close()
        algo.stop()
    return {**summarize(state, context.evaluation, algo.iteration),
            "sampler": run_info.get("sampler")}


def summarize(state: Mapping[str, Any], evaluation: Any, iteration: int) -> dict[str, Any]:
    """A trial's summary from its bookkeeping (see the module docstring)."""
    latest = state["latest"]
    summary: dict[str, Any] = {
        "iterations": iteration,
        "env_steps": state["env_steps"],
        "wall_time_s": state["wall_time_s"],
        "curves": state["curves"],
        "training": {k.removeprefix(FAIRNESS): v for k, v in latest.items()
                     if k.startswith(FAIRNESS) and CONTROLLER not in k},
        "controller": {k.removeprefix(FAIRNESS): v for k, v in latest.items()
                       if k.startswith(FAIRNESS + CONTROLLER)},
    }
    for key in ("warm_start", "resumed_at"):  # resumed_at: iterations Tune restored it at
        if key in state:
            summary[key] = state[key]
    if evaluation.episodes and state["checkpoints"]:
        key = f"validation/{evaluation.select}"
        pick = max if evaluation.mode == "max" else min
        best = pick(state["checkpoints"], key=lambda c: c.get(key, -math.inf))
        summary["selection"] = {
            "rule": f"{evaluation.mode} {key} over checkpoints "
                    f"{[c['iteration'] for c in state['checkpoints']]}",
            "iteration": best["iteration"], "checkpoints": state["checkpoints"],
            "episodes": evaluation.episodes,
        }
        summary["metrics"] = {k.removeprefix("test/"): v for k, v in best.items()
                              if k.startswith("test/")}
    else:
        summary["metrics"] = dict(summary["training"])
    return summary


def _run_rllib(params: dict[str, Any], context: Any) -> dict[str, Any]:
    return train_trial(params, context, _build_rllib)


def _run_fen(params: dict[str, Any], context: Any) -> dict[str, Any]:
    return train_trial(params, context, _build_fen)


def _fen_anchors(experiment: Any) -> list[dict[str, Any]]:
    """Uniform random play (measured now) and the paper's rows of the experiment's env."""
    from policies.fen.references import PAPER, random_policy_figures

    env, env_kwargs = experiment.params["env"], experiment.params.get("env_kwargs") or {}
    figures = random_policy_figures(env, dict(env_kwargs))
    rows = [{"label": "random play (5 episodes)",
             "metrics": {m: f["mean"] for m, f in figures.items()},
             "std": {m: f["std"] for m, f in figures.items()}, "seeds": 5}]
    if env_kwargs:  # the paper's numbers are for the default worlds
        return rows
    for variant, paper in PAPER.get(env, {}).items():
        rows.append({"label": f"paper: {variant}",
                     "metrics": {m: mean for m, (mean, _) in paper.items()},
                     "std": {m: std for m, (_, std) in paper.items() if std is not None}})
    return rows


FAIRNESS_METRICS = {"utilization": "pct", "cv": ".3f", "min_utility": ".3f",
                    "max_utility": ".3f"}


def _fmt(values: list[float], fmt: str) -> str:
    """Mean ± std (n - 1) of ``values`` as the report prints a cell; ``-`` for none."""
    if not values:
        return "-"
    mean = sum(values) / len(values)
    std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
           if len(values) > 1 else 0.0)
    if fmt == "pct":
        return f"{100 * mean:.1f}% ±{100 * std:.1f}"
    return f"{format(mean, fmt)} ±{format(std, fmt)}"


def _paper_cell(paper: tuple[float, float | None] | None, fmt: str) -> str:
    if paper is None:
        return "-"
    mean, std = paper
    if fmt == "pct":
        return f"{100 * mean:.0f}%" + (f" ±{100 * std:.0f}" if std is not None else "")
    return format(mean, fmt) + (f" ±{format(std, fmt)}" if std is not None else "")


def _fen_notes(experiment: Any, summaries: list[dict[str, Any]]) -> str:
    """FEN's study text beyond the generic table: each row beside the paper's figures of
    its variant, the controllers' choices, where the hierarchical rows' utilization goes,
    the plant's runs without its products figures."""
    from policies.experiments.report import metric_formats, order, row_label
    from policies.fen.envs import RELATIVE_UTILITY_BIN_NAMES
    from policies.fen.references import PAPER
    from policies.fen.variants import HIERARCHICAL_VARIANTS

    env = experiment.params["env"]
    formats = metric_formats(experiment)
    rows: dict[str, list[dict[str, Any]]] = {}
    for s in order(experiment, summaries):
        rows.setdefault(row_label(experiment, s), []).append(s)

    def variant(label: str) -> str:
        return rows[label][0]["params"]["variant"]

    def budget(label: str) -> str:
        return ", ".join(str(i) for i in sorted({s.get("iterations") for s in rows[label]}))

    out = []
    paper = PAPER.get(env, {}) if not experiment.params.get("env_kwargs") else {}
    columns = list(dict.fromkeys(m for r in paper.values() for m in r))
    if columns:
        out += ["### Beside the paper", "",
                "Each row (mean ± std over its seeds) / the paper's figure for its variant "
                "(- where the paper gives none):", "",
                "| row | seeds | iterations | " + " | ".join(columns) + " |",
                "|" + "---|" * (3 + len(columns))]
        for label, members in rows.items():
            cells = []
            for m in columns:
                fmt = formats.get(m, ".2f")
                ours = _fmt([float(s["metrics"][m]) for s in members
                             if isinstance(s["metrics"].get(m), int | float)], fmt)
                cells.append(f"{ours} / {_paper_cell(paper.get(variant(label), {}).get(m), fmt)}")
            out.append(f"| {label} | {len(members)} | {budget(label)} | "
                       + " | ".join(cells) + " |")
        out.append("")
    elif not experiment.params.get("env_kwargs"):
        out += [f"The paper gives {env}'s results as a figure only: no paper rows.", ""]

    hier = [lab for lab in rows if variant(lab) in HIERARCHICAL_VARIANTS
            and any(s.get("controller") for s in rows[lab])]
    if hier:
        out += ["### Controller behaviour", "",
                "P(the controller picks sub-policy 0, the one trained on the environment's "
                "reward) by the agent's relative utility (u_i - ubar) / ubar at the decision, "
                "and how often it picks it in all; mean over the row's seeds (training "
                "episodes of the last iteration):", "",
                "| row | seeds | " + " | ".join(RELATIVE_UTILITY_BIN_NAMES) + " | all |",
                "|" + "---|" * (3 + len(RELATIVE_UTILITY_BIN_NAMES))]
        for label in hier:
            ctrl = [s["controller"] for s in rows[label] if s.get("controller")]
            keys = [f"controller/p_sub0/rel_utility_{b}" for b in RELATIVE_UTILITY_BIN_NAMES]
            keys.append("controller/choice_freq/sub0")
            cells = [_fmt([c[k] for c in ctrl if k in c], ".2f").split(" ")[0] for k in keys]
            out.append(f"| {label} | {len(ctrl)} | " + " | ".join(cells) + " |")
        steps = "controller/steps_with_"
        broken = {lab: [s["controller"] for s in rows[lab]
                        if any(k.startswith(steps) for k in s.get("controller", {}))]
                  for lab in hier}
        broken = {lab: ctrl for lab, ctrl in broken.items() if ctrl}
        ks = sorted({int(k.removeprefix(steps).split("_")[0]) for ctrl in broken.values()
                     for c in ctrl for k in c if k.startswith(steps)})
        if broken:
            out += ["", "### Where utilization goes", "",
                    "Per row and k, the share of steps on which k agents run sub-policy 0 "
                    "and the utilization of those steps (share / utilization, mean over the "
                    "seeds that logged it; runs recorded before this breakdown existed are "
                    "left out):", "",
                    "| row | seeds | " + " | ".join(f"k={k}" for k in ks) + " |",
                    "|" + "---|" * (2 + len(ks))]
        for label, ctrl in broken.items():
            cells = []
            for k in ks:
                share = [c.get(f"{steps}{k}_on_sub0", 0.0) for c in ctrl]
                use = [c[f"controller/utilization_with_{k}_on_sub0"] for c in ctrl
                       if f"controller/utilization_with_{k}_on_sub0" in c]
                cells.append(f"{sum(share) / len(share):.2f} / "
                             + (f"{sum(use) / len(use):.2f}" if use else "-"))
            out.append(f"| {label} | {len(ctrl)} | " + " | ".join(cells) + " |")
        out.append("")

    old = [lab for lab, members in rows.items()
           if any("products_per_agent" not in s["metrics"] and "products" in s["metrics"]
                  for s in members)]
    if old:
        out += ["Rows recorded before the plant logged products per agent and its gem-share "
                "utilization (" + ", ".join(f"`{lab}`" for lab in old) + ") show - for both: "
                "their logs hold the episode total (`products`) and the generic mean(u) / c, "
                "shown as `reward_utilization` (their utilization curves are that figure too, "
                "so the plot leaves them out).", ""]

    return "\n".join(out)

RLLIB = TrialKind(
    name="rllib", params=RLLIB_PARAMS, run=_run_rllib, resources=_resources,
    iterative=True, evaluates=True, check_trial=_check(_build_rllib),
    metrics=FAIRNESS_METRICS,
)
FEN = TrialKind(
    name="fen", params=FEN_PARAMS, run=_run_fen, resources=_resources,
    iterative=True, evaluates=True, check_trial=_check(_build_fen),
    metrics=FAIRNESS_METRICS, anchors=_fen_anchors, notes=_fen_notes,
)
