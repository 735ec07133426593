"""Schedulers and learners on ``resource_allocation`` versus load (compare_schedulers.py).

For every load, the heuristics of :mod:`policies.heuristics.schedulers` and the learners
(A2C and PPO with one policy shared by the tenants, FEN's ``fen`` variant) are evaluated
on the same seeded episodes (episode ``i`` resets with seed ``eval_seed + i``). Learners
are trained per load with :func:`policies.config.build_config` /
:func:`policies.fen.config.build_fen_config` and :func:`policies.training.run_training`,
then evaluated with :func:`policies.training.evaluate_checkpoint` twice on the same
episodes: sampling their actions from the trained stochastic policies (as DeepRM
evaluates its policy; reported under the learner's name) and greedily (argmax, FEN's
controller too; reported as ``<learner>_greedy``).

Each trained learner's result is cached in ``runs_dir/<learner>_load<load>_it<iters>_s<seed>.json``
(budget, training summary, evaluation); an existing file is reused, so the comparison
resumes after an interruption and can be extended with more loads or learners.
Checkpoints and TensorBoard files go to ``train_dir`` (``runs/``, not committed).

Outputs: ``{scheduler: {load: {"slowdown", "cv", "utilization"}}}`` as JSON (load keys
as strings, e.g. ``"0.3"``), a markdown report and a PNG plot of slowdown and CV
versus load.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import marl_envs
from policies.fen.reward import CONTROLLER_PERIOD
from policies.heuristics.schedulers import SCHEDULERS, TARGET_SCHEDULERS, make_scheduler
from policies.warm_start import DEMO_EPISODES

ENV = "resource_allocation"
LEARNERS: tuple[str, ...] = ("a2c", "ppo", "fen")
#: the figures of the JSON output, per scheduler and load
JSON_METRICS = ("slowdown", "cv", "utilization")
#: episode_stats key of each reported figure
STAT_KEYS = {
    "slowdown": "avg_slowdown",
    "cv": "cv",
    "utilization": "utilization",
    "slowdown_completed": "avg_slowdown_completed",
    "completed_jobs": "completed_jobs",
    "unfinished_jobs": "unfinished_jobs",
    "refused_requests": "refused_requests",
    "empty_slot_choices": "empty_slot_choices",
    "dominant_share_spread": "dominant_share_spread",
    "makespan": "makespan",
}
#: training settings of the learners (sampled agent steps per iteration etc.)
A2C_OVERRIDES: dict[str, Any] = {"train_batch_size_per_learner": 8000, "lr": 1e-3}
PPO_OVERRIDES: dict[str, Any] = {
    "train_batch_size_per_learner": 8000, "minibatch_size": 1000, "num_epochs": 4, "lr": 5e-4,
}
FEN_OVERRIDES: dict[str, Any] = {}
#: FEN options a comparison can set (``--fen-efficiency``, ``--fen-segment-end``,
#: ``--fen-period``, ``--fen-feature-scale``, ``--fen-controller-sub0-prob``): option ->
#: (its default, the tag of a cached run's name, its words in the setups table)
FEN_SETTINGS: dict[str, tuple[Any, str, str]] = {
    "efficiency": ("episode", "eff", "efficiency"),
    "segment_end": ("terminate", "seg", "segment end"),
    "period": (CONTROLLER_PERIOD[ENV], "T", "controller period"),
    "feature_scale": (1.0, "fs", "feature scale"),
    "controller_sub0_prob": (None, "c0p", "controllers' initial P(sub-policy 0)"),
}


#: the comparison's FEN defaults, passed to build_fen_config explicitly: they are the
#: authors' efficiency window and segment end (not build_fen_config's defaults), so that
#: the cached runs keep their names
FEN_SETTINGS_DEFAULTS = {k: d for k, (d, _, _) in FEN_SETTINGS.items() if d is not None}


def fen_settings(result: Mapping[str, Any]) -> dict[str, Any]:
    """The non-default FEN options of a cached run (runs cached before ``fen_options``
    existed name their efficiency window alone, as ``fen_efficiency``)."""
    options = dict(result.get("fen_options") or {})
    if "fen_efficiency" in result:
        options.setdefault("efficiency", result["fen_efficiency"])
    return {k: v for k, v in options.items() if v != FEN_SETTINGS[k][0]}


@dataclass(frozen=True)
class LearnerSetup:
    """How a comparison trains its learners (one field per training flag of
    compare_schedulers.py; the defaults are the flags' off states).

    ``reward_scale`` multiplies the rewards the learners train on (the env's kwarg); the
    evaluation figures do not depend on it. ``action_mask``: the learners (FEN: its
    sub-policies) observe the env's action mask and never pick an empty slot or a job
    that does not fit now (:mod:`policies.action_masking`); the env's dynamics are the
    same. ``model``: ``mlp`` or ``slot_scoring`` (:mod:`policies.slot_scoring`; for FEN
    its sub-policies, the controllers keep their MLP). ``fen_options``: FEN's options
    other than their defaults (the keys of :data:`FEN_SETTINGS`). ``a2c_batch``: A2C's
    batch size, when not :data:`A2C_OVERRIDES`' (A2C takes one gradient step per batch,
    so a smaller batch means more updates). ``warm_start``: A2C/PPO start from a policy
    pretrained on this scheduler's decisions in ``warm_start_episodes`` episodes
    (:mod:`policies.warm_start`, DeepRM's supervised start). ``team_reward``: A2C/PPO
    train on the env's ``team_reward`` (every tenant gets the mean of the tenants'
    rewards). ``entropy_coeff``: A2C's/PPO's entropy bonus weight instead of 0.01.
    ``baseline``: A2C's/PPO's advantage baseline, ``critic`` (GAE) or ``same_seed_mean``
    (DeepRM's, :mod:`policies.same_seed_baseline`). FEN ignores the A2C/PPO options.
    ``fen_warm_start``: FEN's sub-policy 0 (the one trained on the environment reward)
    starts pretrained on this scheduler's decisions (also ``warm_start_episodes``).
    """

    reward_scale: float = 1.0
    action_mask: bool = False
    model: str = "mlp"
    fen_options: Mapping[str, str] = field(default_factory=dict)
    a2c_batch: int | None = None
    warm_start: str | None = None
    warm_start_episodes: int = DEMO_EPISODES
    team_reward: bool = False
    entropy_coeff: float | None = None
    baseline: str = "critic"
    fen_warm_start: str | None = None

    def teacher(self, learner: str) -> str | None:
        """The scheduler ``learner`` is warm-started from, or None."""
        return self.fen_warm_start if learner == "fen" else self.warm_start

    def overrides(self, learner: str) -> dict[str, Any]:
        """The config overrides of ``learner``: its defaults (:data:`A2C_OVERRIDES`, ...)
        with A2C's batch and the entropy weight replaced; with the same-seed baseline and
        no ``a2c_batch`` the batch is left to ``build_config`` (one round of whole
        episodes of every env copy)."""
        overrides = {"a2c": A2C_OVERRIDES, "ppo": PPO_OVERRIDES, "fen": FEN_OVERRIDES}[learner]
        if learner == "a2c" and self.a2c_batch is not None:
            overrides = {**overrides, "train_batch_size_per_learner": self.a2c_batch}
        elif learner != "fen" and self.baseline != "critic":
            overrides = {k: v for k, v in overrides.items()
                         if k != "train_batch_size_per_learner"}
        if learner != "fen" and self.entropy_coeff is not None:
            overrides = {**overrides, "entropy_coeff": self.entropy_coeff}
        return dict(overrides)

    def name_tags(self, learner: str) -> str:
        """The suffix of a cached run's name: a tag for each non-default setting
        (``fen_options`` only for FEN; ``a2c_batch`` only for A2C; the warm start, with
        its episodes when not :data:`DEMO_EPISODES`, team reward, entropy weight and
        baseline for A2C/PPO)."""
        fen_options = dict(self.fen_options) if learner == "fen" else {}
        rl = learner != "fen"
        episodes = "" if self.warm_start_episodes == DEMO_EPISODES else self.warm_start_episodes
        return "".join([
            "" if self.reward_scale == 1.0 else f"_rs{self.reward_scale:g}",
            "_mask" if self.action_mask else "",
            "" if self.model == "mlp" else f"_{self.model}",
            *(f"_{tag}{fen_options[k]:g}" if isinstance(fen_options[k], float)
              else f"_{tag}{fen_options[k]}" for k, (default, tag, _) in FEN_SETTINGS.items()
              if fen_options.get(k, default) != default),
            f"_b{self.a2c_batch}" if learner == "a2c" and self.a2c_batch not in (
                None, A2C_OVERRIDES["train_batch_size_per_learner"]) else "",
            "_team" if self.team_reward and rl else "",
            f"_ent{self.entropy_coeff:g}" if self.entropy_coeff is not None and rl else "",
            f"_ws{self.teacher(learner)}{episodes}" if self.teacher(learner) else "",
            f"_{self.baseline}" if rl and self.baseline != "critic" else "",
        ])

    def env_kwargs(self, learner: str, base: Mapping[str, Any], load: float
                   ) -> dict[str, Any]:
        """The env kwargs ``learner`` trains on at ``load``."""
        kwargs = {**base, "load": load, "reward_scale": self.reward_scale}
        if self.action_mask:
            kwargs["action_mask"] = True
        if self.team_reward and learner != "fen":
            kwargs["team_reward"] = True
        return kwargs


ENVS_PER_RUNNER = 4
#: env kwargs that LearnerSetup.env_kwargs adds for training only: they change what a
#: learner observes or trains on, not the episodes
TRAINING_ONLY_KWARGS = ("action_mask", "reward_scale", "team_reward")


def scheduler_env_kwargs(run: Mapping[str, Any]) -> dict[str, Any]:
    """The env kwargs a scheduler runs a cached learner run's episodes with."""
    return {k: v for k, v in run["env_kwargs"].items() if k not in TRAINING_ONLY_KWARGS}


def load_key(load: float) -> str:
    """The JSON key of a load: ``0.3 -> "0.3"``, ``1.0 -> "1.0"``."""
    return repr(float(load))


def parse_loads(text: str) -> list[float]:
    """``"0.3,0.7"`` -> ``[0.3, 0.7]``; ValueError naming a bad item."""
    loads = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--loads: {item!r} is not a number") from None
        if not value > 0:
            raise ValueError(f"--loads: every load must be > 0, got {value}")
        loads.append(value)
    if not loads:
        raise ValueError("--loads needs at least one load")
    return loads


#: the figures whose every episode's value is kept (``<figure>_episodes``), for paired
#: comparisons on the same episodes
PAIRED_FIGURES = ("slowdown", "cv")


def summarize(per_episode: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Means over episodes of the figures of :data:`STAT_KEYS`, and every episode's value of
    the :data:`PAIRED_FIGURES` (``slowdown_episodes``, ``cv_episodes``)."""
    means: dict[str, Any] = {name: float(np.mean([s[key] for s in per_episode]))
                             for name, key in STAT_KEYS.items()}
    for name in PAIRED_FIGURES:
        means[f"{name}_episodes"] = [float(s[STAT_KEYS[name]]) for s in per_episode]
    return means


def paired_difference(a: Mapping[str, Any], b: Mapping[str, Any],
                      figure: str = "slowdown") -> tuple[float, float] | None:
    """Mean and standard error of ``a``'s minus ``b``'s ``figure`` over the same episodes,
    or None where either lacks per-episode figures (runs cached before they were kept)."""
    xa, xb = a.get(f"{figure}_episodes"), b.get(f"{figure}_episodes")
    if not xa or not xb or len(xa) != len(xb) or len(xa) < 2:
        return None
    d = np.asarray(xa) - np.asarray(xb)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def evaluate_heuristic(name: str, env_kwargs: Mapping[str, Any], episodes: int,
                       eval_seed: int) -> dict[str, float]:
    """Run scheduler ``name`` on ``episodes`` seeded episodes; :func:`summarize` them."""
    env = marl_envs.make(ENV, **env_kwargs)
    per_episode = []
    for i in range(episodes):
        scheduler = make_scheduler(name)
        obs, infos = env.reset(seed=eval_seed + i)
        while env.agents:
            obs, _, _, _, infos = env.step(scheduler.act(obs, infos))
        per_episode.append(env.episode_stats())
    return summarize(per_episode)


def check_demonstrations(seed: int, episodes: int, eval_seed: int,
                         eval_episodes: int) -> None:
    """ValueError when the warm-start demonstrations of training seed ``seed`` would replay
    evaluation episodes."""
    from policies.warm_start import demonstration_seed

    first = demonstration_seed(seed)
    if first < eval_seed + eval_episodes and eval_seed < first + episodes:
        raise ValueError(
            f"warm-start demonstrations (episode seeds {first}..{first + episodes - 1}) "
            f"overlap the evaluation episodes ({eval_seed}..{eval_seed + eval_episodes - 1}); "
            "choose another --eval-seed")


def _train(learner: str, env_kwargs: dict[str, Any], iterations: int, seed: int,
           logdir: Path, setup: LearnerSetup, checkpoint_every: int = 0) -> dict[str, Any]:
    """Train ``learner`` (Ray must be running) on ``env_kwargs`` as ``setup`` says,
    checkpointing every ``checkpoint_every`` iterations (0: at the end only); the
    run_training summary."""
    from policies.training import run_training

    overrides, model = setup.overrides(learner), setup.model
    if learner == "fen":
        from policies.fen.config import build_fen_config

        config = build_fen_config(ENV, "fen", policy_mode="shared", seed=seed,
                                  num_env_runners=0, envs_per_runner=ENVS_PER_RUNNER,
                                  env_kwargs=env_kwargs, overrides=overrides,
                                  fen_options={"model": model, **FEN_SETTINGS_DEFAULTS,
                                               **setup.fen_options})
        run_info = {"env": ENV, "variant": "fen", "algo": "ppo", "policy_mode": "shared",
                    "factory": config.env_config["factory"], "env_config": config.env_config,
                    "seed": seed}
    else:
        from policies.config import build_config

        config = build_config(ENV, learner, "shared", seed=seed, num_env_runners=0,
                              envs_per_runner=ENVS_PER_RUNNER, overrides=overrides,
                              env_kwargs=env_kwargs, sampler="vector", model=model,
                              baseline=setup.baseline)
        run_info = {"env": ENV, "algo": learner, "policy_mode": "shared", "sampler": "vector",
                    "model": model, "env_config": config.env_config, "seed": seed}
    initialize = None
    if setup.teacher(learner) is not None:
        from policies.warm_start import warm_start_from

        initialize = warm_start_from(config, setup.teacher(learner),
                                     episodes=setup.warm_start_episodes, seed=seed)
    summary = run_training(config, iterations=iterations, logdir=logdir, run_info=run_info,
                           verbose=True, warm_start=initialize,
                           checkpoint_every=checkpoint_every)
    summary.pop("result", None)
    return summary


def drain_steps(env_kwargs: Mapping[str, Any]) -> int:
    """The drain steps of episodes made with ``env_kwargs`` (0: undrained)."""
    if "arrival_cycles" not in env_kwargs:
        return 0
    return int(env_kwargs.get("max_cycles", 200)) - int(env_kwargs["arrival_cycles"])


def arrival_steps(env_kwargs: Mapping[str, Any]) -> int:
    """The steps with job arrivals of episodes made with ``env_kwargs``."""
    return int(env_kwargs.get("arrival_cycles", env_kwargs.get("max_cycles", 200)))


def drained_env_kwargs(env_kwargs: Mapping[str, Any], drain_cycles: int) -> dict[str, Any]:
    """``env_kwargs`` whose episodes stop arrivals where they do (their
    ``arrival_cycles``, else their ``max_cycles``, default 200) and then run
    ``drain_cycles`` more steps."""
    if not isinstance(drain_cycles, int) or drain_cycles < 1:
        raise ValueError(f"--drain-cycles must be an integer >= 1, got {drain_cycles!r}")
    length = arrival_steps(env_kwargs)
    return {**env_kwargs, "arrival_cycles": length, "max_cycles": length + drain_cycles}


def cache_name(learner: str, load: float, iterations: int, seed: int,
               setup: LearnerSetup | None = None,
               env_kwargs: Mapping[str, Any] | None = None) -> str:
    """The name of a learner run's cached JSON: the run, :meth:`LearnerSetup.name_tags`
    and, for drained episodes, ``_drain<steps>``."""
    tags = (setup or LearnerSetup()).name_tags(learner)
    drain = drain_steps(env_kwargs or {})
    return (f"{learner}_load{load_key(load)}_it{iterations}_s{seed}{tags}"
            + (f"_drain{drain}" if drain else ""))


def learner_result(learner: str, load: float, setup: LearnerSetup, *,
                   env_kwargs: Mapping[str, Any], iterations: int, seed: int, episodes: int,
                   eval_seed: int, runs_dir: Path, train_dir: Path,
                   checkpoint_every: int = 0) -> dict[str, Any]:
    """The cached (or freshly trained and evaluated) result of one learner at one load,
    trained as ``setup`` says (a fresh run keeps a checkpoint every ``checkpoint_every``
    iterations besides its last); the cached JSON is named by :func:`cache_name`."""
    from policies.training import evaluate_checkpoint

    name = cache_name(learner, load, iterations, seed, setup, env_kwargs)
    overrides = setup.overrides(learner)
    path = runs_dir / f"{name}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("episodes") == episodes and cached.get("eval_seed") == eval_seed:
            print(f"[{learner} load {load}] cached: {path}", flush=True)
            stale = [key for key in ("figures", "figures_sampled")
                     if any(f"{name}_episodes" not in cached.get(key, {})
                            for name in PAIRED_FIGURES)]
            if stale and Path(cached["checkpoint"]).exists():  # older caches: evaluate again
                for key in stale:
                    cached[key] = summarize(evaluate_checkpoint(
                        cached["checkpoint"], episodes=episodes, seed=eval_seed,
                        sample=key == "figures_sampled")["per_episode"])
                path.write_text(json.dumps(cached, indent=2, sort_keys=True, default=str))
            return cached
    kwargs = setup.env_kwargs(learner, env_kwargs, load)
    warm = setup.teacher(learner) is not None
    if warm:
        check_demonstrations(seed, setup.warm_start_episodes, eval_seed, episodes)
    print(f"[{learner} load {load}] training {iterations} iterations", flush=True)
    start = time.perf_counter()
    summary = _train(learner, kwargs, iterations, seed, train_dir / name, setup,
                     checkpoint_every)
    train_s = time.perf_counter() - start
    evaluations = {
        key: summarize(evaluate_checkpoint(summary["checkpoint"], episodes=episodes,
                                           seed=eval_seed, sample=sample)["per_episode"])
        for key, sample in (("figures", False), ("figures_sampled", True))
    }
    result = {
        "learner": learner, "load": load, "iterations": iterations, "seed": seed,
        "episodes": episodes, "eval_seed": eval_seed,
        "env_kwargs": kwargs, "model": setup.model, "env_steps": summary["env_steps"],
        **({"fen_options": dict(setup.fen_options)} if learner == "fen" else {}),
        **({"warm_start": {"teacher": setup.teacher(learner),
                           "episodes": setup.warm_start_episodes,
                           "figures": summary["warm_start"]}} if warm else {}),
        "train_wall_s": train_s,
        "overrides": overrides,
        **({"baseline": setup.baseline} if learner != "fen" and setup.baseline != "critic"
           else {}),
        "checkpoint": summary["checkpoint"],
        "training_final_metrics": summary["latest_metrics"],
        **evaluations,
    }
    runs_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    print(f"[{learner} load {load}] {result['figures']} ({train_s:.0f} s) -> {path}", flush=True)
    return result


def json_table(figures: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """``{scheduler: {load: {"slowdown", "cv", "utilization"}}}`` from full figures."""
    return {s: {load: {m: float(f[m]) for m in JSON_METRICS} for load, f in by_load.items()}
            for s, by_load in figures.items()}


#: FEN's CV counts as lower than DRF's when the paired difference is below 0 by more than
#: this many standard errors (a mean 0.003 lower with an SE of 0.004 is a tie, not a win)
CV_SIGNIFICANCE_SE = 2.0
#: "comparable slowdown": at most this multiple of DRF's
COMPARABLE_SLOWDOWN = 1.1
#: the validation episodes FEN's checkpoint is chosen on (``--fen-select-on-validation``,
#: :mod:`policies.checkpoint_selection`): the first one's seed and their number (with 10,
#: the chosen checkpoint's validation CV was 0.02 lower than its evaluation CV: the
#: winner's curse of a choice among a dozen checkpoints)
VALIDATION_SEED = 20_000
VALIDATION_EPISODES = 30


def cv_verdict(f: Mapping[str, Any], reference: Mapping[str, Any],
               slowdown_ratio: float = COMPARABLE_SLOWDOWN) -> str:
    """FEN's target at one load, ``f`` against ``reference`` (DRF) over the same episodes:
    ``met`` (slowdown at most ``slowdown_ratio`` times the reference's and CV lower by more
    than :data:`CV_SIGNIFICANCE_SE` paired SEs), ``tie`` (the CVs within that many SEs),
    ``missed`` (CV higher by more, or the slowdown above the limit). Runs cached without
    per-episode figures compare the means."""
    if f["slowdown"] > slowdown_ratio * reference["slowdown"]:
        return "missed"
    paired = paired_difference(f, reference, "cv")
    if paired is None:
        return "met" if f["cv"] < reference["cv"] else "missed"
    diff, se = paired
    if diff + CV_SIGNIFICANCE_SE * se < 0:
        return "met"
    return "missed" if diff - CV_SIGNIFICANCE_SE * se > 0 else "tie"


def target_lines(figures: Mapping[str, Mapping[str, Mapping[str, float]]],
                 fen_selected: bool = False,
                 fen_evidence: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]]
                 | None = None, evidence_episodes: int | None = None) -> list[str]:
    """An honest statement of each of the issue's targets, with the measured numbers (the
    best heuristic: of the issue's baselines, :data:`TARGET_SCHEDULERS`; ``fen_selected``:
    FEN's figures are of checkpoints chosen on validation episodes; ``fen_evidence``:
    ``{load: (FEN, DRF)}`` figures on ``evidence_episodes`` evaluation episodes that FEN's
    target is judged on instead of the table rows, ``--fen-target-episodes``)."""
    heuristics = [s for s in figures if s in TARGET_SCHEDULERS]
    lines = []
    for learner in ("a2c", "ppo"):
        if learner not in figures:
            lines.append(f"- {learner.upper()} at or below the best heuristic's slowdown at "
                         "loads >= 0.7: not evaluated in this run.")
            continue
        parts, met_all = [], True
        for load, f in figures[learner].items():
            if float(load) < 0.7:
                continue
            best = min(heuristics, key=lambda s, lo=load: figures[s][lo]["slowdown"])
            b = figures[best][load]["slowdown"]
            met = f["slowdown"] <= b
            met_all &= met
            paired = paired_difference(f, figures[best][load])
            noise = "" if paired is None else (
                f"; difference {paired[0]:+.2f} +- {paired[1]:.2f} paired SE")
            parts.append(f"load {load}: {f['slowdown']:.2f} vs {best} {b:.2f} "
                         f"({'met' if met else 'missed'}{noise})")
        verdict = "MET" if met_all and parts else "NOT MET"
        lines.append(f"- {learner.upper()} at or below the best heuristic's average slowdown at "
                     f"loads >= 0.7: **{verdict}** ({'; '.join(parts) or 'no load >= 0.7'}).")
    if "fen" in figures and "drf" in figures:
        parts, met_all = [], True
        for load, f in figures["fen"].items():
            if float(load) < 0.7:  # no contention: every scheduler starts jobs on arrival
                continue
            d = figures["drf"][load]
            if fen_evidence and load in fen_evidence:
                f, d = fen_evidence[load]
            verdict = cv_verdict(f, d)
            met_all &= verdict == "met"
            paired = paired_difference(f, d, "cv")
            noise = "" if paired is None else (
                f"; CV difference {paired[0]:+.3f} +- {paired[1]:.3f} paired SE")
            parts.append(f"load {load}: CV {f['cv']:.3f} vs DRF {d['cv']:.3f}, slowdown "
                         f"{f['slowdown']:.2f} vs {d['slowdown']:.2f} ({verdict}{noise})")
        verdict = "MET" if met_all and parts else "NOT MET"
        how = []
        if fen_selected:
            how.append("its checkpoints chosen on validation episodes")
        if fen_evidence:
            how.append(f"judged on {evidence_episodes} evaluation episodes from the first one, "
                       "paired with DRF's, not on the tables' rows (`--fen-target-episodes`)")
        which = f" ({'; '.join(how)})" if how else ""
        lines.append(f"- FEN{which} with a lower CV of tenant shares than DRF at comparable "
                     f"slowdown (within 10% of DRF's; lower by more than "
                     f"{CV_SIGNIFICANCE_SE:g} paired "
                     "SEs, else a tie) at loads >= 0.7 (below, every scheduler starts "
                     f"jobs as they arrive and the CV only reflects the arrivals): "
                     f"**{verdict}** ({'; '.join(parts) or 'no load >= 0.7'}).")
    else:
        lines.append("- FEN vs DRF: not evaluated in this run.")
    return lines


def run_variant(result: Mapping[str, Any]) -> str:
    """A cached run's training setup in words: learner, reward scale, mask, model, budget."""
    kwargs = result.get("env_kwargs", {})
    parts = [result["learner"], f"{result['iterations']} it",
             f"reward scale {kwargs.get('reward_scale', 1.0):g}"]
    if kwargs.get("action_mask"):
        parts.append("action mask")
    if kwargs.get("team_reward"):
        parts.append("team reward")
    if result.get("model", "mlp") != "mlp":
        parts.append(result["model"])
    for option, value in fen_settings(result).items():
        parts.append(f"{FEN_SETTINGS[option][2]} {value}")
    batch = result.get("overrides", {}).get("train_batch_size_per_learner")
    if result["learner"] == "a2c" and batch not in (None, A2C_OVERRIDES[
            "train_batch_size_per_learner"]):
        parts.append(f"batch {batch}")
    if result.get("baseline", "critic") != "critic":
        parts.append(f"baseline {result['baseline']}")
    if "entropy_coeff" in result.get("overrides", {}):
        parts.append(f"entropy coeff {result['overrides']['entropy_coeff']:g}")
    if result.get("seed", 0) != 0:
        parts.append(f"seed {result['seed']}")
    if drain_steps(kwargs):
        parts.append(f"drained {drain_steps(kwargs)}")
    if "warm_start" in result:
        ws = result["warm_start"]
        parts.append(f"warm start {ws['teacher']}"
                     + ("" if ws["episodes"] == DEMO_EPISODES else f" ({ws['episodes']} ep)"))
    return ", ".join(parts)


def cached_runs(runs_dir: Path, episodes: int, eval_seed: int
                ) -> dict[str, dict[str, dict[str, Any]]]:
    """``{setup in words: {load: sampled-action figures}}`` of every cached learner run in
    ``runs_dir`` evaluated on these episodes (greedy figures for runs cached before
    sampled ones were kept)."""
    by_variant: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(Path(runs_dir).glob("*.json")):
        result = json.loads(path.read_text())
        if result.get("episodes") != episodes or result.get("eval_seed") != eval_seed:
            continue
        by_variant.setdefault(run_variant(result), {})[load_key(result["load"])] = (
            result.get("figures_sampled") or result["figures"])
    return by_variant


def variant_table(runs_dir: Path, episodes: int, eval_seed: int,
                  figures: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None
                  ) -> list[str]:
    """Markdown rows: sampled-action slowdown per load of every cached learner run in
    ``runs_dir`` evaluated on the same episodes (every training setup tried, side by side),
    after a first row with the best heuristic of ``figures`` at each load, if given."""
    by_variant = {variant: {lo: f["slowdown"] for lo, f in by_load.items()}
                  for variant, by_load in cached_runs(runs_dir, episodes, eval_seed).items()}
    loads = sorted({lo for v in by_variant.values() for lo in v}, key=float)
    rows = ["| learner setup | " + " | ".join(f"load {lo}" for lo in loads) + " |",
            "|---|" + "---|" * len(loads)]
    heuristics = {s: by_load for s, by_load in (figures or {}).items()
                  if s in TARGET_SCHEDULERS}
    if heuristics:
        cells = []
        for lo in loads:
            have = [s for s, by_load in heuristics.items() if lo in by_load]
            best = min(have, key=lambda s, lo=lo: heuristics[s][lo]["slowdown"], default=None)
            cells.append("-" if best is None
                         else f"{heuristics[best][lo]['slowdown']:.2f} ({best})")
        rows.append("| *best heuristic* | " + " | ".join(cells) + " |")
    for variant, by_load in by_variant.items():
        rows.append(f"| {variant} | " + " | ".join(
            f"{by_load[lo]:.2f}" if lo in by_load else "-" for lo in loads) + " |")
    return rows


def fen_tradeoff_table(runs_dir: Path, episodes: int, eval_seed: int,
                       figures: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[str]:
    """Markdown rows: CV (with its paired difference to DRF's) and slowdown, sampled
    actions, of every cached FEN setup at the loads >= 0.7, after DRF's row: FEN's
    fairness target as a trade-off. Only runs that kept their per-episode CVs: FEN runs
    evaluated before its wrapper stopped shifting the arrivals (commit 29f26c0) saw other
    episodes than DRF and did not keep them."""
    fen_runs = {v: by_load for v, by_load in cached_runs(runs_dir, episodes, eval_seed).items()
                if v.startswith("fen,")
                and all("cv_episodes" in f for f in by_load.values())}
    drf = figures.get("drf", {})
    loads = sorted({lo for by_load in fen_runs.values() for lo in by_load
                    if float(lo) >= 0.7}, key=float)
    if not fen_runs or not loads:
        return []

    def cell(f: Mapping[str, Any] | None, lo: str) -> str:
        if f is None:
            return "-"
        paired = paired_difference(f, drf[lo], "cv") if lo in drf and f is not drf[lo] else None
        diff = "" if paired is None else f" ({paired[0]:+.3f} ± {paired[1]:.3f})"
        return f"{f['cv']:.3f}{diff} / {f['slowdown']:.2f}"

    rows = ["| setup | " + " | ".join(f"load {lo}: CV / slowdown" for lo in loads) + " |",
            "|---|" + "---|" * len(loads),
            "| *drf* | " + " | ".join(cell(drf.get(lo), lo) for lo in loads) + " |"]
    for variant, by_load in fen_runs.items():
        rows.append(f"| {variant} | " + " | ".join(cell(by_load.get(lo), lo) for lo in loads)
                    + " |")
    return rows


def selection_section(selections: Mapping[str, Mapping[str, Any]],
                      runs: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[str]:
    """Markdown: per load, FEN's checkpoint chosen on validation episodes next to its last
    one (``--fen-select-on-validation``)."""
    from policies.checkpoint_selection import ACTION_WORDS, chosen_validation

    v = meta["validation"]
    last = {load_key(r["load"]): r for r in runs if r["learner"] == "fen"}
    first, final = v["validation_seed"], v["validation_seed"] + v["episodes"] - 1
    both = v.get("actions", "sampled") == "both"
    n_target = v.get("eval_episodes")  # --fen-target-episodes
    how = ACTION_WORDS[v.get("actions", "sampled")] + (
        ", `--fen-select-actions both`" if both else "")
    rows = ("FEN's row `fen` above is the candidate with the lowest validation CV among those "
            "whose validation slowdown is at most "
            f"{COMPARABLE_SLOWDOWN:g} times DRF's, acting as chosen, and `fen_greedy` its "
            "checkpoint acting greedily" if both else
            "FEN's rows above are the checkpoint with the lowest validation CV among those "
            f"whose validation slowdown is at most {COMPARABLE_SLOWDOWN:g} times DRF's")
    out = ["## FEN's checkpoint, chosen on validation episodes", "",
           f"`--fen-select-on-validation`: every checkpoint FEN's run kept "
           f"(`--checkpoint-every`) and DRF ran {v['episodes']} "
           f"validation episodes (seeds {first}..{final}, none of them an evaluation episode or "
           f"a warm-start demonstration; {how}). {rows} (`policies/checkpoint_selection.py`); "
           "only that checkpoint ran the evaluation episodes"
           + (f" (the tables' {meta['episodes']}, and {n_target} from the first one with DRF "
              "on the same, which FEN's target is judged on: `--fen-target-episodes`)"
              if n_target else "") + ". The last checkpoint's figures "
           "(actions sampled) on the evaluation episodes are given for comparison. The choice "
           "is kept in each run's JSON (`selections`).", "",
           "| load | DRF validation: slowdown / CV | checkpoints | chosen | its validation: "
           "slowdown / CV | evaluation, chosen: CV / slowdown | evaluation, last: CV / "
           "slowdown |" + (f" {n_target} episodes: CV FEN / DRF, difference; slowdown, x "
                           "DRF's; verdict |" if n_target else ""),
           "|---|---|---|---|---|---|---|" + ("---|" if n_target else "")]
    for lo, s in selections.items():
        ref, r = s["reference_validation"], last[lo]
        chosen = s["chosen"]
        target = ""
        if chosen is None:
            mine, evaluation = "-", "-"
            target = " - |" if n_target else ""
        else:
            f, e = chosen_validation(s), s.get("evaluation_rows", s["evaluation"])
            mine = f"{f['slowdown']:.2f} / {f['cv']:.3f}"
            evaluation = f"{e['cv']:.3f} / {e['slowdown']:.2f}"
            if n_target:
                t, d = s["evaluation"], s["cv_difference"]
                target = (f" {t['cv']:.3f} / {s['reference_evaluation']['cv']:.3f}, "
                          f"{d[0]:+.3f} ± {d[1]:.3f}; {t['slowdown']:.2f}, "
                          f"{s['slowdown_ratio']:.2f}x; {s['verdict']} |")
        end = r["figures_sampled"]
        name = ("none" if chosen is None else f"iteration {chosen}"
                + (f", {s['chosen_actions']}" if both else ""))
        out.append(f"| {lo} | {ref['slowdown']:.2f} / {ref['cv']:.3f} | {len(s['validation'])} "
                   f"| {name} | {mine} | "
                   f"{evaluation} | {end['cv']:.3f} / {end['slowdown']:.2f} (it "
                   f"{r['iterations']}) |{target}")
    out.append("")
    if any(s["chosen"] is None for s in selections.values()):
        out += ["Where none is chosen (no checkpoint within the limit on validation), FEN's "
                "rows are its last checkpoint.", ""]
    return out


def markdown_report(figures: Mapping[str, Mapping[str, Mapping[str, float]]],
                    runs: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    """The report: the command, budgets, tables per load, and the targets."""
    loads = sorted({lo for by_load in figures.values() for lo in by_load}, key=float)
    fen = {k: default for k, (default, _, _) in FEN_SETTINGS.items()}
    setup: LearnerSetup = meta["setup"]
    fen.update(setup.fen_options)
    a2c_overrides, ppo_overrides = setup.overrides("a2c"), setup.overrides("ppo")
    validation = meta.get("validation") or {}
    # with --fen-select-actions both, FEN's row acts as its chosen candidate does
    sampled_rows = ("`a2c`, `ppo`" if validation.get("actions", "sampled") == "both"
                    else "`a2c`, `ppo`, `fen`")
    fen_chosen = ("" if not validation else
                  "; its rows are the checkpoints chosen on validation episodes (below)"
                  if validation.get("actions", "sampled") == "sampled" else
                  "; its rows are the checkpoints chosen on validation episodes, with how they "
                  "act (sampled or greedy: its row `fen` acts as chosen; below)")
    out = [
        "# Multi-tenant cluster resource allocation: schedulers and learners versus load",
        "",
        f"Command (wall time {meta['wall_s']:.0f} s for this invocation; cached learner runs "
        "are reused, their training times are listed below):",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"Environment `resource_allocation_v0` with {json.dumps(meta['env_kwargs'])} "
        "(defaults otherwise: 4 tenants, 2 resources of 20 units, 10 slots, backlog 60, "
        "DeepRM's job distribution; see the module docstring for the load definition). "
        f"Every scheduler runs the same {meta['episodes']} episodes (seeds "
        f"{meta['eval_seed']}..{meta['eval_seed'] + meta['episodes'] - 1}); figures are means "
        "over them. `slowdown` = average job slowdown over every job that spent a step in the "
        "system (unfinished jobs with their slowdown so far, a lower bound; DeepRM's "
        "completed-only average is `slowdown (done)`), `cv` = CV of the tenants' shares of "
        "cluster resource-time, `utilization` = cluster utilisation, `left` = jobs unfinished "
        "at the end, `refused` = requests refused because the job no longer fit when they "
        "were handled, `spread` = time-averaged max - min of the tenants' dominant shares. "
        "Where every scheduler starts jobs as they arrive (low load), all show the same CV: "
        "it then only reflects the tenants' random arrivals.",
        *([] if not drain_steps(meta["env_kwargs"]) else [
            "", f"**Drained episodes**: jobs arrive for {meta['env_kwargs']['arrival_cycles']} "
            f"steps, then the episode runs {drain_steps(meta['env_kwargs'])} more steps in "
            "which the schedulers empty their queues; every job counts with its full "
            "slowdown, and the learners were trained on the same episodes (their return is "
            "minus the total slowdown of all the jobs). Utilisation and CV cover the drain "
            "steps too."]),
        "",
        "Schedulers: `fifo`, `sjf`, `packer` and `tetris` decide per tenant from its own "
        "queue, so their simultaneous requests collide and some are refused; `drf` and "
        "`central_sjf` plan every tenant's request together (progressive filling), so none "
        "is. `central_sjf` (a cluster-wide Shortest Job First) is not one of the issue's "
        "baselines: it is a reference for what coordinating the tenants is worth, and the "
        "targets below compare the learners with the best of the other five.",
        "",
        "Learners: one policy shared by the tenants, trained per load "
        f"{'(A2C/PPO warm-started, below)' if setup.warm_start else 'from scratch'} "
        f"with seed {meta['seed']}, evaluated with actions sampled from the trained stochastic "
        f"policy (rows {sampled_rows}, as DeepRM evaluates) and greedily (argmax; rows "
        "`<learner>_greedy`, which can get stuck repeating a request that is refused or "
        "names an empty slot). A2C/PPO: `build_config(..., "
        f"sampler='vector')`, A2C {meta.get('a2c_iterations') or meta['iterations']} "
        "iterations with overrides "
        f"{json.dumps(a2c_overrides)}"
        f", PPO {meta['iterations']} iterations with overrides "
        f"{json.dumps(ppo_overrides)} "
        "(batch sizes in agent steps). FEN: `build_fen_config(env, 'fen', policy_mode="
        f"'shared')` with its defaults, controller period T = {fen['period']}, "
        f"efficiency window `{fen['efficiency']}` "
        f"(`episode` is the paper's rhat), segment end `{fen['segment_end']}` (`terminate` "
        "as in the authors' code), "
        f"{meta['fen_iterations']} iterations of 4000 env steps"
        f"{fen_chosen}"
        ". Learners train on rewards "
        f"scaled by {setup.reward_scale:g} "
        "(env kwarg `reward_scale`; at scale 1 the high-load returns are in the thousands and "
        "PPO's value function explained none of their variance).",
        "",
    ]
    if setup.model != "mlp":
        out += [
            f"A2C, PPO and FEN's sub-policies use the `{setup.model}` policy network "
            "(`policies/slot_scoring.py`: one MLP scores every visible job from its features "
            "and a context of the cluster occupancy, own allocation and backlog; the wait "
            "logit comes from the context; the value function is an MLP over the whole "
            "observation).",
            "",
        ]
    if setup.team_reward:
        out += [
            "Team reward (`--team-reward`): A2C and PPO train on the env's `team_reward` "
            "(every tenant receives the mean of all tenants' slowdown terms, so the shared "
            "policy is rewarded for the cluster's average slowdown, what the table measures, "
            "not for its own tenant's alone); FEN keeps each tenant's own reward.",
            "",
        ]
    if setup.baseline != "critic":
        out += [
            f"A2C's and PPO's baseline (`--baseline {setup.baseline}`): DeepRM's "
            "time-dependent baseline instead of the critic (`policies/same_seed_baseline.py`). "
            "The env copies of the sampler replay the same seed, so the same job arrivals, "
            "under independently sampled actions; every iteration samples one whole episode "
            f"per copy ({ENVS_PER_RUNNER} copies x {meta['n_agents']} tenants x "
            f"{meta['env_kwargs']['max_cycles']} steps = "
            f"{ENVS_PER_RUNNER * meta['n_agents'] * meta['env_kwargs']['max_cycles']} agent "
            "steps); the advantage of a tenant's step t is its return from t minus the mean "
            "return from t of the same tenant in the other copies (standardised), with "
            "gamma 1 (the return is then minus the episode's total slowdown) and no critic "
            "loss.",
            "",
        ]
    from policies.warm_start import demonstration_seed

    def accuracy(learners: Sequence[str]) -> str:
        return ", ".join(
            f"{r['learner']} load {r['load']}: "
            + "/".join(f"{f['accuracy']:.3f}" for f in r["warm_start"]["figures"].values())
            for r in runs if "warm_start" in r and r["learner"] in learners
        ) or "no run of this invocation"

    if setup.warm_start:
        out += [
            f"Warm start (`--warm-start {setup.warm_start}`): A2C and PPO do not start from "
            f"scratch; before RL, their policy is fitted by supervised learning to "
            f"{setup.warm_start}'s decisions in {setup.warm_start_episodes} episodes (seeds "
            "from "
            f"{demonstration_seed(meta['seed'])}, none of them an evaluation episode) and their "
            "value function to those episodes' discounted returns (`policies/warm_start.py`; "
            "DeepRM pretrains its policy on a heuristic the same way). Fraction of the "
            f"demonstrations where the pretrained policy's greedy action is the teacher's: "
            f"{accuracy(('a2c', 'ppo'))}.",
            "",
        ]
    if setup.fen_warm_start:
        out += [
            f"FEN's warm start (`--fen-warm-start {setup.fen_warm_start}`): before RL, FEN's "
            "sub-policy 0 (the one trained on the environment reward) is fitted to "
            f"{setup.fen_warm_start}'s decisions in {setup.warm_start_episodes} episodes of "
            "FEN's own env, every controller choosing sub-policy 0 (seeds from "
            f"{demonstration_seed(meta['seed'])}); "
            + (f"the controllers start choosing sub-policy 0 with probability "
               f"{fen['controller_sub0_prob']:g}, the others evenly "
               f"(`--fen-controller-sub0-prob`, `policies/fen/controller_prior.py`), "
               "the other sub-policies start untrained"
               if fen["controller_sub0_prob"] is not None else
               "the controllers and the other sub-policies start untrained")
            + ". Imitation accuracy: "
            f"{accuracy(('fen',))}.",
            "",
        ]
    if setup.action_mask:
        out += [
            "The learners observe the env's action mask (`action_mask=True`: wait and the "
            "visible jobs that fit the free units now; `policies/action_masking.py` sets the "
            "other actions' logits to the float minimum; for FEN in its sub-policies, its "
            "controllers choose sub-policies unmasked), so they never choose an empty slot "
            "or a job that cannot start; a request can still be refused when another "
            "tenant's request is handled first.",
            "",
        ]
    for load in loads:
        out += [f"## Load {load}", "",
                "| scheduler | slowdown | slowdown (done) | CV | utilization | done | left "
                "| refused | spread |",
                "|---|---|---|---|---|---|---|---|---|"]
        for s, by_load in figures.items():
            if load in by_load:
                f = by_load[load]
                out.append(
                    f"| {s} | {f['slowdown']:.2f} | {f['slowdown_completed']:.2f} | "
                    f"{f['cv']:.3f} | {f['utilization']:.3f} | {f['completed_jobs']:.1f} | "
                    f"{f['unfinished_jobs']:.1f} | {f['refused_requests']:.1f} | "
                    f"{f['dominant_share_spread']:.3f} |")
        out.append("")
    out += ["## Targets", "",
            *target_lines(figures, fen_selected=meta.get("validation") is not None,
                          fen_evidence=meta.get("fen_evidence"),
                          evidence_episodes=(meta.get("validation") or {}).get(
                              "eval_episodes")), ""]
    if meta.get("selections"):
        out += selection_section(meta["selections"], runs, meta)
    if runs:
        total = sum(r["train_wall_s"] for r in runs)
        out += ["## Learner runs", "",
                f"Training took {total:.0f} s in all (2 CPU cores shared with other runs). Sampled "
                "steps: agent steps for A2C/PPO (vector sampler), env steps for FEN (each is "
                f"{meta['n_agents']} agent steps).", "",
                "| learner | load | iterations | sampled steps | training s |",
                "|---|---|---|---|---|"]
        out += [f"| {r['learner']} | {r['load']} | {r['iterations']} | {r['env_steps']} | "
                f"{r['train_wall_s']:.0f} |" for r in runs]
        out.append("")
    out += ["## Every cached learner run", "",
            "Average slowdown (sampled actions, the same episodes) of every training setup "
            f"cached in `{meta['runs_dir']}/`, including those of earlier invocations with "
            "other flags (their commands: `results/resource_allocation_logs/COMMANDS.md`):", "",
            *variant_table(Path(meta["runs_dir"]), meta["episodes"], meta["eval_seed"],
                           figures), ""]
    tradeoff = fen_tradeoff_table(Path(meta["runs_dir"]), meta["episodes"], meta["eval_seed"],
                                  figures)
    if tradeoff:
        out += ["## FEN's fairness and efficiency, every cached setup", "",
                "CV of the tenants' shares (its paired difference to DRF's, ± standard error) "
                "/ average slowdown, sampled actions, the same episodes, of the last "
                "checkpoint of every FEN setup "
                "cached since FEN's evaluation episodes are the schedulers' (commit 29f26c0), "
                "next to DRF's. The target asks for a lower CV than DRF's at a slowdown "
                "within 10% of DRF's (or lower).", "",
                *tradeoff, ""]
    out += [f"Plot: `{meta['plot']}`. JSON: `{meta['json']}`. Per-run JSONs: "
            f"`{meta['runs_dir']}/`.", ""]
    return "\n".join(out)


def plot(figures: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path) -> None:
    """Slowdown and CV versus load, one line per scheduler/learner (sampled actions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for s, by_load in figures.items():
        if s.endswith("_greedy"):
            continue
        loads = sorted(by_load, key=float)
        x = [float(lo) for lo in loads]
        style = "-o" if s in SCHEDULERS else "--s"
        axes[0].plot(x, [by_load[lo]["slowdown"] for lo in loads], style, label=s)
        axes[1].plot(x, [by_load[lo]["cv"] for lo in loads], style, label=s)
    axes[0].set(xlabel="load", ylabel="average slowdown", yscale="log",
                title="average job slowdown")
    axes[1].set(xlabel="load", ylabel="CV of tenant shares", title="fairness (lower is fairer)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Compare schedulers and learners on "
                                "resource_allocation versus load.")
    p.add_argument("--loads", default="0.3,0.7,1.1,1.5", help="comma-separated loads")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per load")
    p.add_argument("--eval-seed", type=int, default=10_000, help="seed of the first episode")
    p.add_argument("--learners", default=",".join(LEARNERS),
                   help=f"comma-separated subset of {list(LEARNERS)}, or 'none'")
    p.add_argument("--iterations", type=int, default=40, help="A2C/PPO training iterations")
    p.add_argument("--fen-iterations", type=int, default=15, help="FEN training iterations")
    p.add_argument("--a2c-iterations", type=int, default=None,
                   help="A2C training iterations (default: --iterations)")
    p.add_argument("--a2c-batch", type=int, default=None,
                   help=f"A2C's batch in agent steps (default "
                        f"{A2C_OVERRIDES['train_batch_size_per_learner']}); A2C takes one "
                        "gradient step per batch")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--reward-scale", type=float, default=0.02,
                   help="scale of the rewards the learners train on (the slowdown terms sum "
                        "to returns in the thousands at high load, which a value head "
                        "cannot fit; 0.02 brings them to tens)")
    p.add_argument("--action-mask", action="store_true",
                   help="learners observe the env's action mask (wait and the jobs that fit "
                        "now) and never choose anything else (FEN: its sub-policies)")
    p.add_argument("--model", default="mlp",
                   help="policy network of A2C/PPO and FEN's sub-policies: mlp (RLlib's "
                        "default) or slot_scoring (one network scores every job slot, "
                        "policies/slot_scoring.py)")
    p.add_argument("--fen-efficiency", default="episode",
                   help="FEN's rhat efficiency window: episode (the paper's) or period "
                        "(the controller period just ended; policies/fen/reward.py)")
    p.add_argument("--fen-segment-end", default="terminate",
                   help="how FEN's sub-policy segments end with their period: terminate (the "
                        "authors' code) or truncate (bootstrapped; policies/fen/envs.py)")
    p.add_argument("--fen-period", type=int, default=None,
                   help=f"FEN's controller period T in steps (default "
                        f"{CONTROLLER_PERIOD[ENV]}): the controller picks a sub-policy every T "
                        "steps")
    p.add_argument("--fen-feature-scale", type=float, default=None,
                   help="multiply (u_i - ubar)/ubar in FEN's controller observation (default "
                        "1; near-equal tenants differ by a few percent, which a fresh "
                        "controller hardly sees)")
    p.add_argument("--fen-controller-sub0-prob", type=float, default=None, metavar="P",
                   help="FEN's controllers start choosing sub-policy 0 with probability P in "
                        "(0, 1), the others evenly (default: RLlib's initialisation, about "
                        "uniform); with --fen-warm-start, the warm-started sub-policy is "
                        "used from the start (policies/fen/controller_prior.py)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="freshly trained learners also keep a checkpoint every N iterations "
                        "(under --train-dir; default 0: the last one only)")
    p.add_argument("--fen-select-on-validation", action="store_true",
                   help="FEN's rows are the checkpoint chosen on validation episodes, not the "
                        "last one: the fairest of those within 1.1 times DRF's slowdown "
                        "(policies/checkpoint_selection.py; needs --checkpoint-every; the "
                        "choice is kept in the run's JSON)")
    p.add_argument("--validation-seed", type=int, default=None,
                   help=f"seed of the first validation episode of --fen-select-on-validation "
                        f"(default {VALIDATION_SEED})")
    p.add_argument("--validation-episodes", type=int, default=None,
                   help=f"validation episodes of --fen-select-on-validation (default "
                        f"{VALIDATION_EPISODES})")
    p.add_argument("--fen-select-actions", default=None,
                   help="how FEN's checkpoints act on the validation episodes of "
                        "--fen-select-on-validation: sampled (default) or both (each checkpoint "
                        "sampled and greedy, two candidates; FEN's rows then act as chosen)")
    p.add_argument("--fen-target-episodes", type=int, default=None, metavar="N",
                   help="with --fen-select-on-validation: FEN's chosen checkpoint and DRF also "
                        "run N evaluation episodes from the first one, and FEN's target is "
                        "judged on them (default: the tables' --episodes); the tables' rows "
                        "stay on --episodes")
    p.add_argument("--warm-start", default=None, metavar="SCHEDULER",
                   help=f"A2C/PPO start from a policy pretrained on this scheduler's "
                        f"decisions (one of {list(SCHEDULERS)}; policies/warm_start.py)")
    p.add_argument("--fen-warm-start", default=None, metavar="SCHEDULER",
                   help="FEN's sub-policy 0 (trained on the environment reward) starts from a "
                        "policy pretrained on this scheduler's decisions (policies/warm_start.py)")
    p.add_argument("--warm-start-episodes", type=int, default=DEMO_EPISODES,
                   help="demonstration episodes of --warm-start and --fen-warm-start")
    p.add_argument("--team-reward", action="store_true",
                   help="A2C/PPO train on the env's team_reward (every tenant gets the mean of "
                        "the tenants' rewards, the cluster's slowdown; FEN keeps its own)")
    p.add_argument("--baseline", default="critic",
                   help="A2C's and PPO's advantage baseline: critic (GAE with the value "
                        "function) or "
                        "same_seed_mean (DeepRM's: the env copies replay the same arrivals and "
                        "each step's baseline is the other copies' mean return; "
                        "policies/same_seed_baseline.py)")
    p.add_argument("--entropy-coeff", type=float, default=None,
                   help="A2C's and PPO's entropy bonus weight (default 0.01)")
    p.add_argument("--max-cycles", type=int, default=200,
                   help="episode length (with --drain-cycles: the steps with arrivals)")
    p.add_argument("--drain-cycles", type=int, default=0,
                   help="train and evaluate on drained episodes: after --max-cycles steps "
                        "jobs stop arriving and the episode runs this many more steps, so "
                        "every job counts with its full slowdown (DeepRM's objective; "
                        "default 0: undrained). Use its own --runs-dir and report paths")
    p.add_argument("--json", default="results/resource_allocation.json", metavar="FILE")
    p.add_argument("--md", default="results/resource_allocation.md", metavar="FILE")
    p.add_argument("--plot", default="results/resource_allocation.png", metavar="FILE")
    p.add_argument("--runs-dir", default="results/resource_allocation_runs",
                   help="per-run JSON cache of the learners")
    p.add_argument("--train-dir", default="runs/resource_allocation",
                   help="checkpoints and TensorBoard files of the learners")
    return p.parse_args(argv)


def fen_validation(args: argparse.Namespace, learners: Sequence[str]
                   ) -> dict[str, Any] | None:
    """``{"validation_seed", "episodes", "actions"}`` of ``--fen-select-on-validation``
    (the keyword arguments of :func:`policies.checkpoint_selection.cached_selection`), None without
    it; ValueError for its flags without it, without FEN or ``--checkpoint-every``, too few
    episodes, or validation episodes that overlap the evaluation episodes or the
    warm-start demonstrations."""
    if not args.fen_select_on_validation:
        for flag, value in (("--validation-seed", args.validation_seed),
                            ("--validation-episodes", args.validation_episodes),
                            ("--fen-select-actions", args.fen_select_actions),
                            ("--fen-target-episodes", args.fen_target_episodes)):
            if value is not None:
                raise ValueError(f"{flag} applies with --fen-select-on-validation only")
        return None
    if "fen" not in learners:
        raise ValueError(f"--fen-select-on-validation applies to learner 'fen', which "
                         f"--learners {args.learners!r} does not train")
    if args.checkpoint_every < 1:
        raise ValueError("--fen-select-on-validation chooses among the checkpoints of "
                         "--checkpoint-every N; give N >= 1")
    validation = {"validation_seed": VALIDATION_SEED if args.validation_seed is None
                  else args.validation_seed,
                  "episodes": VALIDATION_EPISODES if args.validation_episodes is None
                  else args.validation_episodes,
                  "actions": args.fen_select_actions or "sampled",
                  "eval_episodes": args.fen_target_episodes}
    if validation["episodes"] < 2:
        raise ValueError(f"--validation-episodes must be >= 2, got {args.validation_episodes}")
    if args.fen_target_episodes is not None and args.fen_target_episodes < 2:
        raise ValueError(f"--fen-target-episodes must be >= 2 (a paired SE needs two), got "
                         f"{args.fen_target_episodes}")
    from policies.checkpoint_selection import ACTIONS, check_validation_seeds
    from policies.cli import check_choice

    check_choice("--fen-select-actions", validation["actions"], ACTIONS)
    check_validation_seeds({"name": "this comparison", "seed": args.seed,
                            "eval_seed": args.eval_seed, "episodes": args.episodes,
                            "warm_start": {"episodes": args.warm_start_episodes}},
                           validation["validation_seed"], validation["episodes"],
                           args.fen_target_episodes)
    return validation


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The whole comparison; writes the JSON, markdown and plot; returns the JSON table."""
    start = time.perf_counter()
    loads = parse_loads(args.loads)
    learners = [] if args.learners == "none" else args.learners.split(",")
    for learner in learners:
        if learner not in LEARNERS:
            raise ValueError(f"unknown learner {learner!r}; allowed: {list(LEARNERS)} or 'none'")
    from policies.cli import MODELS, check_choice

    check_choice("model", args.model, MODELS)
    from policies.fen.envs import SEGMENT_ENDS
    from policies.fen.reward import EFFICIENCY_WINDOWS

    check_choice("--fen-efficiency", args.fen_efficiency, EFFICIENCY_WINDOWS)
    check_choice("--fen-segment-end", args.fen_segment_end, SEGMENT_ENDS)
    from policies.same_seed_baseline import BASELINES

    check_choice("--baseline", args.baseline, BASELINES)
    if args.fen_period is not None and args.fen_period < 1:
        raise ValueError(f"--fen-period must be >= 1, got {args.fen_period}")
    if args.fen_feature_scale is not None and not args.fen_feature_scale > 0:
        raise ValueError(f"--fen-feature-scale must be > 0, got {args.fen_feature_scale}")
    sub0_prob = args.fen_controller_sub0_prob
    if sub0_prob is not None and not 0 < sub0_prob < 1:
        raise ValueError(f"--fen-controller-sub0-prob must be in (0, 1), got {sub0_prob}")
    if args.checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    fen_options = {k: v for k, v in (("efficiency", args.fen_efficiency),
                                     ("segment_end", args.fen_segment_end),
                                     ("period", args.fen_period),
                                     ("feature_scale", args.fen_feature_scale),
                                     ("controller_sub0_prob", sub0_prob))
                   if v is not None and v != FEN_SETTINGS[k][0]}
    for flag, value in (("--episodes", args.episodes), ("--iterations", args.iterations),
                        ("--fen-iterations", args.fen_iterations),
                        ("--a2c-iterations", args.a2c_iterations),
                        ("--a2c-batch", args.a2c_batch),
                        ("--warm-start-episodes", args.warm_start_episodes),
                        ("--max-cycles", args.max_cycles)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    a2c_iterations = args.a2c_iterations or args.iterations
    for flag, value, learner in (("--a2c-batch", args.a2c_batch, "a2c"),
                                 ("--a2c-iterations", args.a2c_iterations, "a2c"),
                                 ("--fen-efficiency", "efficiency" in fen_options, "fen"),
                                 ("--fen-segment-end", "segment_end" in fen_options, "fen"),
                                 ("--fen-period", "period" in fen_options, "fen"),
                                 ("--fen-feature-scale", "feature_scale" in fen_options, "fen"),
                                 ("--fen-controller-sub0-prob",
                                  "controller_sub0_prob" in fen_options, "fen")):
        if value and learner not in learners:
            raise ValueError(f"{flag} applies to learner {learner!r}, which --learners "
                             f"{args.learners!r} does not train")
    validation = fen_validation(args, learners)
    if args.warm_start is not None:
        check_choice("--warm-start", args.warm_start, SCHEDULERS)
        if not {"a2c", "ppo"} & set(learners):
            raise ValueError(f"--warm-start applies to learners 'a2c' and 'ppo', which "
                             f"--learners {args.learners!r} does not train")
    if args.fen_warm_start is not None:
        check_choice("--fen-warm-start", args.fen_warm_start, SCHEDULERS)
        if "fen" not in learners:
            raise ValueError(f"--fen-warm-start applies to learner 'fen', which --learners "
                             f"{args.learners!r} does not train")
    if args.warm_start is not None or args.fen_warm_start is not None:
        check_demonstrations(args.seed, args.warm_start_episodes, args.eval_seed, args.episodes)
    elif args.warm_start_episodes != DEMO_EPISODES:
        raise ValueError("--warm-start-episodes needs --warm-start or --fen-warm-start")
    if args.entropy_coeff is not None and not args.entropy_coeff >= 0:
        raise ValueError(f"--entropy-coeff must be >= 0, got {args.entropy_coeff}")
    for flag, value in (("--team-reward", args.team_reward),
                        ("--baseline", args.baseline != "critic"),
                        ("--entropy-coeff", args.entropy_coeff is not None)):
        if value and not {"a2c", "ppo"} & set(learners):
            raise ValueError(f"{flag} applies to learners 'a2c' and 'ppo', which "
                             f"--learners {args.learners!r} does not train")
    if not args.reward_scale > 0:
        raise ValueError(f"--reward-scale must be > 0, got {args.reward_scale}")
    setup = LearnerSetup(
        reward_scale=args.reward_scale, action_mask=args.action_mask, model=args.model,
        fen_options=fen_options, a2c_batch=args.a2c_batch, warm_start=args.warm_start,
        warm_start_episodes=args.warm_start_episodes, team_reward=args.team_reward,
        entropy_coeff=args.entropy_coeff, baseline=args.baseline,
        fen_warm_start=args.fen_warm_start)
    if args.drain_cycles < 0:
        raise ValueError(f"--drain-cycles must be >= 0, got {args.drain_cycles}")
    env_kwargs: dict[str, Any] = {"max_cycles": args.max_cycles}
    if args.drain_cycles:
        env_kwargs = drained_env_kwargs(env_kwargs, args.drain_cycles)
    for load in loads:  # bad loads (too high for p <= 1) fail before any work
        marl_envs.make(ENV, load=load, **env_kwargs)
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name in SCHEDULERS:
        for load in loads:
            figures.setdefault(name, {})[load_key(load)] = evaluate_heuristic(
                name, {**env_kwargs, "load": load}, args.episodes, args.eval_seed)
        print(f"[{name}] " + ", ".join(
            f"load {lo}: slowdown {f['slowdown']:.2f} cv {f['cv']:.3f}"
            for lo, f in figures[name].items()), flush=True)
    runs: list[dict[str, Any]] = []
    selections: dict[str, dict[str, Any]] = {}
    fen_evidence: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    if learners:
        from policies.training import init_ray

        init_ray(None)
        for learner in learners:
            iterations = {"fen": args.fen_iterations, "a2c": a2c_iterations}.get(
                learner, args.iterations)
            for load in loads:
                result = learner_result(
                    learner, load, setup, env_kwargs=env_kwargs, iterations=iterations,
                    seed=args.seed, episodes=args.episodes, eval_seed=args.eval_seed,
                    runs_dir=Path(args.runs_dir), train_dir=Path(args.train_dir),
                    checkpoint_every=args.checkpoint_every)
                runs.append(result)
                sampled, greedy = result["figures_sampled"], result["figures"]
                if learner == "fen" and validation is not None:
                    from policies.checkpoint_selection import cached_selection

                    path = Path(args.runs_dir) / (cache_name(
                        learner, load, iterations, args.seed, setup, env_kwargs) + ".json")
                    chosen = cached_selection(path, **validation)
                    selections[load_key(load)] = chosen
                    if chosen["chosen"] is not None:
                        sampled = chosen.get("evaluation_rows", chosen["evaluation"])
                        greedy = chosen["evaluation_greedy"]
                        if validation["eval_episodes"] is not None:
                            fen_evidence[load_key(load)] = (chosen["evaluation"],
                                                            chosen["reference_evaluation"])
                figures.setdefault(learner, {})[load_key(load)] = sampled
                figures.setdefault(f"{learner}_greedy", {})[load_key(load)] = greedy
    table = json_table(figures)
    for path in (args.json, args.md, args.plot):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(table, indent=2) + "\n")
    plot(figures, Path(args.plot))
    meta = {"command": command, "wall_s": time.perf_counter() - start, "env_kwargs": env_kwargs,
            "episodes": args.episodes, "eval_seed": args.eval_seed, "seed": args.seed,
            "iterations": args.iterations, "fen_iterations": args.fen_iterations,
            "a2c_iterations": a2c_iterations, "setup": setup,
            "plot": args.plot, "json": args.json,
            "runs_dir": args.runs_dir, "validation": validation, "selections": selections,
            "fen_evidence": fen_evidence,
            "n_agents": marl_envs.make(ENV, **env_kwargs).n_agents}
    Path(args.md).write_text(markdown_report(figures, runs, meta))
    print("\n".join(target_lines(
        figures, fen_selected=validation is not None, fen_evidence=fen_evidence,
        evidence_episodes=(validation or {}).get("eval_episodes"))))
    print(f"wrote {args.json}, {args.md}, {args.plot}", flush=True)
    return table
