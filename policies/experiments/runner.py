"""Run or resume an experiment as one Ray Tune experiment, on whatever cluster is attached.

Every trial of the grid is one Tune trial (:func:`policies.experiments.trial.run_trial`) in
a placement group of the kind's resources, so trials run in parallel on every node of the
cluster, up to ``max_concurrent`` at a time. Tune's state, checkpoints and each trial's
TensorBoard folder live under ``storage/<experiment name>/`` (on a multi-node cluster a
folder every node sees, e.g. NFS, or a ``s3://`` URI). Starting an experiment whose folder
holds Tune's state resumes it (``Tuner.restore``): finished trials are not rerun,
unfinished and failed ones continue from their last checkpoint.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from policies.experiments.kinds import get_kind
from policies.experiments.spec import Experiment, ExperimentError, trial_file_name
from policies.experiments.trial import SUMMARY_KEY, run_trial

#: where Tune's state of an experiment goes unless --storage says otherwise
DEFAULT_STORAGE = Path("runs") / "experiments"
#: the validated experiment a Tune folder was started with (a resume must match it)
EXPERIMENT_FILE = "fairmarl_experiment.json"
#: how often Tune restarts a failed trial (from its last checkpoint) before giving up
MAX_FAILURES = 3


def trial_configs(experiment: Experiment) -> list[dict[str, Any]]:
    """What each Tune trial gets: its name, parameters, point, and the policies."""
    return [
        {"name": t.name, "kind": experiment.kind, "params": t.params, "point": t.point,
         "stop": asdict(experiment.stop), "checkpoint": asdict(experiment.checkpoint),
         "evaluation": asdict(experiment.evaluation)}
        for t in experiment.trials()
    ]


def _trainable(config: dict[str, Any]) -> None:
    run_trial(config["trial"])


def _state(experiment: Experiment) -> dict[str, Any]:
    """What a resume must match: the experiment file's content and its grid (not the
    kinds' defaults, which a newer version of the code may extend)."""
    return json.loads(json.dumps(
        {"name": experiment.name, "file": experiment.raw,
         "trials": [t.name for t in experiment.trials()]}, sort_keys=True, default=str))


@dataclass
class Outcome:
    """What an experiment run produced: each finished trial's summary, the trials that
    failed (name -> error text) and those left unfinished without an error (the run was
    interrupted: running it again resumes them)."""

    summaries: list[dict[str, Any]]
    failed: dict[str, str]
    unfinished: list[str] = field(default_factory=list)


class Progress(tune.Callback):
    """A Tune callback: a progress bar over the experiment's work (iterations of every
    trial, or trials) with its ETA, and one line per finished or failed trial."""

    def __init__(self, total: int, iterative: bool) -> None:
        self.total, self.iterative = total, iterative
        self.bar: Any = None
        self.seen: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks
        return {**self.__dict__, "bar": None}

    def _bar(self) -> Any:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="it" if self.iterative else "trial",
                            desc="experiment", file=sys.stderr, dynamic_ncols=True)
        return self.bar

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if self.iterative and SUMMARY_KEY not in result:
            done = int(result.get("training_iteration", 0))
            self._bar().update(max(0, done - self.seen.get(trial.trial_id, 0)))
            self.seen[trial.trial_id] = done

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not self.iterative:
            self._bar().update(1)
        final = {k.removeprefix("final/"): v for k, v in (trial.last_result or {}).items()
                 if k.startswith("final/")}
        first = [k for k in ("utilization", "cv", "min_utility", "regret") if k in final]
        text = ", ".join(f"{k} {final[k]:.3f}" for k in (first or list(final)[:4]))
        self._bar().write(f"done: {trial.config['trial']['name']}  {text}", file=sys.stdout)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._bar().write(f"failed: {trial.config['trial']['name']} (Tune's folder of the "
                          f"trial: {trial.path})", file=sys.stdout)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def run_experiment(
    experiment: Experiment,
    *,
    storage: str | Path = DEFAULT_STORAGE,
    max_concurrent: int | None = None,
    fresh: bool = False,
    skip: frozenset[str] = frozenset(),
) -> Outcome:
    """Run ``experiment`` on the Ray instance this process is connected to (start or join
    one first: :func:`policies.training.init_ray`), or resume it from ``storage``.

    ``skip``: trials not to run when the experiment starts anew (their summaries exist);
    a resumed experiment keeps the trials it started with. ``fresh``: delete Tune's folder
    of this experiment first. Resuming an experiment whose grid differs from the one Tune's
    folder was started with is an ExperimentError.
    """
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
    from ray.tune.execution.placement_groups import PlacementGroupFactory
    from ray.tune.logger import JsonLoggerCallback

    kind = get_kind(experiment.kind)
    storage_str = str(storage)
    remote = "://" in storage_str
    if not remote:
        storage_str = str(Path(storage_str).resolve())
    path = f"{storage_str.rstrip('/')}/{experiment.name}"
    trainable = tune.with_resources(
        _trainable,
        lambda config: PlacementGroupFactory(kind.resources(config["trial"]["params"])),
    )
    state = _state(experiment)
    if fresh and not remote and Path(path).exists():
        shutil.rmtree(path)
    if tune.Tuner.can_restore(path):
        saved = Path(path) / EXPERIMENT_FILE
        if not remote and saved.is_file() and json.loads(saved.read_text()) != state:
            raise ExperimentError(
                f"{path} holds a run of another version of experiment {experiment.name!r} "
                "(its file's content differs); pass --fresh to start it over, or give the "
                "changed experiment another name")
        tuner = tune.Tuner.restore(path, trainable, resume_errored=True)
    else:
        if not remote:
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / EXPERIMENT_FILE).write_text(json.dumps(state, indent=1))
        configs = [c for c in trial_configs(experiment) if c["name"] not in skip]
        if not configs:
            return Outcome(summaries=[], failed={})
        ck = experiment.checkpoint
        by_it = bool(kind.iterative and experiment.stop.iterations)
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(configs)},
            tune_config=TuneConfig(
                max_concurrent_trials=max_concurrent,
                trial_name_creator=lambda t: t.config["trial"]["name"],
                trial_dirname_creator=lambda t: trial_file_name(
                    t.config["trial"]["name"]).removesuffix(".json"),
            ),
            run_config=RunConfig(
                name=experiment.name, storage_path=storage_str, verbose=0,
                checkpoint_config=CheckpointConfig(
                    num_to_keep=ck.keep, checkpoint_score_attribute=ck.score,
                    checkpoint_score_order=ck.mode),
                failure_config=FailureConfig(max_failures=MAX_FAILURES),
                # results as JSON lines per trial (result.json). Not Tune's CSV: it fixes
                # its columns at a trial's first result, and the fairness figures appear
                # once an episode has ended, so its progress.csv lost them. Tune's
                # TensorBoard logger is off: each trial writes the training scripts' tags
                # to its tb/
                callbacks=[Progress(len(configs) * (experiment.stop.iterations or 1), by_it),
                           JsonLoggerCallback()],
            ),
        )
    grid = tuner.fit()
    summaries, failed, unfinished = [], {}, []
    for result in grid:
        name = (result.config or {}).get("trial", {}).get("name", "?")
        metrics = result.metrics or {}
        if result.error is not None:
            failed[name] = str(result.error)
        elif SUMMARY_KEY not in metrics:  # stopped before its end (Ctrl-C)
            unfinished.append(name)
        else:
            summaries.append(json.loads(metrics[SUMMARY_KEY]))
    return Outcome(summaries=summaries, failed=failed, unfinished=unfinished)
