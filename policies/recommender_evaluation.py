"""Evaluate recommenders on ``live_recommendation`` on the same seeded episodes.

:func:`evaluate_recommenders` runs every recommender (the baselines of
:mod:`policies.heuristics.recommenders` and DQN checkpoints via
:class:`DQNRecommender`) for ``episodes`` episodes with seeds ``seed, seed+1, ...``:
each recommender meets the same worlds, sessions, schedules and random numbers
(acceptance, likes and organic-choice noise come from per-slot draws of the seeded
streams; only the state the recommender itself changes differs).

Metrics (``{recommender: {metric: value}}``):

* from ``env.episode_stats()`` (mean over episodes): ``watch_time_per_user`` (minutes
  per user per episode), ``acceptance_rate`` (accepted / recommendations),
  ``invalid_rate`` (offline streamer recommended / recommendations),
  ``exposure_gini``, ``exposure_cv`` (over streamers' recommendation counts),
  ``active_streamers`` (still on the platform at the end), ``likes_per_user``;
* ranking metrics, pooled over all events of all episodes. An *event* is an online
  user's slot whose organic choice (``infos[agent]["organic_choice"]``: what the user
  would watch choosing by the env's logit among all live streamers plus not watching,
  see ``marl_envs.live_recommendation.env``) is a streamer. The recommender's scores
  rank the live streamers; ``hr10`` = share of events whose choice is in the top 10,
  ``ndcg10`` = mean of ``1 / log2(1 + rank)`` over events (0 beyond rank 10);
  ``_repeat`` / ``_new``: events whose chosen streamer the user had / had not watched
  before; ``events``, ``events_repeat`` count them.

DQN scores are the module's Q-values; it serves the best live streamer (``dqn``,
masked, as every baseline). A DQN trained without the env's action mask also gets a
second row with its unmasked greedy action (``<name>_unmasked``: what the trained
policy does without the live mask, hence invalid recommendations); one trained with
``action_mask=True`` (:class:`policies.action_masking.MaskedDQNTorchRLModule`) masks
its own Q-values, so both rows would be the same.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marl_envs.live_recommendation import LiveRecEnv
from marl_envs.live_recommendation_v0 import parallel_env
from policies.heuristics.recommenders import BASELINES, Recommender, live_from_obs, recommend

ENV_NAME = "live_recommendation"
#: the metrics every entry of the JSON holds (more are allowed)
METRICS: tuple[str, ...] = (
    "watch_time_per_user", "acceptance_rate", "invalid_rate", "hr10", "ndcg10",
    "exposure_gini", "active_streamers",
)
TOP_K = 10
#: env kwargs that do not change the world or the observation (reward shaping, render)
_NEUTRAL_KWARGS = ("exposure_fairness", "render_mode", "action_mask")


def rank_of(scores: np.ndarray, live: np.ndarray, item: int) -> int:
    """1-based rank of ``item`` among the live streamers by ``scores`` (ties favour it)."""
    return 1 + int(np.sum(live & (scores > scores[item])))


class DQNRecommender(Recommender):
    """Q-values of a DQN checkpoint of ``scripts/train.py`` as scores (Ray imported lazily)."""

    def __init__(self, checkpoint: str | Path, name: str = "dqn") -> None:
        super().__init__(0)
        from policies.training import load_checkpoint_config, open_checkpoint

        checkpoint, info = open_checkpoint(checkpoint)
        if info.get("env") != ENV_NAME:
            raise ValueError(f"checkpoint {str(checkpoint)!r} holds policies for env "
                             f"{info.get('env')!r}, not {ENV_NAME!r}")
        if info.get("algo") != "dqn":
            raise ValueError(f"checkpoint {str(checkpoint)!r} is a {info.get('algo')!r} "
                             "checkpoint; the evaluation reads Q-values of a dqn one")
        from ray.rllib.core.rl_module.rl_module import RLModule

        state = load_checkpoint_config(checkpoint)
        self.env_kwargs = dict((state.get("env_config") or info["env_config"]).get(
            "env_kwargs") or {})
        self.mapping_fn = state["policy_mapping_fn"]
        path = Path(checkpoint) / "learner_group" / "learner" / "rl_module"
        self.module = RLModule.from_checkpoint(str(path.resolve()))
        for sub in self.module.values():
            sub.eval()
        self.name = name
        from policies.action_masking import is_masked_space

        #: trained with ``action_mask=True``: the module masks its own Q-values
        self.mask_in_module = any(is_masked_space(sub.observation_space)
                                  for sub in self.module.values())
        self.checkpoint = str(checkpoint)
        self.command = info.get("command", "")

    def scores(self, env: Any, obs_by_agent: Mapping[str, Any]) -> dict[str, np.ndarray]:
        import torch
        from ray.rllib.core.columns import Columns

        from policies.action_masking import MASK_KEY, OBS_KEY
        from policies.training import _module_for

        out: dict[str, np.ndarray] = {}
        groups: dict[str, list[str]] = {}
        for agent in obs_by_agent:
            groups.setdefault(_module_for(self.mapping_fn, agent), []).append(agent)
        with torch.no_grad():
            for module_id, agents in groups.items():
                flat = [env.observation_parts(obs_by_agent[a]) for a in agents]
                obs: Any = torch.as_tensor(np.stack(
                    [np.concatenate(list(p.values())).astype(np.float32) for p in flat]))
                if self.mask_in_module:
                    obs = {OBS_KEY: obs, MASK_KEY: torch.as_tensor(
                        np.stack([p["live"] for p in flat]).astype(np.int8))}
                q = self.module[module_id].compute_q_values({Columns.OBS: obs})["qf_preds"]
                for a, row in zip(agents, q.cpu().numpy(), strict=True):
                    out[a] = row.astype(np.float64)
        return out


class ViabilityRerank(Recommender):
    """A fairness-aware re-ranking of a DQN that keeps streamers on the platform: its
    Q-values plus ``beta`` times each live streamer's shortfall below the departure
    threshold, ``max(0, 1 - (e_i + a_i) / min_exposure)``, where ``e_i`` is the
    streamer's recommendations that still count after this slot
    (``env.lasting_exposure()``) and ``a_i`` the recommendations this re-ranker already
    gave it in the current slot (users are served one after another, so one slot's users
    do not all pile onto the same streamer). Same network, no retraining; ``beta`` is in
    the Q-values' units (discounted watch minutes): a large beta serves streamers at risk
    first, a small one only when the user loses little.
    """

    def __init__(self, dqn: DQNRecommender, beta: float) -> None:
        super().__init__(0)
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"re-ranking beta must be a finite number > 0, got {beta!r}")
        self.dqn = dqn
        self.beta = float(beta)
        self.name = f"{dqn.name}_viability{self.beta:g}"

    def scores(self, env: Any, obs_by_agent: Mapping[str, Any]) -> dict[str, np.ndarray]:
        q_values = self.dqn.scores(env, obs_by_agent)
        if env.min_exposure <= 0:
            return q_values
        exposure = env.lasting_exposure().astype(np.float64)
        live = env.live_mask()
        out: dict[str, np.ndarray] = {}
        for agent, q in q_values.items():
            shortfall = np.maximum(0.0, 1.0 - exposure / env.min_exposure)
            out[agent] = q + self.beta * shortfall
            if agent != env.closing_agent:  # its recommendation is never shown
                exposure[recommend(out[agent], live)] += 1.0
        return out


def _effective_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params = inspect.signature(LiveRecEnv.__init__).parameters
    full = {k: p.default for k, p in params.items() if k != "self"}
    full.update(kwargs)
    return {k: v for k, v in full.items() if k not in _NEUTRAL_KWARGS}


def check_same_world(checkpoint_kwargs: Mapping[str, Any], env_kwargs: Mapping[str, Any],
                     checkpoint: str) -> None:
    """ValueError unless a checkpoint was trained on the evaluation's world and spaces."""
    a, b = _effective_kwargs(checkpoint_kwargs), _effective_kwargs(env_kwargs)
    diff = sorted(k for k in a if a[k] != b.get(k))
    if diff:
        raise ValueError(
            f"checkpoint {checkpoint!r} was trained with env kwargs "
            f"{ {k: a[k] for k in diff} }, the evaluation uses { {k: b.get(k) for k in diff} }")


def run_episodes(
    recommender: Recommender,
    env_kwargs: Mapping[str, Any],
    *,
    episodes: int,
    seed: int,
    masked: bool = True,
) -> dict[str, float]:
    """Metrics of ``recommender`` over ``episodes`` seeded episodes (module docstring)."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    kwargs = {k: v for k, v in env_kwargs.items() if k != "exposure_fairness"}
    try:
        env = parallel_env(**kwargs)
    except TypeError as e:  # unknown env kwarg: a ValueError for the CLI's one-line error
        raise ValueError(str(e)) from e
    per_episode: list[dict[str, float]] = []
    hits: dict[str, list[float]] = {"all": [], "repeat": [], "new": []}
    gains: dict[str, list[float]] = {"all": [], "repeat": [], "new": []}
    for i in range(episodes):
        obs, infos = env.reset(seed=seed + i)
        while env.agents:
            acting = {a: obs[a] for a in env.agents}
            scores = recommender.scores(env, acting)
            actions: dict[str, int] = {}
            for a, o in acting.items():
                live = live_from_obs(env, o)
                s = scores[a]
                actions[a] = recommend(s, live) if masked else int(np.argmax(s))
                choice = int(infos[a].get("organic_choice", -1))
                if choice < 0:
                    continue
                r = rank_of(s, live, choice)
                hit = float(r <= TOP_K)
                gain = 1.0 / math.log2(1 + r) if r <= TOP_K else 0.0
                kind = "repeat" if infos[a].get("organic_repeat") else "new"
                for key in ("all", kind):
                    hits[key].append(hit)
                    gains[key].append(gain)
            obs, _, _, _, infos = env.step(actions)
        per_episode.append(env.episode_stats())
    keys = [k for k in per_episode[0] if not k.startswith("utility/")]
    result = {k: float(np.mean([s[k] for s in per_episode])) for k in keys}
    for key, suffix in (("all", ""), ("repeat", "_repeat"), ("new", "_new")):
        result[f"hr10{suffix}"] = float(np.mean(hits[key])) if hits[key] else 0.0
        result[f"ndcg10{suffix}"] = float(np.mean(gains[key])) if gains[key] else 0.0
    result["events"] = float(len(hits["all"]))
    result["events_repeat"] = float(len(hits["repeat"]))
    result["episodes"] = float(episodes)
    return result


def evaluate_recommenders(
    recommenders: Sequence[Recommender],
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    episodes: int = 5,
    seed: int = 10_000,
) -> dict[str, dict[str, float]]:
    """``{name: metrics}`` for every recommender (DQN ones trained without the action mask
    also unmasked)."""
    env_kwargs = dict(env_kwargs or {})
    out: dict[str, dict[str, float]] = {}
    for rec in recommenders:
        if isinstance(rec, DQNRecommender):
            check_same_world(rec.env_kwargs, env_kwargs, rec.checkpoint)
        out[rec.name] = run_episodes(rec, env_kwargs, episodes=episodes, seed=seed)
        if isinstance(rec, DQNRecommender) and not rec.mask_in_module:
            out[f"{rec.name}_unmasked"] = run_episodes(
                rec, env_kwargs, episodes=episodes, seed=seed, masked=False)
    return out


def baselines(seed: int = 0) -> list[Recommender]:
    """One instance of every baseline (random, popular, repeat, oracle)."""
    return [cls(seed) for cls in BASELINES.values()]


# ------------------------------------------------------------------- outputs
_TABLE = (
    ("watch min/user", "watch_time_per_user", "{:.1f}"),
    ("accept", "acceptance_rate", "{:.3f}"),
    ("invalid", "invalid_rate", "{:.3f}"),
    ("HR@10", "hr10", "{:.3f}"),
    ("HR@10 rep", "hr10_repeat", "{:.3f}"),
    ("HR@10 new", "hr10_new", "{:.3f}"),
    ("NDCG@10", "ndcg10", "{:.3f}"),
    ("NDCG@10 rep", "ndcg10_repeat", "{:.3f}"),
    ("NDCG@10 new", "ndcg10_new", "{:.3f}"),
    ("exposure Gini", "exposure_gini", "{:.3f}"),
    ("active streamers", "active_streamers", "{:.1f}"),
)


def markdown_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """The metrics table of :func:`evaluate_recommenders`' results."""
    head = "| recommender | " + " | ".join(label for label, _, _ in _TABLE) + " |"
    sep = "|---|" + "---:|" * len(_TABLE)
    rows = [f"| {name} | " + " | ".join(fmt.format(m.get(key, float('nan')))
                                        for _, key, fmt in _TABLE) + " |"
            for name, m in results.items()]
    return "\n".join([head, sep, *rows])


def plot_results(results: Mapping[str, Mapping[str, float]], path: str | Path) -> None:
    """Bars of watch time per user, HR@10 and active streamers per recommender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (title, key) in zip(axes, (("watch minutes per user", "watch_time_per_user"),
                                       ("HR@10 (organic choice)", "hr10"),
                                       ("streamers active at the end", "active_streamers")),
                                strict=True):
        ax.bar(names, [results[n].get(key, 0.0) for n in names], color="tab:blue")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def target_lines(results: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The issue's targets, checked on the measured numbers (markdown lines)."""
    lines: list[str] = []
    dqn, rep = results.get("dqn"), results.get("repeat")
    if dqn is not None and rep is not None:
        lines += ["## Targets", ""]
        for key, label in (("watch_time_per_user", "watch time per user"),
                           ("hr10", "HR@10")):
            ok = dqn[key] > rep[key]
            lines.append(f"* DQN vs repeat heuristic, {label}: {dqn[key]:.3f} vs "
                         f"{rep[key]:.3f} -> {'met' if ok else 'MISSED'}")
        fairness_rows = [n for n in results if n == "dqn_fair" or "_viability" in n]
        for name in fairness_rows:
            row = results[name]
            cost = 1 - row["watch_time_per_user"] / max(dqn["watch_time_per_user"], 1e-9)
            more = row["active_streamers"] - dqn["active_streamers"]
            label = ("fairness-aware DQN (trained)" if name == "dqn_fair"
                     else f"viability re-ranking `{name}`")
            lines.append(
                f"* {label} vs DQN: active streamers {row['active_streamers']:.1f} "
                f"vs {dqn['active_streamers']:.1f} ({more:+.1f}), exposure Gini "
                f"{row['exposure_gini']:.3f} vs {dqn['exposure_gini']:.3f}, watch time "
                f"{row['watch_time_per_user']:.1f} vs {dqn['watch_time_per_user']:.1f} "
                f"({100 * cost:.1f}% cost) -> {'keeps more streamers' if more > 0 else 'MISSED'}")
        lines.append("")
    return lines


def write_report(
    results: Mapping[str, Mapping[str, float]],
    *,
    json_path: str | Path,
    md_path: str | Path | None,
    png_path: str | Path | None,
    env_kwargs: Mapping[str, Any],
    episodes: int,
    seed: int,
    command: str,
    wall_time_s: float,
    training: Mapping[str, str] | None = None,
    notes: str = "",
) -> None:
    """Write the JSON (``{recommender: {metric: value}}``), the PNG and the markdown."""
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    if png_path:
        plot_results(results, png_path)
    if not md_path:
        return
    lines = [
        "# Live-stream recommendation: DQN vs baselines",
        "",
        f"Environment `live_recommendation` with kwargs `{json.dumps(dict(env_kwargs))}` "
        f"(defaults otherwise), {episodes} episodes, seeds {seed}..{seed + episodes - 1}, "
        "the same seeded episodes for every recommender.",
        "",
        markdown_table(results),
        "",
        "Watch minutes per user per episode; acceptance = accepted / recommendations; "
        "invalid = offline streamer recommended / recommendations; exposure = "
        "recommendations per streamer; active streamers = still on the platform at the "
        "end (of the env's streamers).",
        "",
        "HR@10 / NDCG@10: at every online slot the env draws the user's organic choice by "
        "its own logit among all live streamers and not watching (a dedicated random "
        "stream, identical for every recommender); slots where it is a streamer are "
        "events. Hit: the chosen streamer is among the recommender's 10 best-scored live "
        "streamers; NDCG = 1/log2(1+rank). *rep*: the user had watched that streamer "
        "before; *new*: not.",
        "",
    ]
    lines += target_lines(results)
    if notes:
        lines += [notes, ""]
    lines += ["## Commands", "", "```bash"]
    for name, cmd in (training or {}).items():
        lines.append(f"# {name}")
        lines.append(cmd)
    lines += [f"# evaluation ({wall_time_s:.0f} s wall)", command, "```", ""]
    if png_path:
        lines += [f"![results]({Path(png_path).name})", ""]
    Path(md_path).write_text("\n".join(lines))


def main_evaluation(
    *,
    checkpoint: str | None,
    fair_checkpoint: str | None,
    episodes: int,
    seed: int,
    env_kwargs: Mapping[str, Any],
    json_path: str,
    md_path: str | None,
    png_path: str | None,
    command: str,
    notes: str = "",
    extra_checkpoints: Mapping[str, str] | None = None,
    rerank_betas: Sequence[float] = (),
) -> dict[str, dict[str, float]]:
    """What ``scripts/evaluate_recommenders.py`` does (bad input -> ValueError).

    ``extra_checkpoints``: more DQN checkpoints as ``{row name: path}`` (e.g. an earlier
    training setup, for comparison on the same episodes). ``rerank_betas``: a
    :class:`ViabilityRerank` row of the ``checkpoint`` DQN per beta.
    """
    if rerank_betas and checkpoint is None:
        raise ValueError("re-ranking needs a DQN checkpoint (--checkpoint)")
    start = time.perf_counter()
    recs: list[Recommender] = baselines(seed)
    training: dict[str, str] = {}
    extra = dict(extra_checkpoints or {})
    if len(set(map(float, rerank_betas))) != len(rerank_betas):
        raise ValueError(f"re-ranking betas must differ, got {list(rerank_betas)}")
    taken = ({r.name for r in recs} | {"dqn", "dqn_fair"}
             | {f"dqn_viability{float(b):g}" for b in rerank_betas})
    for name in extra:
        if name in taken or not name or name.endswith("_unmasked") or "_viability" in name:
            raise ValueError(f"extra checkpoint name {name!r} is taken or invalid; not allowed: "
                             f"{sorted(taken)}, names ending in '_unmasked' or holding "
                             "'_viability' (the report's row kinds)")
    for path, name in ((checkpoint, "dqn"), (fair_checkpoint, "dqn_fair"),
                       *((p, n) for n, p in extra.items())):
        if path is None:
            continue
        if not Path(path).exists():
            raise ValueError(f"checkpoint path {path!r} does not exist")
        rec = DQNRecommender(path, name=name)
        recs.append(rec)
        training[f"{name} training"] = rec.command
        if name == "dqn":
            recs += [ViabilityRerank(rec, beta) for beta in rerank_betas]
    results = evaluate_recommenders(recs, env_kwargs, episodes=episodes, seed=seed)
    write_report(results, json_path=json_path, md_path=md_path, png_path=png_path,
                 env_kwargs=env_kwargs, episodes=episodes, seed=seed, command=command,
                 wall_time_s=time.perf_counter() - start, training=training, notes=notes)
    return results
