"""Ray start-up and the training loop shared by ``scripts/train.py`` and FEN's script.

:func:`run_training` builds (or restores) the algorithm, trains, prints one progress
line per iteration, writes TensorBoard scalars and checkpoints, and returns a summary.

TensorBoard tags (step = training iteration; see docs/training.md):

* ``fairness/<name>``: utilization, cv, average_utility, min_utility, max_utility,
  ``utility/<agent>`` and env extras (mean over the episodes of the iteration window)
* ``agent_return/<agent>``: each agent's episode return
* ``throughput/agent_steps_per_s``, ``throughput/env_steps_per_s``,
  ``throughput/env_steps_lifetime``, ``throughput/iteration_time_s``
* ``episode/return_mean``, ``episode/len_mean``
* ``loss/<module>/<name>``: policy_loss, vf_loss, entropy, total_loss, ... per module
* ``fault_tolerance/env_runner_restarts``, ``fault_tolerance/healthy_env_runners``
* ``learners/<module or group>/<name>``: learner diagnostics one level deep, and
  ``env_runners/num_module_steps_sampled/<module>`` (:func:`all_scalars`); nothing per
  agent id, no timers
* ``config`` (text, once per run): run_info and the non-default AlgorithmConfig fields
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from policies.callbacks import AGENT_RETURN_PREFIX, FAIRNESS_PREFIX
from policies.cli import RunError

RUN_INFO_FILE = "run_info.json"
CHECKPOINT_DIR = "checkpoints"
#: names the newest complete checkpoint of a run folder (written after its marker)
LATEST_FILE = "latest_checkpoint.txt"
#: a checkpoint's completion marker, written last: every file of the checkpoint with its
#: size and sha256; a directory without it (a save that was killed) is never loaded
COMPLETE_FILE = "checkpoint_complete.json"
#: what a checkpoint of :func:`save_checkpoint` always holds: RLlib's metadata, the
#: AlgorithmConfig, the algorithm state (iteration counter, metrics logger), the learner
#: group (modules' weights, optimiser state) and our run_info
CHECKPOINT_PARTS = (
    "rllib_checkpoint.json", "class_and_ctor_args.pkl", "algorithm_state.pkl", "learner_group",
    RUN_INFO_FILE,
)
LOSS_KEYS = (
    "policy_loss", "vf_loss", "entropy", "total_loss", "qf_loss", "mean_kl_loss",
    "vf_explained_var",
)


@contextlib.contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist now out of the garbage collector's full collections
    while the block runs (``gc.freeze``; ``gc.unfreeze`` after it, so that they are
    collectable again once the run is over).

    Entered once the algorithm is built: Ray, torch, RLlib, the modules and the env copies
    are some 450,000 tracked objects, and every few iterations the short-lived objects of
    sampling and learning trigger a full collection that walks all of them (0.2 s on FEN's
    Job Scheduling run, about 5% of its training time). Collections of what the run
    creates afterwards go on as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def loopback_environment() -> None:
    """Environment variables that keep Ray on 127.0.0.1 and torch on one thread."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


#: how long :func:`check_cluster_address` waits for the TCP connect and for the GCS's answer
CLUSTER_PROBE_TIMEOUT_S = 5.0


def check_cluster_address(address: str, timeout_s: float = CLUSTER_PROBE_TIMEOUT_S) -> None:
    """Fail fast where ``ray.init(address=...)`` would retry for minutes: ``address`` is no
    HOST:PORT, nothing accepts a TCP connection there, or what listens does not answer a
    Ray GCS request (``NodeInfoGcsService.GetClusterId`` over Ray's own gRPC channel, with
    its TLS and token settings) within ``timeout_s``. A ValueError naming the address; at
    most ``2 * timeout_s`` in all."""
    import socket

    import grpc
    from ray._private.grpc_utils import init_grpc_channel
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    from policies.cli import parse_address

    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        raise ValueError(f"no Ray cluster at {address!r}: cannot connect ({e})") from None
    channel = init_grpc_channel(address)
    try:
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise ValueError(f"the Ray cluster at {address!r} refused us: {e.details()} (the "
                             f"token: RAY_AUTH_TOKEN or ~/.ray/auth_token)") from None
        raise ValueError(f"no Ray cluster at {address!r}: something listens there but did not "
                         f"answer as a Ray GCS within {timeout_s:g} s ({e.code().name})"
                         ) from None
    finally:
        channel.close()


def init_ray(address: str | None = None, *, num_cpus: int | None = None,
             runtime_env: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Start a local Ray on loopback, or connect to the cluster at ``address`` (HOST:PORT).

    A cluster started with ``ray start --head`` uses token authentication; we set
    ``RAY_AUTH_MODE=token`` (the token is read from ``~/.ray/auth_token`` or
    ``RAY_AUTH_TOKEN``). An address where no Ray cluster answers is a ValueError within
    about 10 s (:func:`check_cluster_address`), not minutes of Ray's retries.
    ``runtime_env``: Ray's runtime environment of every worker (e.g. its ``env_vars``).
    Returns ``ray.cluster_resources()``.
    """
    loopback_environment()
    import ray
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if ray.is_initialized():
        return dict(ray.cluster_resources())
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": "WARNING",
        "log_to_driver": True,
    }
    if runtime_env:
        kwargs["runtime_env"] = dict(runtime_env)
    if address:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        if address != "auto":
            check_cluster_address(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError) as e:
            raise ValueError(f"cannot connect to the Ray cluster at {address!r}: {e}") from e
    else:
        # "local": always a new local instance; ray.init() alone would join the cluster
        # named in /tmp/ray/ray_current_cluster (e.g. a stale `ray start` of another run)
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    return dict(ray.cluster_resources())


# ---------------------------------------------------------------- result parsing
def flatten_scalars(tree: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(path, value)`` for every finite numeric leaf of a nested result dict."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from flatten_scalars(v, f"{prefix}/{k}" if prefix else str(k))
        return
    if isinstance(tree, bool):
        return
    try:
        import numpy as np

        if isinstance(tree, np.ndarray) and tree.shape == ():
            tree = tree.item()
        elif hasattr(tree, "item") and getattr(tree, "ndim", 1) == 0:
            tree = tree.item()
    except (TypeError, ValueError):
        return
    if isinstance(tree, int | float) and math.isfinite(tree):
        yield prefix, float(tree)


def _get(d: Mapping, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return default
        d = d[p]
    return d


def _count_leaves(value: Any) -> Iterator[float]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _count_leaves(v)
        return
    try:
        yield float(value)
    except (TypeError, ValueError):
        return


def _sum_counts(value: Any) -> float:
    """The sum of a (nested) count. RLlib reports NaN for the agent ids that did not act
    in an iteration (FEN's per-period ids): those count 0. NaN when no count is finite
    (nothing is known)."""
    leaves = list(_count_leaves(value))
    finite = [x for x in leaves if math.isfinite(x)]
    return float(sum(finite)) if finite or not leaves else math.nan


def iteration_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The stable TensorBoard scalars of one training result (see module docstring)."""
    env = result.get("env_runners", {}) or {}
    learners = result.get("learners", {}) or {}
    t = float(result.get("time_this_iter_s") or 0.0)
    agent_steps = _sum_counts(env.get("num_agent_steps_sampled", 0))
    env_steps = _sum_counts(env.get("num_env_steps_sampled", 0))
    out: dict[str, float] = {
        "throughput/iteration_time_s": t,
        "throughput/agent_steps_per_s": agent_steps / t if t > 0 else 0.0,
        "throughput/env_steps_per_s": env_steps / t if t > 0 else 0.0,
        "throughput/env_steps_lifetime": _sum_counts(
            env.get(
                "num_env_steps_sampled_lifetime", result.get("num_env_steps_sampled_lifetime", 0)
            )
        ),
    }
    for src, dst in (("episode_return_mean", "episode/return_mean"),
                     ("episode_len_mean", "episode/len_mean")):
        # numpy scalars too (e.g. np.float32 from remote single-agent env runners)
        for _, v in flatten_scalars(env.get(src), dst):
            out[dst] = v
    for key, v in flatten_scalars(env):
        # callbacks log flat keys "fairness/cv"; nested dicts flatten to the same path
        if key.startswith((f"{FAIRNESS_PREFIX}/", f"{AGENT_RETURN_PREFIX}/")):
            out[key] = v
    for module_id, stats in learners.items():
        if not isinstance(stats, Mapping):
            continue
        for name in LOSS_KEYS:
            v = stats.get(name)
            for _, x in flatten_scalars(v, "x"):
                out[f"loss/{module_id}/{name}"] = x
    # RLlib's env-runner fault tolerance (Algorithm.step): remote runners restarted since
    # this process built the algorithm (a resumed run counts from 0), and healthy now
    ft = result.get("fault_tolerance") or {}
    for src, dst in (("num_remote_worker_restarts", "fault_tolerance/env_runner_restarts"),
                     ("num_healthy_workers", "fault_tolerance/healthy_env_runners")):
        for _, v in flatten_scalars(ft.get(src), dst):
            out[dst] = v
    return out


#: RLlib bookkeeping under ``learners/<module>/`` that TensorBoard does not get (counters,
#: throughputs, parameter counts); the losses go to ``loss/<module>/`` instead
LEARNER_BOOKKEEPING = (
    "weights_seq_no", "num_trainable_parameters", "num_non_trainable_parameters",
    "diff_num_grad_updates_vs_sampler_policy", "num_module_steps_trained_lifetime",
)


def all_scalars(result: Mapping[str, Any]) -> dict[str, float]:
    """What a run writes to TensorBoard: the stable tags of :func:`iteration_metrics`,
    the learners' diagnostics ``learners/<module or group>/<name>`` (one level deep: e.g.
    ``curr_kl_coeff``, ``gradients_default_optimizer_global_norm``, FEN's
    ``learners/fen/discriminator_accuracy``; not the losses, which are ``loss/...``, nor
    :data:`LEARNER_BOOKKEEPING`) and ``env_runners/num_module_steps_sampled/<module>``.
    Nothing per agent id (FEN's hierarchy makes new ids every period), no timers, no
    second copy of a ``fairness/`` or ``agent_return/`` tag."""
    out = iteration_metrics(result)
    for group, stats in (result.get("learners") or {}).items():
        if not isinstance(stats, Mapping) or group == "__all_modules__":
            continue
        for name, value in stats.items():
            if (isinstance(value, Mapping) or name in LOSS_KEYS or name in LEARNER_BOOKKEEPING
                    or "throughput" in name):
                continue
            for _, x in flatten_scalars(value, "x"):
                out[f"learners/{group}/{name}"] = x
    sampled = (result.get("env_runners") or {}).get("num_module_steps_sampled")
    for key, v in flatten_scalars(sampled, "env_runners/num_module_steps_sampled"):
        out[key] = v
    return out


#: consecutive iterations without a sampled env step after which a run stops
MAX_EMPTY_ITERATIONS = 3


class SamplingError(RunError):
    """A run whose env runners sample nothing (see :class:`EmptySampling`)."""


class EmptySampling:
    """Stops a run whose env runners sample nothing instead of training on nothing.

    RLlib restarts a failed remote env runner (``restart_failed_env_runners``,
    :func:`policies.config.apply_run_settings`) and samples from the healthy ones, so a
    runner killed mid-run costs no iteration; but a runner that fails every time (an
    error in the env or its setup, raised in the runner process) leaves iterations that
    sample no env step at all, and a run would go on, checkpoint and exit 0 having
    trained nothing. :meth:`update` raises :class:`SamplingError` after
    :data:`MAX_EMPTY_ITERATIONS` such iterations in a row, or at a run's last iteration
    when the run has sampled nothing at all."""

    def __init__(self) -> None:
        self.streak = 0
        self.sampled = 0.0

    def update(self, result: Mapping[str, Any], *, last: bool) -> None:
        """Account for one iteration's ``result``; ``last``: the run's final iteration."""
        steps = _sum_counts((result.get("env_runners") or {}).get("num_env_steps_sampled", 0))
        steps = steps if math.isfinite(steps) else 0.0
        self.sampled += steps
        self.streak = 0 if steps > 0 else self.streak + 1
        if self.streak >= MAX_EMPTY_ITERATIONS or (last and self.sampled == 0):
            ft = result.get("fault_tolerance") or {}
            raise SamplingError(
                f"{self.streak} iteration(s) in a row up to iteration "
                f"{result.get('training_iteration', '?')} sampled no env step: the env "
                f"runners failed ({ft.get('num_remote_worker_restarts', '?')} restarts so "
                f"far, {ft.get('num_healthy_workers', '?')} healthy); their error is in the "
                "log above (with 0 env runners, --num-env-runners 0, it is raised in this "
                "process). Nothing was trained in them; the last checkpoint is kept.")


#: progress-line fields: (label, metric key, format)
PROGRESS_FIELDS = (
    ("agent-steps/s", "throughput/agent_steps_per_s", "{:8.0f}"),
    ("mean return", "episode/return_mean", "{:9.3f}"),
    ("utilization", f"{FAIRNESS_PREFIX}/utilization", "{:.3f}"),
    ("CV", f"{FAIRNESS_PREFIX}/cv", "{:.3f}"),
)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def progress_line(result: Mapping[str, Any], last: dict[str, float] | None = None) -> str:
    """One line: iteration, env steps, agent-steps/s, mean return, utilization, CV.

    A figure that is missing or not finite in this iteration (e.g. utilization when no
    episode ended, agent-steps/s when RLlib reports NaN) is shown as the last finite
    value from ``last`` followed by ``*`` (``last`` is updated in place; pass the same
    dict every iteration), or as ``-`` when there is none. Only the printed line is
    affected; TensorBoard scalars are written from the result as before.
    """
    m = iteration_metrics(result)
    env_steps = m.get("throughput/env_steps_lifetime")
    parts = [
        f"iter {int(result.get('training_iteration', 0)):4d}",
        f"env steps {int(env_steps):9d}" if _finite(env_steps) else f"env steps {'-':>9}",
    ]
    for label, key, fmt in PROGRESS_FIELDS:
        value = m.get(key)
        if _finite(value):
            if last is not None:
                last[key] = float(value)
            text = fmt.format(value)
        elif last is not None and key in last:
            text = fmt.format(last[key]) + "*"
        else:
            width = len(fmt.format(0.0))
            text = "-".rjust(width)
        parts.append(f"{label} {text}")
    return " | ".join(parts)


# ---------------------------------------------------------------- checkpoints
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` or what it held before, never a part of ``text``."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _listing(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def mark_complete(checkpoint: str | Path) -> Path:
    """Write the completion marker :data:`COMPLETE_FILE` of ``checkpoint``: every file
    under it with its size and sha256. :func:`save_checkpoint` calls it last; call it
    yourself only on a checkpoint you know is whole (one saved before checkpoints had
    markers). ValueError if ``checkpoint`` lacks one of :data:`CHECKPOINT_PARTS`."""
    path = Path(checkpoint)
    missing = [p for p in CHECKPOINT_PARTS if not (path / p).exists()]
    if missing:
        raise ValueError(f"{str(path)!r} is not a whole checkpoint: it lacks {missing}")
    files = {
        f.relative_to(path).as_posix(): {"bytes": f.stat().st_size, "sha256": _sha256(f)}
        for f in sorted(path.rglob("*"))
        if f.is_file() and f.name not in (COMPLETE_FILE, COMPLETE_FILE + ".tmp")
    }
    _write_atomically(path / COMPLETE_FILE, json.dumps({"files": files}, indent=1))
    return path / COMPLETE_FILE


def check_checkpoint(checkpoint: str | Path) -> Path:
    """``checkpoint`` if it is complete: it holds :data:`CHECKPOINT_PARTS` and its
    completion marker, and every file the marker lists has the size and sha256 it was
    saved with. Otherwise a ValueError naming what is missing or damaged."""
    path = Path(checkpoint)
    problems = []
    missing = [p for p in CHECKPOINT_PARTS if not (path / p).exists()]
    if missing:
        problems.append("missing " + ", ".join(missing))
    marker = path / COMPLETE_FILE
    if not marker.is_file():
        problems.append(
            f"no completion marker {COMPLETE_FILE} (it is written last: the process saving "
            "the checkpoint stopped before it finished, or the checkpoint predates markers)"
        )
    else:
        try:
            files = dict(json.loads(marker.read_text())["files"])
        except (ValueError, KeyError, TypeError) as e:
            files = {}
            problems.append(f"damaged {COMPLETE_FILE} ({e!r})")
        gone, damaged = [], []
        for name, saved in files.items():
            f = path / name
            if not f.is_file():
                if name.split("/")[0] not in missing:
                    gone.append(name)
            elif f.stat().st_size != saved["bytes"]:
                damaged.append(f"{name} ({f.stat().st_size} bytes, saved with "
                               f"{saved['bytes']}: truncated or overwritten)")
            elif _sha256(f) != saved["sha256"]:
                damaged.append(f"{name} (its content is not what was saved)")
        if gone:
            problems.append("missing " + _listing(gone))
        if damaged:
            problems.append("damaged " + _listing(damaged))
    if problems:
        raise ValueError(f"{str(path)!r} is not a complete checkpoint: " + "; ".join(problems))
    return path


def open_checkpoint(checkpoint: str | Path) -> tuple[Path, dict[str, Any]]:
    """The complete checkpoint ``checkpoint`` names (:func:`check_checkpoint`) and its
    run_info.

    ``checkpoint`` is a checkpoint directory or a run folder (a ``logdir`` of
    :func:`run_training`: it has ``checkpoints/``, ``tb/`` or :data:`LATEST_FILE`),
    which stands for the checkpoint its :data:`LATEST_FILE` names (looked up by name
    under its ``checkpoints/``, so a moved folder works). ValueError otherwise (for a
    run folder without such a checkpoint: naming the checkpoints in it).
    """
    path = Path(checkpoint)
    if not path.exists():
        raise ValueError(f"checkpoint path {str(path)!r} does not exist")
    if any((path / p).exists() for p in (CHECKPOINT_DIR, LATEST_FILE, "tb")):
        latest = path / LATEST_FILE
        name = Path(latest.read_text().strip()).name if latest.is_file() else ""
        if not name or not (path / CHECKPOINT_DIR / name).is_dir():
            inside = sorted(p.name for p in (path / CHECKPOINT_DIR).glob("iter_*"))
            raise ValueError(
                f"{str(path)!r} is a run folder and its {LATEST_FILE} names no checkpoint "
                f"in it; its checkpoints: {inside or 'none'} (pass one, "
                f"{str(path / CHECKPOINT_DIR / 'iter_NNNNNN')!r})"
            )
        path = path / CHECKPOINT_DIR / name
    check_checkpoint(path)
    return path, json.loads((path / RUN_INFO_FILE).read_text())


def read_run_info(checkpoint: str | Path) -> dict[str, Any]:
    """The run_info of the complete checkpoint ``checkpoint`` names (:func:`open_checkpoint`)."""
    return open_checkpoint(checkpoint)[1]


_UNSET = object()


def _differences(saved: Any, current: Any, key: str = "", defaults: Any = _UNSET) -> list[str]:
    """``key (checkpoint X, this run Y)`` for every (dotted) key whose values differ; a key
    unset on one side and set to its value in ``defaults`` (a tree like theirs) on the
    other is no difference."""
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        below = defaults if isinstance(defaults, Mapping) else {}
        return [d for k in sorted(set(saved) | set(current), key=str)
                for d in _differences(saved.get(k, _UNSET), current.get(k, _UNSET),
                                      f"{key}.{k}" if key else str(k), below.get(k, _UNSET))]
    if saved == current:
        return []
    if defaults is not _UNSET and _UNSET in (saved, current) and defaults in (saved, current):
        return []
    a, b = ("unset" if v is _UNSET else repr(v) for v in (saved, current))
    return [f"{key} (checkpoint {a}, this run {b})"]


def check_resume_compatible(run_info: Mapping[str, Any], checkpoint: str | Path) -> Path:
    """The complete checkpoint ``checkpoint`` names (:func:`open_checkpoint`) if this run
    may resume it: the same env, algorithm, policy mapping, sampler, env factory (and FEN
    variant) and the same ``env_config`` / ``env_kwargs`` (a ValueError names the keys
    that differ). ``run_info["defaults"]`` (a tree like ``run_info``'s) gives what a key
    left unset stands for: unset on one side and that value on the other is the same."""
    path, saved = open_checkpoint(checkpoint)
    if "sampler" in run_info and "algo" in saved:  # train.py checkpoints before --sampler
        saved.setdefault("sampler", "multi_agent")
    for key in ("env", "algo", "policy_mode", "sampler", "factory", "variant"):
        if key in run_info and key in saved and run_info[key] != saved[key]:
            raise ValueError(
                f"checkpoint {str(path)!r} was trained with {key}={saved[key]!r}, "
                f"this run has {key}={run_info[key]!r}"
            )
    defaults = json.loads(json.dumps(run_info.get("defaults") or {}, default=repr))
    for key in ("env_config", "env_kwargs"):
        if key in run_info and key in saved:
            differ = _differences(saved[key], json.loads(json.dumps(run_info[key])),
                                  defaults=defaults.get(key, _UNSET))
            if differ:
                raise ValueError(
                    f"checkpoint {str(path)!r} was trained with another {key}: "
                    + "; ".join(differ) + f" (its {RUN_INFO_FILE} has the values it was "
                    "trained with)"
                )
    return path


def save_checkpoint(algo: Any, logdir: Path, run_info: Mapping[str, Any]) -> Path:
    """Save ``algo`` to ``logdir/checkpoints/iter_NNNNNN``: RLlib's files, run_info.json,
    then the completion marker (:func:`mark_complete`); then :data:`LATEST_FILE` names it.
    A process killed during the save leaves a directory without a marker, which no loader
    takes, and :data:`LATEST_FILE` still names the previous complete checkpoint."""
    it = algo.iteration
    path = (logdir / CHECKPOINT_DIR / f"iter_{it:06d}").resolve()
    latest = logdir / LATEST_FILE
    if path.exists():  # left by an earlier run in this logdir: replaced, marker first
        if latest.is_file() and latest.read_text().strip() == str(path):
            latest.unlink()
        (path / COMPLETE_FILE).unlink(missing_ok=True)
        shutil.rmtree(path)
    algo.save_to_path(str(path))
    info = dict(run_info)
    info["training_iteration"] = it
    (path / RUN_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))
    mark_complete(path)
    _write_atomically(latest, str(path) + "\n")
    return path


# ---------------------------------------------------------------- training
#: TensorBoard text tag with the run's config (:func:`config_text`)
CONFIG_TAG = "config"


def config_text(config: Any, run_info: Mapping[str, Any]) -> str:
    """The run as TensorBoard text (markdown): ``run_info`` and the AlgorithmConfig
    fields that differ from a default config of the same class, as JSON."""
    ours = config.to_dict()
    try:
        defaults = type(config)().to_dict()
    except Exception:  # noqa: BLE001 - a config class that needs arguments: every field
        defaults = {}
    changed = {k: v for k, v in ours.items() if k not in defaults or defaults[k] != v}
    body = json.dumps({"run": dict(run_info), "config": changed}, indent=2, sort_keys=True,
                      default=repr)
    # four spaces: a markdown code block
    return "\n".join("    " + line for line in body.splitlines())


def run_training(
    config: Any,
    *,
    iterations: int,
    logdir: str | Path,
    checkpoint_every: int = 0,
    resume: str | Path | None = None,
    run_info: Mapping[str, Any] | None = None,
    verbose: bool = True,
    warm_start: Callable[[Any], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train ``iterations`` more iterations of ``config``'s algorithm.

    ``resume`` restores a complete checkpoint of :func:`run_training` first (modules,
    optimiser state, metrics and the iteration counter; a run folder stands for its
    latest checkpoint: :func:`open_checkpoint`), so iterations continue from the
    checkpoint's number; it must match ``run_info`` (:func:`check_resume_compatible`).
    TensorBoard points of ``logdir`` from the first iteration this call trains on are
    dropped (``purge_step``: a killed run's points after its checkpoint are not kept
    twice). A checkpoint (:func:`save_checkpoint`) is written every ``checkpoint_every``
    iterations (0: only at the end) and always after the last one. ``warm_start``
    (e.g. :func:`policies.warm_start.warm_start` with its demonstrations bound) is
    called with the freshly built algorithm before the first iteration, not on resume;
    what it returns is the summary's ``warm_start``. Returns a summary dict
    (iterations, training_iteration, env_steps, wall_time_s, checkpoint, logdir,
    final metrics).
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be an integer >= 0, got {checkpoint_every!r}")
    run_info = dict(run_info or {})
    restore = check_resume_compatible(run_info, resume) if resume is not None else None
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)

    from torch.utils.tensorboard import SummaryWriter

    start = time.perf_counter()
    algo = config.build_algo()
    writer: SummaryWriter | None = None
    failure: SamplingError | None = None
    try:
        if restore is not None:
            algo.restore_from_path(str(restore.resolve()))
            if verbose:
                print(f"resumed from {restore} at iteration {algo.iteration}", flush=True)
        warm = None
        if warm_start is not None and restore is None:
            warm = dict(warm_start(algo))
            if verbose:
                print(f"warm start: {json.dumps(warm)}", flush=True)
        # TensorBoard hides the points of earlier event files from this step on
        writer = SummaryWriter(log_dir=str(logdir / "tb"), purge_step=algo.iteration + 1)
        if restore is None:  # the run's config, once: TensorBoard's TEXT tab
            writer.add_text(CONFIG_TAG, config_text(config, run_info), global_step=0)
        (logdir / RUN_INFO_FILE).write_text(json.dumps(run_info, indent=2, sort_keys=True))
        result: Mapping[str, Any] = {}
        checkpoint: Path | None = None
        first_iteration = algo.iteration
        last_finite: dict[str, float] = {}
        latest: dict[str, tuple[float, int]] = {}  # metric -> (last finite value, iteration)
        # the iteration budget with its ETA on stderr (on a terminal); lines go above it
        bar = tqdm(total=iterations, desc="iterations", unit="it", leave=False,
                   disable=None if verbose else True, file=sys.stderr, dynamic_ncols=True)
        empty = EmptySampling()
        with long_lived_objects_frozen():
            for i in range(iterations):
                result = algo.train()
                empty.update(result, last=i == iterations - 1)
                bar.update(1)
                step = int(result.get("training_iteration", algo.iteration))
                for tag, value in all_scalars(result).items():
                    writer.add_scalar(tag, value, global_step=step)
                writer.flush()
                for key, value in iteration_metrics(result).items():
                    if _finite(value):
                        latest[key] = (float(value), step)
                if verbose:
                    bar.write(progress_line(result, last_finite), file=sys.stdout)
                if checkpoint_every and step % checkpoint_every == 0:
                    checkpoint = save_checkpoint(algo, logdir, run_info)
        bar.close()
        if checkpoint is None or int(checkpoint.name.split("_")[-1]) != algo.iteration:
            checkpoint = save_checkpoint(algo, logdir, run_info)
        metrics = iteration_metrics(result)
        summary = {
            "iterations": algo.iteration - first_iteration,
            "training_iteration": algo.iteration,
            "env_steps": int(metrics["throughput/env_steps_lifetime"]),
            "wall_time_s": time.perf_counter() - start,
            "checkpoint": str(checkpoint),
            "logdir": str(logdir),
            "tensorboard_dir": str(logdir / "tb"),
            "metrics": metrics,
            "latest_metrics": {k: v for k, (v, _) in latest.items()},
            "latest_metrics_iteration": {k: it for k, (_, it) in latest.items()},
            "result": result,
        }
        if warm is not None:
            summary["warm_start"] = warm
        if verbose:
            print(
                f"done: {summary['iterations']} iterations (now at {algo.iteration}), "
                f"{summary['env_steps']} env steps, {summary['wall_time_s']:.1f} s; "
                f"checkpoint {checkpoint}; TensorBoard: tensorboard --logdir {logdir}",
                flush=True,
            )
        return summary
    except SamplingError as e:
        # raised once the algorithm is stopped: RLlib's shutdown logging would print it
        # as a traceback while it propagates
        failure = e
    finally:
        if writer is not None:
            writer.close()
        algo.stop()
    raise failure


# ---------------------------------------------------------------- evaluation
def load_checkpoint_config(checkpoint: str | Path) -> dict[str, Any]:
    """The AlgorithmConfig state (a dict) stored in ``checkpoint``, a complete checkpoint
    (a path :func:`open_checkpoint` returned)."""
    import pickle

    with (Path(checkpoint) / "class_and_ctor_args.pkl").open("rb") as f:
        data = pickle.load(f)
    return data["ctor_args_and_kwargs"][0][0]


def load_checkpoint_modules(checkpoint: str | Path) -> Any:
    """The MultiRLModule of a complete checkpoint (a path :func:`open_checkpoint`
    returned), in inference mode."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    module_path = Path(checkpoint) / "learner_group" / "learner" / "rl_module"
    module = RLModule.from_checkpoint(str(module_path.resolve()))
    for sub in module.values():
        if hasattr(sub, "eval"):
            sub.eval()  # torch modules: inference mode (no dropout etc.)
    return module


def _module_for(mapping_fn: Any, agent_id: str) -> str:
    try:
        return mapping_fn(agent_id, None)
    except TypeError:
        return mapping_fn(agent_id, None, worker=None)


def stack_observations(rows: list) -> Any:
    """A float32 tensor batch of observations, or a dict of them for dict observations
    (e.g. ``{"observation": ..., "action_mask": ...}``)."""
    import numpy as np
    import torch

    if isinstance(rows[0], Mapping):
        return {key: stack_observations([r[key] for r in rows]) for key in rows[0]}
    return torch.as_tensor(np.stack(rows), dtype=torch.float32)


def greedy_actions(
    module: Any, obs_by_agent: Mapping[str, Any], mapping_fn: Any, rng: Any = None,
    fixed: Mapping[str, int] | None = None,
) -> dict:
    """Greedy action of every agent in ``obs_by_agent`` (batched per module).

    With ``rng`` (a ``numpy.random.Generator``), actions are instead sampled from the
    categorical distribution of the module's action logits (the stochastic policy).
    ``fixed`` (module id -> action): the agents of those modules take that action
    instead of asking the module (:func:`check_fixed_actions`).
    """
    import numpy as np
    import torch
    from ray.rllib.core.columns import Columns

    groups: dict[str, list[str]] = {}
    for agent in obs_by_agent:
        groups.setdefault(_module_for(mapping_fn, agent), []).append(agent)
    actions: dict[str, Any] = {}
    with torch.no_grad():
        for module_id, agents in groups.items():
            if module_id not in module:
                raise ValueError(
                    f"agent(s) {agents} map to module {module_id!r}, which the checkpoint "
                    f"does not hold (modules: {sorted(module.keys())})"
                )
            if fixed and module_id in fixed:
                actions.update(dict.fromkeys(agents, fixed[module_id]))
                continue
            out = module[module_id].forward_inference(
                {Columns.OBS: stack_observations([obs_by_agent[a] for a in agents])})
            if rng is not None:
                probs = torch.softmax(out[Columns.ACTION_DIST_INPUTS], dim=-1).cpu().numpy()
                cumulative = probs.astype(np.float64).cumsum(axis=-1)
                draws = rng.random((len(agents), 1)) * cumulative[:, -1:]
                acts = torch.as_tensor((draws >= cumulative).sum(axis=-1))
            elif Columns.ACTIONS in out:
                acts = out[Columns.ACTIONS]
            else:
                acts = torch.argmax(out[Columns.ACTION_DIST_INPUTS], dim=-1)
            for agent, a in zip(agents, acts.cpu().numpy().tolist(), strict=True):
                actions[agent] = int(a)
    return actions


def check_fixed_actions(module: Any, fixed: Mapping[str, Any]) -> dict[str, int]:
    """``fixed`` (module id -> action) checked against a checkpoint's MultiRLModule: each
    module must be one of its modules with a discrete action space holding the action."""
    checked: dict[str, int] = {}
    for module_id, action in fixed.items():
        if module_id not in module:
            raise ValueError(f"cannot fix module {module_id!r}: the checkpoint's modules are "
                             f"{sorted(module.keys())}")
        n = getattr(module[module_id].action_space, "n", None)
        if n is None:
            raise ValueError(f"cannot fix module {module_id!r}: its action space "
                             f"{module[module_id].action_space} is not discrete")
        if isinstance(action, bool) or not isinstance(action, int) or not 0 <= action < n:
            raise ValueError(f"module {module_id!r} has actions 0..{int(n) - 1}, got "
                             f"{action!r}")
        checked[module_id] = action
    return checked


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    episodes: int,
    seed: int = 10_000,
    env: str | None = None,
    render: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    out: Any = None,
    sample: bool = False,
    fixed_actions: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Greedy rollouts of a complete :func:`run_training` checkpoint (or a run folder's
    latest: :func:`open_checkpoint`); fairness figures averaged.

    ``sample=True``: actions are sampled from the policies' action distributions
    (seeded with ``seed``) instead of taken greedily. ``fixed_actions`` (module id ->
    action): every agent of those modules always takes that action, an ablation (e.g.
    FEN's controllers pinned to one sub-policy, ``{"ctrl": 0}``).

    Rebuilds the env from the checkpoint's env_config (any registered factory) and
    maps agents to modules with the checkpoint config's ``policy_mapping_fn``.
    ``env`` (optional) must match the checkpoint's env. Returns ``{"utilization",
    "cv", "min_utility", "max_utility", "average_utility", "per_agent_utility",
    "episodes", "per_episode"}``.
    """
    import sys

    import numpy as np

    from policies.rllib_env import build_parallel_env

    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"--episodes must be an integer >= 1, got {episodes!r}")
    if render not in (None, "ansi"):
        raise ValueError(f"--render {render!r} is not supported; allowed: 'ansi'")
    checkpoint, info = open_checkpoint(checkpoint)
    if env is not None and info.get("env") != env:
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} holds policies for env {info.get('env')!r}, "
            f"not {env!r}"
        )
    state = load_checkpoint_config(checkpoint)
    env_config = dict(state.get("env_config") or info.get("env_config") or {})
    env_config["env_kwargs"] = {**dict(env_config.get("env_kwargs") or {}), **(env_kwargs or {})}
    if render:
        env_config["env_kwargs"]["render_mode"] = render
    mapping_fn = state["policy_mapping_fn"]
    module = load_checkpoint_modules(checkpoint)
    fixed = check_fixed_actions(module, fixed_actions or {})
    out = out or sys.stdout

    try:
        par_env = build_parallel_env(env_config)
    except TypeError as e:  # an unknown env kwarg: the CLI's one-line error
        raise ValueError(str(e)) from e
    rng = np.random.default_rng(seed) if sample else None
    per_episode: list[dict[str, float]] = []
    try:
        for i in range(episodes):
            obs, _ = par_env.reset(seed=seed + i)
            while par_env.agents:
                # only the agents that act next (a wrapper's obs may also hold the
                # final observations of agents that just finished)
                acting = {a: o for a, o in obs.items() if a in par_env.agents}
                actions = greedy_actions(module, acting, mapping_fn, rng, fixed)
                obs, _, _, _, _ = par_env.step(actions)
                if render and i == 0:
                    print(par_env.render(), file=out)
            # a wrapper's episode_stats (e.g. FEN's controller figures) extends the env's
            stats_fn = getattr(par_env, "episode_stats", None)
            if not callable(stats_fn):
                stats_fn = getattr(par_env.unwrapped, "episode_stats", None)
            if not callable(stats_fn):
                raise ValueError(f"env {info.get('env')!r} has no episode_stats()")
            per_episode.append(dict(stats_fn()))
    finally:
        par_env.close()

    def mean(key: str) -> float:
        return float(sum(s[key] for s in per_episode) / len(per_episode))

    agents = sorted(
        (k.split("/", 1)[1] for k in per_episode[0] if k.startswith("utility/")),
        key=lambda a: (len(a), a),
    )
    return {
        "utilization": mean("utilization"),
        "cv": mean("cv"),
        "min_utility": mean("min_utility"),
        "max_utility": mean("max_utility"),
        "average_utility": mean("average_utility"),
        "per_agent_utility": {a: mean(f"utility/{a}") for a in agents},
        "episodes": episodes,
        "actions": "sampled" if sample else "greedy",
        "fixed_actions": fixed,
        "env": info.get("env"),
        "checkpoint": str(checkpoint),
        "per_episode": per_episode,
    }


def format_evaluation(report: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_checkpoint`'s figures."""
    fixed = ", ".join(f"{m} always {a}" for m, a in (report.get("fixed_actions") or {}).items())
    lines = [
        f"env {report['env']}, {report['episodes']} {report.get('actions', 'greedy')} "
        f"episode(s){f' ({fixed})' if fixed else ''}, checkpoint {report['checkpoint']}",
        f"{'agent':<16}{'utility':>12}",
    ]
    lines += [f"{a:<16}{u:>12.5f}" for a, u in report["per_agent_utility"].items()]
    lines.append("-" * 28)
    for key in ("utilization", "cv", "average_utility", "min_utility", "max_utility"):
        lines.append(f"{key:<16}{report[key]:>12.5f}")
    return "\n".join(lines)
