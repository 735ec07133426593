"""Choosing FEN's training budget on validation episodes, not on the evaluation episodes.

FEN's target on ``resource_allocation`` is a lower CV of tenant shares than Dominant
Resource Fairness at comparable slowdown (at most ``slowdown_ratio`` times DRF's). Longer
training moves FEN along its fairness/efficiency trade-off, so the iteration count is a
choice, and making it by looking at the evaluation episodes would be selection on the
test set. Here the choice is made on *validation* episodes:

1. every checkpoint a cached comparison run kept (``compare_schedulers.py
   --checkpoint-every N``) and the reference scheduler run the same validation episodes
   (seeds ``validation_seed ..``, disjoint from the evaluation episodes and the warm-start
   demonstrations; the learners' actions sampled, as the comparison evaluates them, and
   with ``actions="both"`` greedily too: each checkpoint is then two candidates, the
   policy as trained and its argmax);
2. the chosen candidate is the one with the lowest validation CV among those whose
   validation slowdown is at most ``slowdown_ratio`` times the reference's; none when no
   candidate qualifies;
3. the chosen candidate is then evaluated once, acting as chosen, on the comparison's
   evaluation episodes (or more of them: ``eval_episodes`` from the same first seed),
   next to the reference on those episodes (paired over episodes).

``scripts/select_checkpoint.py`` writes a report of its own; ``compare_schedulers.py
--fen-select-on-validation`` reports the chosen checkpoints in the comparison itself
(:func:`cached_selection` keeps each choice in its run's JSON, so that the report can be
written again once the checkpoints are gone).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from policies.scheduler_comparison import (
    COMPARABLE_SLOWDOWN,
    CV_SIGNIFICANCE_SE,
    SCHEDULERS,
    VALIDATION_EPISODES,
    VALIDATION_SEED,
    cv_verdict,
    evaluate_heuristic,
    load_key,
    paired_difference,
    scheduler_env_kwargs,
    summarize,
)
from policies.warm_start import DEMO_EPISODES, demonstration_seed

CHECKPOINT_NAME = re.compile(r"iter_(\d+)")
#: how the candidates act on validation episodes (``actions``): the modes each checkpoint
#: is validated in
ACTIONS: dict[str, tuple[str, ...]] = {"sampled": ("sampled",), "both": ("sampled", "greedy")}
#: the reports' words for each ``actions``
ACTION_WORDS = {"sampled": "actions sampled",
                "both": "each checkpoint twice, its actions sampled and greedy (argmax), two "
                        "candidates"}


def read_run(path: str | Path) -> dict[str, Any]:
    """The cached comparison run at ``path`` with its checkpoints ``{iteration: path}``;
    ValueError naming a file that is not a cached run or whose checkpoints are missing."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a cached run (no such file)")
    run = json.loads(path.read_text())
    missing = [k for k in ("learner", "load", "seed", "checkpoint", "env_kwargs", "episodes",
                           "eval_seed") if k not in run]
    if missing:
        raise ValueError(f"{str(path)!r} is not a cached comparison run: it lacks {missing}")
    directory = Path(run["checkpoint"]).parent
    checkpoints = {int(m.group(1)): p for p in sorted(directory.glob("iter_*"))
                   if (m := CHECKPOINT_NAME.fullmatch(p.name))} if directory.is_dir() else {}
    if not checkpoints:
        raise ValueError(f"the checkpoints of {str(path)!r} ({directory}) are missing; train "
                         "the run again with compare_schedulers.py --checkpoint-every N")
    return {**run, "name": path.stem, "checkpoints": checkpoints}


def check_validation_seeds(run: Mapping[str, Any], validation_seed: int, episodes: int,
                           eval_episodes: int | None = None) -> None:
    """ValueError when the validation episodes overlap ``run``'s evaluation episodes (the
    first ``eval_episodes``, default the run's own count) or its warm-start
    demonstrations."""
    last = validation_seed + episodes - 1
    first_demo = demonstration_seed(run["seed"])
    demo_episodes = (run.get("warm_start") or {}).get("episodes", DEMO_EPISODES)
    n_eval = eval_episodes or run["episodes"]
    for what, first, n in (("evaluation episodes", run["eval_seed"], n_eval),
                           ("warm-start demonstrations", first_demo, demo_episodes)):
        if first <= last and validation_seed <= first + n - 1:
            raise ValueError(f"the validation episodes (seeds {validation_seed}..{last}) "
                             f"overlap {run['name']}'s {what} ({first}..{first + n - 1}); "
                             "choose another --validation-seed")


def choose(validation: Mapping[Any, Mapping[str, float]], reference: Mapping[str, float],
           slowdown_ratio: float) -> Any:
    """The candidate (an iteration, or any orderable key) with the lowest CV among those
    whose slowdown is at most ``slowdown_ratio`` times ``reference``'s (ties: the smaller
    key, the earlier iteration), or None."""
    limit = slowdown_ratio * reference["slowdown"]
    eligible = [it for it, f in validation.items() if f["slowdown"] <= limit]
    return min(eligible, key=lambda it: (validation[it]["cv"], it)) if eligible else None


def evaluate_learner(checkpoint: str | Path, seed: int, episodes: int, sample: bool = True
                     ) -> dict[str, Any]:
    """:func:`summarize` of ``checkpoint`` on ``episodes`` episodes from seed ``seed``
    (actions sampled, as the comparison evaluates its learners, or greedy)."""
    from policies.training import evaluate_checkpoint

    return summarize(evaluate_checkpoint(str(checkpoint), episodes=episodes, seed=seed,
                                         sample=sample)["per_episode"])


def check_actions(actions: str) -> tuple[str, ...]:
    """The modes of ``actions`` (a key of :data:`ACTIONS`); ValueError naming a bad one."""
    if actions not in ACTIONS:
        raise ValueError(f"unknown validation actions {actions!r}; allowed: {list(ACTIONS)}")
    return ACTIONS[actions]


def chosen_validation(selection: Mapping[str, Any]) -> Mapping[str, float]:
    """The validation figures of a selection's chosen candidate (it must have one)."""
    key = "validation_greedy" if selection.get("chosen_actions") == "greedy" else "validation"
    by_iteration, chosen = selection[key], selection["chosen"]
    # int keys as select() returns them, str keys once read back from JSON
    return by_iteration[chosen] if chosen in by_iteration else by_iteration[str(chosen)]


def select(run: Mapping[str, Any], *, reference: str, validation_seed: int, episodes: int,
           slowdown_ratio: float, eval_episodes: int | None = None,
           actions: str = "sampled") -> dict[str, Any]:
    """Validation figures of every checkpoint of ``run`` (acting as ``actions`` says:
    ``validation``, sampled, and ``validation_greedy``) and of ``reference``, the chosen
    iteration and how it acts (``chosen_actions``), and its evaluation so acting next to
    ``reference``'s on ``eval_episodes`` episodes from ``run``'s evaluation seed (default:
    the run's own; see the module docstring)."""
    modes = check_actions(actions)
    check_validation_seeds(run, validation_seed, episodes, eval_episodes)
    n_eval = eval_episodes or run["episodes"]
    kwargs = scheduler_env_kwargs(run)
    ref_validation = evaluate_heuristic(reference, kwargs, episodes, validation_seed)
    validation: dict[str, dict[int, dict[str, Any]]] = {mode: {} for mode in modes}
    for it, checkpoint in run["checkpoints"].items():
        for mode in modes:
            f = validation[mode][it] = evaluate_learner(checkpoint, validation_seed, episodes,
                                                        sample=mode == "sampled")
            print(f"[{run['name']}] iteration {it} ({mode}): validation slowdown "
                  f"{f['slowdown']:.2f} cv {f['cv']:.3f} ({reference}: "
                  f"{ref_validation['slowdown']:.2f} / {ref_validation['cv']:.3f})", flush=True)
    # a candidate is (iteration, mode): the earlier iteration wins a tie, then "greedy"
    best = choose({(it, mode): f for mode, by_it in validation.items()
                   for it, f in by_it.items()}, ref_validation, slowdown_ratio)
    chosen, chosen_actions = best if best is not None else (None, None)
    out: dict[str, Any] = {"run": run["name"], "load": run["load"], "reference": reference,
                           "reference_validation": ref_validation,
                           "validation": validation["sampled"], "actions": actions,
                           "chosen": chosen}
    if "greedy" in validation:
        out["validation_greedy"] = validation["greedy"]
    if chosen is not None:
        out["chosen_actions"] = chosen_actions
        evaluation = evaluate_learner(run["checkpoints"][chosen], run["eval_seed"], n_eval,
                                      sample=chosen_actions == "sampled")
        ref_eval = evaluate_heuristic(reference, kwargs, n_eval, run["eval_seed"])
        out.update(evaluation=evaluation, reference_evaluation=ref_eval,
                   eval_seeds=f"{run['eval_seed']}..{run['eval_seed'] + n_eval - 1}",
                   cv_difference=paired_difference(evaluation, ref_eval, "cv"),
                   slowdown_ratio=evaluation["slowdown"] / ref_eval["slowdown"],
                   verdict=cv_verdict(evaluation, ref_eval, slowdown_ratio))
        print(f"[{run['name']}] chose iteration {chosen} ({chosen_actions}): evaluation cv "
              f"{evaluation['cv']:.3f} slowdown {evaluation['slowdown']:.2f} ({reference}: "
              f"{ref_eval['cv']:.3f} / {ref_eval['slowdown']:.2f})", flush=True)
    return out


def selection_key(reference: str, validation_seed: int, episodes: int,
                  slowdown_ratio: float, actions: str = "sampled",
                  eval_episodes: int | None = None) -> str:
    """The key of a choice in a run's ``selections``: what the choice depends on."""
    return (f"{reference}_seed{validation_seed}_n{episodes}_ratio{slowdown_ratio:g}"
            + ("" if actions == "sampled" else f"_actions{actions}")
            + ("" if eval_episodes is None else f"_eval{eval_episodes}"))


def cached_selection(path: str | Path, *, reference: str = "drf",
                     validation_seed: int = VALIDATION_SEED,
                     episodes: int = VALIDATION_EPISODES,
                     slowdown_ratio: float = COMPARABLE_SLOWDOWN,
                     actions: str = "sampled",
                     eval_episodes: int | None = None) -> dict[str, Any]:
    """:func:`select` on the cached run at ``path``, its verdict made on ``eval_episodes``
    evaluation episodes (default: the run's own), with the chosen candidate's figures on
    the run's own evaluation episodes, as chosen (``evaluation_rows``, the comparison's
    table rows) and greedy (``evaluation_greedy``); computed once and kept in the run's
    JSON under ``selections`` (the checkpoints are needed the first time only)."""
    check_actions(actions)
    path = Path(path)
    result = json.loads(path.read_text())
    key = selection_key(reference, validation_seed, episodes, slowdown_ratio, actions,
                        eval_episodes)
    if key in result.get("selections", {}):
        print(f"[{path.stem}] cached choice on validation: {key}", flush=True)
        return result["selections"][key]
    run = read_run(path)
    chosen = select(run, reference=reference, validation_seed=validation_seed,
                    episodes=episodes, slowdown_ratio=slowdown_ratio, actions=actions,
                    eval_episodes=eval_episodes)
    if chosen["chosen"] is not None:
        checkpoint, greedy = run["checkpoints"][chosen["chosen"]], chosen[
            "chosen_actions"] == "greedy"
        own = eval_episodes in (None, run["episodes"])
        rows = chosen["evaluation_rows"] = chosen["evaluation"] if own else evaluate_learner(
            checkpoint, run["eval_seed"], run["episodes"], sample=not greedy)
        chosen["evaluation_greedy"] = rows if greedy else evaluate_learner(
            checkpoint, run["eval_seed"], run["episodes"], sample=False)
    result.setdefault("selections", {})[key] = json.loads(json.dumps(chosen, default=str))
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    return result["selections"][key]


def markdown_report(selections: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    """Per run: every checkpoint's validation figures, the choice and its evaluation."""
    ratio = meta["slowdown_ratio"]
    evaluated = ("the run's own evaluation episodes" if meta.get("eval_episodes") is None
                 else f"{meta['eval_episodes']} episodes from the run's first evaluation seed")
    out = ["# FEN's training budget chosen on validation episodes", "",
           f"Command: `{meta['command']}`", "",
           f"Every kept checkpoint of each run and {meta['reference']} run the same "
           f"{meta['episodes']} validation episodes (seeds {meta['validation_seed']}.."
           f"{meta['validation_seed'] + meta['episodes'] - 1}, disjoint from the evaluation "
           f"episodes and the warm-start demonstrations; {ACTION_WORDS[meta['actions']]}). "
           "The chosen candidate has the lowest validation CV among those with a validation "
           f"slowdown at most {ratio:g} times {meta['reference']}'s; it alone is then "
           f"evaluated, acting as chosen, next to {meta['reference']}, on {evaluated} (each "
           "section gives their seeds; policies/checkpoint_selection.py).", ""]
    for s in selections:
        ref = s["reference_validation"]
        out += [f"## `{s['run']}` (load {load_key(s['load'])})", "",
                f"Validation: {s['reference']} slowdown {ref['slowdown']:.2f}, CV "
                f"{ref['cv']:.3f}; the slowdown limit is {ratio * ref['slowdown']:.2f}.", "",
                "| iteration | actions | slowdown | CV | utilisation | unfinished jobs |",
                "|---|---|---|---|---|---|"]
        for mode in check_actions(s.get("actions", "sampled")):
            by_iteration = s["validation_greedy" if mode == "greedy" else "validation"]
            for it, f in by_iteration.items():
                mark = " (chosen)" if (str(it) == str(s["chosen"])
                                       and s.get("chosen_actions", "sampled") == mode) else ""
                out.append(f"| {it}{mark} | {mode} | {f['slowdown']:.2f} | {f['cv']:.3f} "
                           f"| {f['utilization']:.3f} | {f['unfinished_jobs']:.1f} |")
        out.append("")
        if s["chosen"] is None:
            out += ["No checkpoint is within the slowdown limit on validation: none chosen.",
                    ""]
            continue
        e, r, d = s["evaluation"], s["reference_evaluation"], s["cv_difference"]
        out += [f"Evaluation episodes (seeds {s['eval_seeds']}): iteration "
                f"{s['chosen']} ({s.get('chosen_actions', 'sampled')}) CV {e['cv']:.3f} "
                f"against {s['reference']}'s {r['cv']:.3f} "
                f"(difference {d[0]:+.3f} ± {d[1]:.3f}, paired SE), slowdown "
                f"{e['slowdown']:.2f} against {r['slowdown']:.2f} ({s['slowdown_ratio']:.2f} "
                f"times). Target (a CV lower by more than {CV_SIGNIFICANCE_SE:g} paired SEs at "
                f"at most {ratio:g} times the slowdown): **{s['verdict']}**.", ""]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Choose the checkpoint of cached "
                                "compare_schedulers.py runs on validation episodes.")
    p.add_argument("runs", nargs="+", help="cached run JSONs of compare_schedulers.py, trained "
                   "with --checkpoint-every")
    p.add_argument("--reference", default="drf",
                   help=f"the scheduler to compare with (one of {list(SCHEDULERS)})")
    p.add_argument("--slowdown-ratio", type=float, default=COMPARABLE_SLOWDOWN,
                   help="the most slowdown a chosen checkpoint may have, as a multiple of the "
                        f"reference's (default {COMPARABLE_SLOWDOWN:g})")
    p.add_argument("--validation-seed", type=int, default=VALIDATION_SEED,
                   help="seed of the first validation episode")
    p.add_argument("--episodes", type=int, default=VALIDATION_EPISODES,
                   help="validation episodes")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="evaluation episodes of the chosen checkpoint, from the run's first "
                        "evaluation seed (default: the run's own count, the comparison's "
                        "episodes); more of them narrow the paired SE")
    p.add_argument("--actions", default="sampled",
                   help=f"how the candidates act on validation: {list(ACTIONS)} (both: each "
                        "checkpoint sampled and greedy, two candidates)")
    p.add_argument("--md", default="results/resource_allocation_fen_selection.md",
                   metavar="FILE")
    p.add_argument("--json", default="results/resource_allocation_fen_selection.json",
                   metavar="FILE")
    return p.parse_args(argv)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Select, write the markdown and JSON reports; return the JSON."""
    from policies.cli import check_choice

    check_choice("--reference", args.reference, SCHEDULERS)
    check_choice("--actions", args.actions, ACTIONS)
    if not args.slowdown_ratio > 0:
        raise ValueError(f"--slowdown-ratio must be > 0, got {args.slowdown_ratio}")
    for flag, value in (("--episodes", args.episodes), ("--eval-episodes", args.eval_episodes)):
        if value is not None and value < 2:
            raise ValueError(f"{flag} must be >= 2 (a paired SE needs two), got {value}")
    runs = [read_run(path) for path in args.runs]
    for r in runs:  # every run's seeds are checked before any evaluation
        check_validation_seeds(r, args.validation_seed, args.episodes, args.eval_episodes)
    selections = [select(r, reference=args.reference, validation_seed=args.validation_seed,
                         episodes=args.episodes, slowdown_ratio=args.slowdown_ratio,
                         eval_episodes=args.eval_episodes, actions=args.actions)
                  for r in runs]
    meta = {"command": command, "reference": args.reference, "episodes": args.episodes,
            "actions": args.actions,
            "validation_seed": args.validation_seed, "slowdown_ratio": args.slowdown_ratio,
            "eval_episodes": args.eval_episodes}
    for path in (args.md, args.json):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text(markdown_report(selections, meta) + "\n")
    report = {**meta, "selections": selections}
    Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.md}, {args.json}", flush=True)
    return report
