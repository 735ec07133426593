"""Command-line flags and light name checks shared by ``scripts/train.py`` and FEN's script.

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args()
    with cli_errors():             # ValueError -> "error: ..." on stderr, exit code 2
        run_settings(args)        # validated dict of the shared flags
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import marl_envs

ALGOS: tuple[str, ...] = ("ppo", "dqn", "a2c")
POLICY_MODES: tuple[str, ...] = ("independent", "shared")
#: policy networks of ``build_config(..., model=...)`` / ``scripts/train.py --model``: RLlib's
#: default MLP, or :mod:`policies.slot_scoring` (PPO/A2C on envs with ``slot_layout()``)
MODELS: tuple[str, ...] = ("mlp", "slot_scoring")
#: the FEN paper's environments (every one has episode_stats / max_fair_utility)
FEN_ENVS: tuple[str, ...] = ("job_scheduling", "matthew_effect", "manufacturing_plant")
#: the environments train.py trains on: per-step PettingZoo episodes with episode_stats
TRAIN_ENVS: tuple[str, ...] = (*FEN_ENVS, "resource_allocation", "live_recommendation")


#: the string-hash seed of training processes (see :func:`fix_hash_seed`)
HASH_SEED = "0"


def fix_hash_seed() -> None:
    """Run this process with ``PYTHONHASHSEED=HASH_SEED``: re-execute the interpreter with
    it unless it is set already (training scripts call this first, under ``__main__``).

    RLlib's ``MultiAgentEpisode.add_env_step`` orders the agents that appear mid-episode by
    iterating a set of their string ids, and that order decides which agent's action takes
    which draw of torch's generator. Python salts string hashes per process, so FEN's
    runs (a controller and a sub-policy segment id appear every period) differed between
    two invocations of one config from their first iteration on. With one hash seed they
    are the same run; Ray's workers inherit the variable.
    """
    if os.environ.get("PYTHONHASHSEED") != HASH_SEED:
        os.environ["PYTHONHASHSEED"] = HASH_SEED
        os.execv(sys.executable, sys.orig_argv)


def console_main(main: Callable[[], int]) -> int:
    """Run a training command's ``main`` as the scripts do: Ray on loopback, one torch
    thread per process, one string-hash seed (:func:`fix_hash_seed`)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    fix_hash_seed()
    return main()


def check_choice(kind: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` if it is in ``allowed``; else a ValueError naming both."""
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; allowed: {list(allowed)}")
    return value


def check_env(env: str) -> str:
    """``env`` if train.py can train on it (a registered env of :data:`TRAIN_ENVS`)."""
    trainable = [e for e in TRAIN_ENVS if e in marl_envs.ENV_NAMES]
    if env not in marl_envs.ENV_NAMES:
        raise ValueError(f"unknown environment {env!r}; allowed: {trainable}")
    if env not in trainable:
        raise ValueError(
            f"environment {env!r} is a bandit (one joint action per step, no per-step "
            f"PettingZoo training episodes to fit); train.py supports: {trainable}"
        )
    return env


def parse_value(text: str) -> Any:
    """A ``--set`` value: a Python/JSON literal (numbers, lists, dicts, True, None), else text."""
    lowered = text.strip()
    aliases = {"true": True, "false": False, "null": None, "none": None}
    if lowered.lower() in aliases:
        return aliases[lowered.lower()]
    try:
        return ast.literal_eval(lowered)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """``["lr=1e-3", "model_config.fcnet_hiddens=[32]"]`` -> dict; bad items raise."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key] = parse_value(value)
    return out



EXIT_USAGE = 2


def add_run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --iterations --num-env-runners --envs-per-runner --seed --logdir --address
    --checkpoint-every --resume --set --summary-json --quiet to ``parser``."""
    g = parser.add_argument_group("run")
    g.add_argument("--iterations", type=int, default=10, help="training iterations (default 10)")
    g.add_argument(
        "--num-env-runners", type=int, default=1,
        help="remote env-runner processes sampling in parallel (0: sample in the driver)",
    )
    g.add_argument(
        "--envs-per-runner", type=int, default=8,
        help="environments each env runner steps as one vector (default 8)",
    )
    g.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    g.add_argument("--logdir", default=None, help="run directory: TensorBoard files, checkpoints")
    g.add_argument(
        "--address", default=None,
        help="HOST:PORT of an existing Ray cluster (default: start a local Ray on loopback)",
    )
    g.add_argument(
        "--checkpoint-every", type=int, default=0,
        help="save a checkpoint every N iterations (0: only after the last one)",
    )
    g.add_argument(
        "--resume", default=None, metavar="CHECKPOINT", help="continue from a checkpoint"
    )
    g.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override an AlgorithmConfig field, e.g. --set lr=1e-3 (repeatable)",
    )
    g.add_argument("--summary-json", default=None, metavar="FILE",
                   help="write the final summary to this file (its folder must exist, or be "
                        "--logdir)")
    g.add_argument("--quiet", action="store_true", help="no per-iteration progress lines")
    g.add_argument("--config", default=None, metavar="FILE",
                   help="a YAML or TOML file of this command's flags (keys as the flags "
                        "without '--', e.g. 'iterations: 50', 'set: {lr: 0.001}', "
                        "'env_kwargs: {max_cycles: 200}'); flags given on the command line "
                        "override it")
    return parser


def read_mapping_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.yaml``/``.yml``/``.toml`` file; a ValueError naming the file and
    what is wrong (missing, unknown type, syntax with its line, not a mapping)."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no file at {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from None
    elif path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
    else:
        raise ValueError(f"{path}: unknown file type {path.suffix!r}; allowed: .yaml, .yml, "
                         ".toml")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the file must hold a mapping (key: value)")
    return data


def _config_value(action: argparse.Action, value: Any) -> Any:
    """A ``--config`` value as the default of ``action``: strings go through the flag's own
    type check when argparse applies the default."""
    if action.dest == "overrides":
        if not isinstance(value, dict):
            raise ValueError(f"'set' must be a mapping of AlgorithmConfig fields, got {value!r}")
        return [f"{k}={json.dumps(v)}" for k, v in value.items()]
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ValueError(f"{action.dest!r} must be true or false, got {value!r}")
        return value
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value if value is None else str(value)


def parse_with_config(parser: argparse.ArgumentParser,
                      argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)``; with ``--config FILE``, the file's keys (the flags'
    names without ``--``, ``-`` or ``_``; ``set`` a mapping) are the defaults that the
    flags on the command line override. An unknown key is a usage error naming it."""
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is None:
        return args
    try:
        values = read_mapping_file(args.config)
    except ValueError as e:
        parser.error(f"argument --config: {e}")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    actions["set"] = actions["overrides"]
    defaults = {}
    for key, value in values.items():
        action = actions.get(str(key).replace("-", "_"))
        if action is None or action.dest == "config":
            parser.error(f"argument --config: {args.config}: unknown key {key!r}; allowed: "
                         f"{sorted(k for k in actions if k not in ('config', 'overrides'))}")
        try:
            defaults[action.dest] = _config_value(action, value)
        except ValueError as e:
            parser.error(f"argument --config: {args.config}: {e}")
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``--address``) as ``(host, port)``; a ValueError naming it otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--address must be HOST:PORT with a port in 1..65535 (or 'auto'), "
                         f"got {address!r}")
    return host, int(port)


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The shared flags, validated (ValueError naming the bad value otherwise)."""
    checks: list[tuple[str, int, int]] = [
        ("--iterations", args.iterations, 1),
        ("--num-env-runners", args.num_env_runners, 0),
        ("--envs-per-runner", args.envs_per_runner, 1),
        ("--seed", args.seed, 0),
        ("--checkpoint-every", args.checkpoint_every, 0),
    ]
    for flag, value, low in checks:
        if value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
    if args.resume is not None and not Path(args.resume).exists():
        raise ValueError(f"checkpoint path {args.resume!r} does not exist")
    if args.address is not None and args.address != "auto":
        parse_address(args.address)  # before anything is built or started
    if args.summary_json:  # checked now, not when the training is over
        folder = Path(args.summary_json).resolve().parent
        made_by_run = args.logdir is not None and folder == Path(args.logdir).resolve()
        problem = None if made_by_run else output_file_problem(args.summary_json)
        if problem:
            raise ValueError(f"--summary-json: {problem}")
    return {
        "iterations": args.iterations,
        "num_env_runners": args.num_env_runners,
        "envs_per_runner": args.envs_per_runner,
        "seed": args.seed,
        "logdir": args.logdir,
        "address": args.address,
        "checkpoint_every": args.checkpoint_every,
        "resume": args.resume,
        "overrides": parse_overrides(args.overrides),
    }


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``low``. Anything else is argparse's one error
    line naming the flag and the value, exit code 2 (not a traceback after the work)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


#: argparse types of counts and seeds: integers >= 0 / >= 1
nonneg_int = int_at_least(0)
positive_int = int_at_least(1)


def int_list_at_least(low: int) -> Callable[[str], list[int]]:
    """An argparse ``type``: comma-separated integers, each >= ``low``, at least one."""
    each = int_at_least(low)

    def parse(text: str) -> list[int]:
        values = [each(x) for x in text.split(",") if x.strip()]
        if not values:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated integers >= {low}, got {text!r}")
        return values

    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def output_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be written as a file (its folder is missing, or it is a folder);
    None if it can."""
    folder = Path(path).parent
    if not folder.is_dir():
        return f"folder {str(folder)!r} does not exist (got {path!r})"
    if Path(path).is_dir():
        return f"{path!r} is a folder, not a file"
    return None


def output_file(text: str) -> str:
    """An argparse ``type``: a file the script writes (after its work) whose folder exists
    now; ``''`` passes unchanged (the scripts' "none")."""
    problem = output_file_problem(text) if text else None
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """``--env-kwargs`` (a JSON object) as a dict; ValueError naming the bad text."""
    try:
        env_kwargs = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--env-kwargs is not valid JSON ({text!r}): {e}") from e
    if not isinstance(env_kwargs, dict):
        raise ValueError(f"--env-kwargs must be a JSON object, got {text!r}")
    return env_kwargs


def fail(message: str) -> NoReturn:
    """One line on stderr and exit code 2."""
    first = " ".join(str(message).split())
    print(f"error: {first}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


class RunError(RuntimeError):
    """A run that cannot go on, for a reason its message states (e.g.
    :class:`policies.training.SamplingError`): one line and exit code 2 under
    :func:`cli_errors`, like a bad value."""


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn our ValueErrors (bad names, values, paths) and run errors (:class:`RunError`) into one
    line + exit code 2."""
    try:
        yield
    except (ValueError, RunError) as e:
        fail(str(e))


def report_main(script: str, parse_args: Callable[[list[str] | None], argparse.Namespace],
                run: Callable[[argparse.Namespace, str], Any],
                argv: list[str] | None = None) -> int:
    """``main()`` of a script that writes a report: parse ``argv`` (default: the command
    line) and ``run`` it, inside :func:`cli_errors`, with the command that made the report
    (``python scripts/<script> <arguments quoted for a shell>``); 0."""
    args = parse_args(argv)
    command = f"python scripts/{script} " + shlex.join(sys.argv[1:] if argv is None else argv)
    with cli_errors():
        run(args, command)
    return 0


def main_with_errors(fn: Callable[[], Any]) -> Any:
    """Call ``fn()`` inside :func:`cli_errors`."""
    with cli_errors():
        return fn()


def check_warm_start(teacher: str | None, episodes: int | None, *, env: str, algo: str,
                     resume: Any) -> None:
    """ValueError unless ``--warm-start`` / ``--warm-start-episodes`` make sense here:
    a scheduler of resource_allocation, PPO or A2C (FEN trains with PPO), a new run (not
    ``--resume``)."""
    if teacher is None:
        if episodes is not None:
            raise ValueError("--warm-start-episodes needs --warm-start")
        return
    from policies.heuristics.schedulers import SCHEDULERS

    check_choice("--warm-start scheduler", teacher, SCHEDULERS)
    if env != "resource_allocation":
        raise ValueError(f"--warm-start imitates a cluster scheduler: it needs --env "
                         f"resource_allocation, not {env!r}")
    if algo not in ("ppo", "a2c"):
        raise ValueError(f"--warm-start supports ppo and a2c, not {algo!r}")
    if resume is not None:
        raise ValueError("--warm-start initialises a new run; --resume continues one")
    if episodes is not None and episodes < 1:
        raise ValueError(f"--warm-start-episodes must be >= 1, got {episodes}")
