"""An experiment file: what a study runs, as data (YAML or TOML), checked before Ray starts.

    name: fen_job_scheduling          # the study; its folder is results/<name>/
    description: FEN's Job Scheduling table against the paper
    trial:
      kind: fen                       # policies.experiments.kinds.KINDS
      params: {env: job_scheduling, variant: fen, sampler: vector}
    search:                           # a grid: every combination is one trial
      variant: [fen, independent]
      seed: [0, 1, 2, 3, 4]
      overrides.lr: [0.0001, 0.0003]  # a dotted key reaches into a mapping parameter
    stop: {iterations: 30}            # or {env_steps: 120000}; iterative kinds only
    checkpoint: {every: 10, keep: 2, score: validation/utilization, mode: max}
    evaluation: {episodes: 10, seed: 10000}
    report: {title: ..., metrics: [utilization, cv, min_utility]}

Every mistake is an :class:`ExperimentError` naming the key (``search.seed[2]``), the value
and what is allowed; the kind checks its own parameters for every trial of the grid.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.experiments.kinds import ExperimentError, get_kind
from policies.experiments.kinds import Param as Param  # kinds declare params with it

#: top-level keys of an experiment file, and whether each is required
TOP_KEYS: dict[str, bool] = {
    "name": True, "description": False, "trial": True, "search": False, "stop": False,
    "checkpoint": False, "evaluation": False, "report": False,
}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")
#: the parameter every trial has (its run seed), 0 unless set or searched
SEED = "seed"


@dataclass(frozen=True)
class Stop:
    """When an iterative trial stops: after ``iterations`` or ``env_steps`` (one of them)."""

    iterations: int | None = None
    env_steps: int | None = None

    def reached(self, iteration: int, env_steps: int) -> bool:
        if self.iterations is not None:
            return iteration >= self.iterations
        return env_steps >= (self.env_steps or 0)


@dataclass(frozen=True)
class CheckpointPolicy:
    """Every ``every`` iterations (and after the last) a checkpoint; Tune keeps the
    ``keep`` best by ``score`` (``mode`` max or min), or the ``keep`` latest without one."""

    every: int = 10
    keep: int = 2
    score: str | None = None
    mode: str = "max"


@dataclass(frozen=True)
class Evaluation:
    """At every checkpoint, ``episodes`` episodes on validation seeds ``seed, seed + 1, ...``
    and as many on test seeds ``test_seed, ...``; the trial reports the test figures of the
    checkpoint whose validation figure ``select`` was best. 0 episodes: the training
    episodes' figures at the end (RLlib's window of the last 20 episodes)."""

    episodes: int = 0
    seed: int = 10_000
    test_seed: int = 20_000
    select: str = "utilization"
    mode: str = "max"


@dataclass(frozen=True)
class Trial:
    """One point of the grid: its name (the searched values) and all its parameters."""

    name: str
    params: dict[str, Any]
    point: dict[str, Any]


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file."""

    name: str
    kind: str
    params: dict[str, Any]
    search: dict[str, list[Any]]
    stop: Stop
    checkpoint: CheckpointPolicy
    evaluation: Evaluation
    report: dict[str, Any]
    description: str = ""
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def trials(self) -> list[Trial]:
        """The grid, in file order (the last search key varies fastest)."""
        keys = list(self.search)
        out = []
        for values in itertools.product(*(self.search[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            params = json.loads(json.dumps(self.params))  # a deep copy
            for key, value in point.items():
                _set_dotted(params, key, value)
            out.append(Trial(trial_name(point), params, point))
        return out


def value_text(value: Any) -> str:
    """A searched value as trial names and ``--only`` write it (JSON, strings bare)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def trial_name(point: Mapping[str, Any]) -> str:
    """``variant=fen,seed=0``; ``default`` for an experiment without a search."""
    if not point:
        return "default"
    return ",".join(f"{key}={value_text(value)}" for key, value in point.items())


def trial_file_name(name: str) -> str:
    """A trial's summary file name: its name with anything but ``[A-Za-z0-9_.=,-]`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9_.=,-]", "_", name) + ".json"


def _set_dotted(params: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = params
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ExperimentError(f"search.{key}: {p!r} is not a mapping parameter")
    node[last] = value


def _fail(key: str, value: Any, allowed: str) -> ExperimentError:
    return ExperimentError(f"{key}: {value!r} is not allowed; allowed: {allowed}")


def _int(key: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _fail(key, value, f"an integer >= {low}")
    return value


def _mapping(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(key, value, "a mapping (key: value)")
    return dict(value)


def _no_unknown(section: str, given: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ExperimentError(f"{section}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def read_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a ``.yaml``/``.yml``/``.toml`` file (syntax errors with the line)."""
    from policies.cli import read_mapping_file

    try:
        return read_mapping_file(path)
    except ValueError as e:
        raise ExperimentError(str(e) if Path(path).is_file()
                              else f"no experiment file at {str(path)!r}") from None


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file (:func:`parse_experiment`)."""
    return parse_experiment(read_file(path), path=Path(path))


def parse_experiment(data: Mapping[str, Any], path: Path | None = None) -> Experiment:
    """Validate an experiment's mapping: every section, then every trial's parameters
    through its kind (:func:`policies.experiments.kinds.get_kind`)."""
    where = f"{path}: " if path is not None else ""
    try:
        return _parse(data, path)
    except ExperimentError as e:
        raise ExperimentError(where + str(e)) from None


def _parse(data: Mapping[str, Any], path: Path | None) -> Experiment:
    _no_unknown("experiment", data, TOP_KEYS)
    for key, required in TOP_KEYS.items():
        if required and key not in data:
            raise ExperimentError(f"missing key {key!r} (required: "
                                  f"{[k for k, r in TOP_KEYS.items() if r]})")
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise _fail("name", name, "lower-case letters, digits and _ (the results folder)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail("description", description, "a string")

    trial = _mapping("trial", data["trial"])
    _no_unknown("trial", trial, {"kind": 1, "params": 1})
    if "kind" not in trial:
        raise ExperimentError("trial.kind is missing")
    kind = get_kind(trial["kind"])  # an ExperimentError naming the kinds
    params = _mapping("trial.params", trial.get("params"))
    _no_unknown("trial.params", params, kind.params)
    params = {k: (json.loads(json.dumps(p.default)) if k not in params else params[k])
              for k, p in kind.params.items()}

    search: dict[str, list[Any]] = {}
    for key, values in _mapping("search", data.get("search")).items():
        if key.split(".")[0] not in kind.params:
            raise ExperimentError(f"search.{key}: {key.split('.')[0]!r} is no parameter of "
                                  f"kind {kind.name!r}; allowed: {sorted(kind.params)}")
        if not isinstance(values, list) or not values:
            raise _fail(f"search.{key}", values, "a non-empty list of values")
        if len({json.dumps(v, sort_keys=True) for v in values}) < len(values):
            raise _fail(f"search.{key}", values, "a list without repeated values")
        search[key] = list(values)

    stop_raw = _mapping("stop", data.get("stop"))
    _no_unknown("stop", stop_raw, {"iterations": 1, "env_steps": 1})
    if kind.iterative:
        if len(stop_raw) != 1:
            raise ExperimentError(f"stop: kind {kind.name!r} trains; give exactly one of "
                                  f"iterations, env_steps (got {sorted(stop_raw)})")
        stop = Stop(**{k: _int(f"stop.{k}", v, 1) for k, v in stop_raw.items()})
    elif stop_raw:
        raise ExperimentError(f"stop: kind {kind.name!r} does not train; remove 'stop'")
    else:
        stop = Stop()

    ck = _mapping("checkpoint", data.get("checkpoint"))
    _no_unknown("checkpoint", ck, CheckpointPolicy.__dataclass_fields__)
    checkpoint = CheckpointPolicy(
        every=_int("checkpoint.every", ck.get("every", 10), 0),
        keep=_int("checkpoint.keep", ck.get("keep", 2), 1),
        score=ck.get("score"),
        mode=ck.get("mode", "max"),
    )
    if checkpoint.mode not in ("max", "min"):
        raise _fail("checkpoint.mode", checkpoint.mode, "max, min")
    if checkpoint.score is not None and not isinstance(checkpoint.score, str):
        raise _fail("checkpoint.score", checkpoint.score, "a reported metric's name")

    ev = _mapping("evaluation", data.get("evaluation"))
    _no_unknown("evaluation", ev, Evaluation.__dataclass_fields__)
    evaluation = Evaluation(
        episodes=_int("evaluation.episodes", ev.get("episodes", 0), 0),
        seed=_int("evaluation.seed", ev.get("seed", 10_000), 0),
        test_seed=_int("evaluation.test_seed", ev.get("test_seed", 20_000), 0),
        select=ev.get("select", "utilization"),
        mode=ev.get("mode", "max"),
    )
    if evaluation.mode not in ("max", "min"):
        raise _fail("evaluation.mode", evaluation.mode, "max, min")
    if evaluation.episodes:
        if not kind.evaluates:
            raise ExperimentError(f"evaluation: kind {kind.name!r} has no checkpoint "
                                  "evaluation; remove 'evaluation'")
        lo, hi = sorted((evaluation.seed, evaluation.test_seed))
        if lo + evaluation.episodes > hi:
            raise ExperimentError(
                f"evaluation: validation seeds {evaluation.seed}.. and test seeds "
                f"{evaluation.test_seed}.. overlap for {evaluation.episodes} episodes")

    report = _mapping("report", data.get("report"))
    _no_unknown("report", report, kind.report_keys)

    experiment = Experiment(
        name=name, kind=kind.name, params=params, search=search, stop=stop,
        checkpoint=checkpoint, evaluation=evaluation, report=report,
        description=description, path=path, raw=dict(data),
    )
    for t in experiment.trials():
        for key, p in kind.params.items():
            if p.check is None:
                continue
            try:
                p.check(t.params[key])
            except (ValueError, TypeError) as e:
                at = next((k for k in t.point if k.split(".")[0] == key), None)
                src = (f"search.{at} (trial {t.name})" if at is not None
                       else f"trial.params.{key}")
                raise ExperimentError(f"{src}: {e}") from None
        if kind.check_trial is not None:
            try:
                kind.check_trial(t.params)
            except (ValueError, TypeError) as e:
                raise ExperimentError(f"trial {t.name}: {e}") from None
    return experiment
