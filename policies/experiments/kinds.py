"""Trial kinds: what one trial of an experiment runs, and how its study is reported.

A kind is a :class:`TrialKind` in a module of this package, found by name in
:data:`KINDS` (imported only when an experiment names it):

* ``params``: the parameters a trial takes (:class:`policies.experiments.spec.Param`,
  defaults and checks), ``check_trial`` a check across them;
* ``run(params, context) -> summary``: runs one trial on a Ray worker and returns its
  summary (JSON-able; :mod:`policies.experiments.trial` says what it holds);
  iterative kinds report each iteration and checkpoint through ``context``;
* ``resources(params)``: the trial's placement-group bundles (the first one for the
  trial itself, one per remote env runner after it);
* ``anchors(experiment)``: reference rows of the report (the paper, random play);
  ``notes(experiment, summaries)``: text of the report beyond the table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: kind name -> "module:attribute" of its TrialKind
KINDS: dict[str, str] = {
    "rllib": "policies.experiments.rllib_trials:RLLIB",
    "fen": "policies.experiments.rllib_trials:FEN",
    "bandit": "policies.experiments.bandit_trials:BANDIT",
    "scheduler": "policies.experiments.scheduler_trials:SCHEDULER",
    "recommender": "policies.experiments.recommender_trials:RECOMMENDER",
}


class ExperimentError(ValueError):
    """A bad experiment file: the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class Param:
    """A trial parameter a kind accepts: its default and a check raising ValueError."""

    default: Any
    check: Callable[[Any], Any] | None = None
    help: str = ""


def int_at_least(low: int, none_means: str | None = None) -> Callable[[Any], None]:
    """A parameter check: an integer >= ``low`` (or None, when ``none_means`` says what
    None stands for)."""
    def check(value: Any) -> None:
        if value is None and none_means is not None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{value!r} is not an integer >= {low}"
                             + (f" (or null: {none_means})" if none_means else ""))
    return check


def mapping(value: Any) -> None:
    """A parameter check: a mapping."""
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a mapping")


def keyword_arguments_of(cls: Callable[..., Any]) -> Callable[[Any], None]:
    """A parameter check: a mapping of keyword arguments that ``cls`` accepts."""
    def check(value: Any) -> None:
        import inspect

        mapping(value)
        known = set(inspect.signature(cls).parameters) - {"self"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown env kwarg(s) {unknown} in {value!r}; allowed: "
                             f"{sorted(known)}")
    return check


def one_cpu(params: Mapping[str, Any]) -> list[dict[str, float]]:
    """One CPU for the trial's process."""
    return [{"CPU": 1.0}]


@dataclass(frozen=True)
class TrialKind:
    """What a trial of this kind takes, runs and reports."""

    name: str
    params: dict[str, Param]
    run: Callable[[dict[str, Any], Any], dict[str, Any]]
    resources: Callable[[Mapping[str, Any]], list[dict[str, float]]] = one_cpu
    #: trains for ``stop`` iterations, with checkpoints (and ``evaluation`` if ``evaluates``)
    iterative: bool = False
    evaluates: bool = False
    check_trial: Callable[[dict[str, Any]], None] | None = None
    #: the figures of a summary's ``metrics`` the report shows by default, in order, with
    #: how each is printed: ``pct`` (a share as %), or a format like ``.3f``
    metrics: dict[str, str] = field(default_factory=dict)
    anchors: Callable[[Any], list[dict[str, Any]]] | None = None
    notes: Callable[[Any, list[dict[str, Any]]], str] | None = None
    #: keys of the experiment file's ``report`` section
    report_keys: dict[str, str] = field(default_factory=lambda: dict(REPORT_KEYS))


#: ``report`` keys every kind understands
REPORT_KEYS: dict[str, str] = {
    "title": "the report's heading",
    "metrics": "figures of the trials' summaries shown as columns (default: the kind's)",
    "notes": "text placed under the table",
    "curves": "learning curves to plot (tags of the summaries' curves)",
}


def get_kind(name: Any) -> TrialKind:
    """The registered kind ``name``; an :class:`ExperimentError` naming the kinds if none."""
    if not isinstance(name, str) or name not in KINDS:
        raise ExperimentError(f"trial.kind: unknown kind {name!r}; allowed: {sorted(KINDS)}")
    module, attr = KINDS[name].split(":")
    return getattr(importlib.import_module(module), attr)
