"""``run_experiment.py`` / ``fairmarl-experiment``: run, resume or report an experiment file.

    python scripts/run_experiment.py results/fen_job_scheduling/experiment.yaml \
        [--address HOST:PORT] [--max-concurrent N] [--storage PATH] [--out DIR] \
        [--report-only] [--fresh]

The study folder is the experiment file's folder; its ``trials/`` holds the summaries of
finished trials (committed with the study). A trial whose summary is there already, with
the same parameters, is not run again (delete its file to rerun it); the others run as one
Ray Tune experiment (resumed from ``--storage`` if it was interrupted). The report is
rewritten from every summary: the study folder's and this run's.

Nothing under the study folder is overwritten unless ``--out`` names it: by default the
new summaries and the report go to ``<storage>/<name>/report/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from policies.cli import cli_errors, console_main, int_at_least

DESCRIPTION = "Run, resume or report an experiment file (Ray Tune trials on a Ray cluster)."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run_experiment.py", description=DESCRIPTION)
    p.add_argument("experiment", help="the experiment file (.yaml, .yml or .toml)")
    p.add_argument("--address", default=None,
                   help="HOST:PORT of a running Ray cluster (default: a local Ray on loopback)")
    p.add_argument("--max-concurrent", type=int_at_least(1), default=None,
                   help="at most this many trials at a time (default: as resources allow)")
    p.add_argument("--num-cpus", type=int_at_least(1), default=None,
                   help="CPUs of the local Ray (default: all); not with --address")
    p.add_argument("--storage", default=None,
                   help="Tune's folder for the experiment's state and checkpoints (default "
                        "runs/experiments; on a multi-node cluster a path every node sees, "
                        "or s3://...)")
    p.add_argument("--out", default=None,
                   help="folder for the new trial summaries and the report (default "
                        "<storage>/<name>/report; the study folder to update the study)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rewrite the report from the study folder's trials/")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run only the grid's trials whose searched KEY is VALUE (repeatable: "
                        "values of one key are alternatives, different keys must all match); "
                        "the report still covers every summary")
    p.add_argument("--fresh", action="store_true",
                   help="forget Tune's state of an interrupted run of this experiment")
    args = p.parse_args(argv)
    if args.address is not None and args.num_cpus is not None:
        p.error("--num-cpus is for the local Ray; a cluster at --address has its own")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        p.error(f"argument --out: {args.out!r} is a file, not a folder")
    return args


def _command(args: argparse.Namespace, experiment_path: Path, out: Path) -> list[str]:
    from policies.experiments.report import portable

    base = ["python", "scripts/run_experiment.py", portable(experiment_path)]
    return [shlex.join([*base, "--out", portable(out)]),
            shlex.join([*base, "--out", portable(out), "--report-only"])]


def committed(study: Path) -> dict[str, dict[str, Any]]:
    """The study folder's trial summaries by trial name."""
    from policies.experiments.report import TRIALS_DIR, load_summaries

    return {s["trial"]: s for s in load_summaries(study / TRIALS_DIR)}


def only_filter(experiment: Any, items: list[str]) -> dict[str, set[str]]:
    """``--only`` as {searched key: allowed values as text}; a ValueError naming a key the
    grid does not search or a value it does not hold."""
    from policies.experiments.spec import value_text

    wanted: dict[str, set[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in experiment.search:
            raise ValueError(f"--only {item!r}: give KEY=VALUE with KEY one of the searched "
                             f"keys {sorted(experiment.search)}")
        values = {value_text(v) for v in experiment.search[key]}
        if value not in values:
            raise ValueError(f"--only {item!r}: {key} takes {sorted(values)} in this grid")
        wanted.setdefault(key, set()).add(value)
    return wanted


def same_params(experiment: Any, params: dict[str, Any], summary: dict[str, Any]) -> bool:
    """Whether a summary's trial ran ``params``: its parameters, with the kind's defaults
    for those it predates, are the same."""
    from policies.experiments.kinds import get_kind

    defaults = {k: p.default for k, p in get_kind(experiment.kind).params.items()}
    ran = {**defaults, **summary.get("params", {})}
    return json.loads(json.dumps(ran)) == json.loads(json.dumps(params))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with cli_errors():
        from policies.experiments.report import TRIALS_DIR, write_report, write_summaries
        from policies.experiments.runner import DEFAULT_STORAGE
        from policies.experiments.spec import load_experiment, value_text

        experiment = load_experiment(args.experiment)
        study = Path(args.experiment).parent
        storage = args.storage or str(DEFAULT_STORAGE)
        out = Path(args.out) if args.out else Path(storage) / experiment.name / "report"
        done = committed(study)
        if out.resolve() != study.resolve():
            done.update(committed(out))
        wanted = only_filter(experiment, args.only)
        chosen = [t for t in experiment.trials()
                  if all(value_text(t.point[k]) in v for k, v in wanted.items())]
        todo = [t for t in chosen
                if t.name not in done or not same_params(experiment, t.params, done[t.name])]
        new: list[dict[str, Any]] = []
        failed: dict[str, str] = {}
        unfinished: list[str] = []
        if not args.report_only and not todo:
            print(f"experiment {experiment.name}: every trial is in the study folder already")
        elif not args.report_only:
            from policies.cli import HASH_SEED
            from policies.experiments.runner import run_experiment
            from policies.training import init_ray

            print(f"experiment {experiment.name}: {len(todo)} of {len(experiment.trials())} "
                  "trial(s) not in the study folder yet", flush=True)
            init_ray(args.address, num_cpus=args.num_cpus,
                     runtime_env={"env_vars": {"PYTHONHASHSEED": HASH_SEED}})
            skip = frozenset(t.name for t in experiment.trials()) - {t.name for t in todo}
            if wanted and skip:  # a run of part of the grid is a Tune experiment of its own
                storage = str(Path(storage) / ("only_" + "_".join(sorted(
                    f"{k}-{v}" for k, vs in wanted.items() for v in vs))))
            outcome = run_experiment(experiment, storage=storage, skip=skip,
                                     max_concurrent=args.max_concurrent, fresh=args.fresh)
            new, failed = outcome.summaries, outcome.failed
            write_summaries(new, out / TRIALS_DIR)
            unfinished = outcome.unfinished
        summaries = {**done, **{s["trial"]: s for s in new}}
        if unfinished:
            print(f"experiment {experiment.name} interrupted: {len(unfinished)} trial(s) "
                  f"unfinished ({_listing(unfinished)}); run the same command again to "
                  f"resume them from their last checkpoints (Tune's state: "
                  f"{Path(storage) / experiment.name})", file=sys.stderr)
            if not summaries:
                return 1
        if not summaries:
            folders = sorted({str(study / TRIALS_DIR), str(out / TRIALS_DIR)})
            raise ValueError(f"no trial summaries to report in {' or '.join(folders)}")
        written = write_report(experiment, list(summaries.values()), out,
                               _command(args, Path(args.experiment), out))
        print("wrote " + ", ".join(str(p) for p in written))
        if failed:
            for name, error in failed.items():
                print(f"error: trial {name} failed: {error.splitlines()[-1] if error else ''}",
                      file=sys.stderr)
        if failed or unfinished:
            return 1
    return 0


def _listing(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more"
                                       if len(names) > limit else "")


def quiet_tune() -> None:
    """Tune's console output off (our progress bar and lines instead), its CSV/JSON/TBX
    loggers off (each trial writes our TensorBoard tags to its ``tb/``)."""
    for key, value in (("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1"), ("RAY_AIR_NEW_OUTPUT", "0"),
                       ("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0"),
                       ("RAY_DEDUP_LOGS", "1")):
        os.environ.setdefault(key, value)


def entry_point() -> int:
    """The console script ``fairmarl-experiment``: what ``scripts/run_experiment.py`` runs."""
    quiet_tune()
    return console_main(main)
