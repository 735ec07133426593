"""Trial kind ``recommender``: one recommender evaluated on ``live_recommendation``.

A trial serves one recommender for ``episodes`` seeded episodes (seeds ``seed``,
``seed + 1``, ...; every trial with the same seed and env kwargs meets the same worlds,
sessions and random numbers) and reports the figures of
:func:`policies.recommender_evaluation.run_episodes` as its ``metrics``: watch minutes per
user, acceptance and invalid rates, HR@10 / NDCG@10 against the user's organic choice
(all, repeat, new), exposure Gini and CV, streamers still active.

``recommender`` is a heuristic of :data:`policies.heuristics.recommenders.BASELINES`
(``random``, ``popular``, ``repeat``, ``oracle``; seeded with the trial's seed) or the path
of a DQN checkpoint of ``scripts/train.py`` on ``live_recommendation``, relative to the
repository (its Q-values are the scores: :class:`policies.recommender_evaluation.DQNRecommender`).
``rerank_beta`` re-ranks a DQN's Q-values by the streamers' shortfall below the departure
threshold (:class:`policies.recommender_evaluation.ViabilityRerank`); ``masked: false``
serves the raw best score even when that streamer is offline (an invalid recommendation).

The report's ``targets`` (``{model: TRIAL, heuristic: TRIAL, fairness: [TRIAL, ...]}``,
or a list of such mappings) adds the checks of the study: the model against the
heuristic on watch time and HR@10, and each fairness-aware trial against the model on
streamers kept, exposure Gini and the watch time it costs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from policies.experiments.kinds import (
    REPORT_KEYS,
    Param,
    TrialKind,
    int_at_least,
    keyword_arguments_of,
)

#: the repository: relative checkpoint paths are resolved against it (a Tune trial runs
#: in its own folder)
REPO = Path(__file__).resolve().parents[2]


def _heuristics() -> dict[str, Any]:
    from policies.heuristics.recommenders import BASELINES

    return BASELINES


def _check_recommender(value: Any) -> None:
    heuristics = sorted(_heuristics())
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a recommender; allowed: one of {heuristics} or "
                         "the path of a DQN checkpoint relative to the repository")
    if value in heuristics:
        return
    if Path(value).is_absolute():
        raise ValueError(f"{value!r} is an absolute path; give the DQN checkpoint relative to "
                         f"the repository (nothing in results/ names a folder of this machine)")
    if not (REPO / value).exists():
        raise ValueError(f"{value!r} is neither a heuristic ({heuristics}) nor an existing "
                         "checkpoint path relative to the repository")


def _check_env_kwargs(value: Any) -> None:
    from marl_envs.live_recommendation import LiveRecEnv

    keyword_arguments_of(LiveRecEnv)(value)


def _check_beta(value: Any) -> None:
    if value is None:
        return
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{value!r} is not a finite number > 0 (or null: no re-ranking)")


def _check_bool(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")


PARAMS: dict[str, Param] = {
    "recommender": Param("repeat", _check_recommender,
                         "a heuristic (random, popular, repeat, oracle) or a DQN checkpoint "
                         "path relative to the repository"),
    "env_kwargs": Param({}, _check_env_kwargs, "the env's keyword arguments"),
    "episodes": Param(10, int_at_least(1), "episodes, seeds seed, seed + 1, ..."),
    "seed": Param(10_000, int_at_least(0), "the first episode's seed (and the heuristic's)"),
    "rerank_beta": Param(None, _check_beta, "viability re-ranking of a DQN's Q-values"),
    "masked": Param(True, _check_bool, "serve the best live streamer (false: the best score)"),
}


def _check_trial(params: dict[str, Any]) -> None:
    """A re-ranking needs a DQN; a checkpoint must hold a DQN trained on this env, in
    the same world (:func:`policies.recommender_evaluation.check_same_world`)."""
    from marl_envs.live_recommendation_v0 import parallel_env

    kwargs = {k: v for k, v in params["env_kwargs"].items() if k != "exposure_fairness"}
    try:
        parallel_env(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"env_kwargs {params['env_kwargs']!r}: {e}") from None
    name = params["recommender"]
    if name in _heuristics():
        if params["rerank_beta"] is not None:
            raise ValueError(f"rerank_beta {params['rerank_beta']!r} re-ranks a DQN's "
                             f"Q-values; recommender {name!r} is a heuristic")
        return
    from policies.recommender_evaluation import ENV_NAME, check_same_world
    from policies.training import load_checkpoint_config, open_checkpoint

    path, info = open_checkpoint(REPO / name)
    if info.get("env") != ENV_NAME or info.get("algo") != "dqn":
        raise ValueError(f"checkpoint {name!r} holds a {info.get('algo')!r} policy for env "
                         f"{info.get('env')!r}; allowed: a dqn one for {ENV_NAME!r}")
    env_config = load_checkpoint_config(path).get("env_config") or info.get("env_config") or {}
    check_same_world(env_config.get("env_kwargs") or {}, params["env_kwargs"], name)


def make_recommender(params: Mapping[str, Any]) -> Any:
    """The recommender a trial serves (a heuristic, a DQN, or a re-ranked DQN)."""
    from policies.recommender_evaluation import DQNRecommender, ViabilityRerank, check_same_world

    name = params["recommender"]
    if name in _heuristics():
        return _heuristics()[name](params["seed"])
    dqn = DQNRecommender(REPO / name, name="dqn")
    check_same_world(dqn.env_kwargs, params["env_kwargs"], name)
    if params.get("rerank_beta") is not None:
        return ViabilityRerank(dqn, float(params["rerank_beta"]))
    return dqn


def run(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """Evaluate the trial's recommender (module docstring); the summary's ``metrics``."""
    from policies.recommender_evaluation import run_episodes

    recommender = make_recommender(params)
    metrics = run_episodes(recommender, params["env_kwargs"], episodes=params["episodes"],
                           seed=params["seed"], masked=params["masked"])
    summary: dict[str, Any] = {"metrics": metrics}
    if params["recommender"] not in _heuristics():
        dqn = getattr(recommender, "dqn", recommender)
        summary["trained_by"] = dqn.command
        summary["mask_in_module"] = dqn.mask_in_module
    return summary


def _trial(by_name: Mapping[str, Mapping[str, Any]], at: str, name: Any) -> dict[str, float]:
    if not isinstance(name, str) or name not in by_name:
        raise ValueError(f"{at}: {name!r} is no trial of the study; trials: "
                         f"{sorted(by_name)}")
    return by_name[name]["metrics"]


def _targets(by_name: Mapping[str, Mapping[str, Any]], targets: Any, at: str) -> list[str]:
    if not isinstance(targets, Mapping) or "model" not in targets \
            or set(targets) - {"model", "heuristic", "fairness"}:
        raise ValueError(f"{at}: {targets!r}; allowed: a mapping with model and optionally "
                         "heuristic (trial names) and fairness (a list of trial names)")
    m = targets["model"]
    model = _trial(by_name, f"{at}.model", m)
    lines = []
    h = targets.get("heuristic")
    if h is not None:
        heuristic = _trial(by_name, f"{at}.heuristic", h)
        for key, label in (("watch_time_per_user", "watch time per user"), ("hr10", "HR@10")):
            met = "met" if model[key] > heuristic[key] else "MISSED"
            lines.append(f"* `{m}` vs `{h}`, {label}: {model[key]:.3f} vs "
                         f"{heuristic[key]:.3f} -> {met}")
    for name in targets.get("fairness") or []:
        row = _trial(by_name, f"{at}.fairness", name)
        cost = 1 - row["watch_time_per_user"] / max(model["watch_time_per_user"], 1e-9)
        more = row["active_streamers"] - model["active_streamers"]
        lines.append(
            f"* `{name}` vs `{m}`: active streamers {row['active_streamers']:.1f} vs "
            f"{model['active_streamers']:.1f} ({more:+.1f}), exposure Gini "
            f"{row['exposure_gini']:.3f} vs {model['exposure_gini']:.3f}, watch time "
            f"{row['watch_time_per_user']:.1f} vs {model['watch_time_per_user']:.1f} "
            f"({100 * cost:.1f}% cost) -> {'keeps more streamers' if more > 0 else 'MISSED'}")
    return lines


def notes(experiment: Any, summaries: list[dict[str, Any]]) -> str:
    """Which row each trial outside the grid is (their labels name checkpoints), and the
    study's targets (``report.targets``: one mapping or a list of them), checked on the
    trials' figures."""
    from policies.experiments.report import row_label

    grid = {t.name for t in experiment.trials()}
    lines = [f"* `{s['trial']}`: {row_label(experiment, s)}" for s in summaries
             if s["trial"] not in grid]
    if lines:
        lines = ["Trials outside the grid (imported ones, named by their old rows) and their "
                 "rows in the table:", "", *lines]
    targets = experiment.report.get("targets")
    if not targets:
        return "\n".join(lines)
    by_name = {s["trial"]: s for s in summaries}
    groups = targets if isinstance(targets, list) else [targets]
    lines += ["", "## Targets", ""] if lines else ["## Targets", ""]
    for i, group in enumerate(groups):
        at = f"report.targets[{i}]" if isinstance(targets, list) else "report.targets"
        lines += _targets(by_name, group, at)
    return "\n".join(lines)


METRICS = {
    "watch_time_per_user": ".1f", "acceptance_rate": ".3f", "invalid_rate": ".3f",
    "hr10": ".3f", "hr10_repeat": ".3f", "hr10_new": ".3f", "ndcg10": ".3f",
    "ndcg10_repeat": ".3f", "ndcg10_new": ".3f", "exposure_gini": ".3f",
    "active_streamers": ".1f",
}

RECOMMENDER = TrialKind(
    name="recommender", params=PARAMS, run=run, check_trial=_check_trial, metrics=METRICS,
    notes=notes,
    report_keys={**REPORT_KEYS,
                 "targets": "{model: TRIAL, heuristic: TRIAL, fairness: [TRIAL, ...]} (or a "
                            "list of them): the study's checks on those trials' figures"},
)
