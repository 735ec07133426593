"""One trial on a Ray worker: Tune's function trainable around a kind's ``run``.

A trial's summary (what ``results/<study>/trials/<trial>.json`` holds) is a JSON mapping:

* ``trial`` (its name), ``kind``, ``params`` (every parameter), ``point`` (the searched
  values), ``source`` (``run_experiment`` or where an imported trial came from);
* ``metrics``: the figures the report tabulates (a kind's own names);
* optional: ``curves`` (``{tag: [[iteration, value], ...]}``), ``iterations``,
  ``env_steps``, ``wall_time_s``, ``node`` (the Ray node that ran it), ``selection``
  (which checkpoint the validation episodes chose) and kind-specific extras.

The trial's last Tune result carries the summary as :data:`SUMMARY_KEY` (a JSON string),
so the driver collects it from Tune's results wherever the trial ran.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from policies.experiments.spec import CheckpointPolicy, Evaluation, Stop

#: the result key that carries a finished trial's summary
SUMMARY_KEY = "trial_summary"


class TrialContext:
    """What a kind's ``run`` gets besides its parameters: the stop rule, checkpoint and
    evaluation policies, and Tune's reporting and checkpoint restore."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.stop = Stop(**config["stop"])
        self.checkpoint = CheckpointPolicy(**config["checkpoint"])
        self.evaluation = Evaluation(**config["evaluation"])
        self.started = time.perf_counter()

    def restored(self) -> Path | None:
        """The checkpoint this trial resumes from (Tune's latest of it), or None."""
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        return Path(checkpoint.to_directory())

    def trial_dir(self) -> Path:
        """This trial's folder on the node that runs it (TensorBoard files, artifacts)."""
        from ray import tune

        return Path(tune.get_context().get_trial_dir())

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        """One result row for Tune (and a checkpoint folder it copies to the storage)."""
        from ray import tune

        if checkpoint is None:
            tune.report(metrics)
        else:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint)))


def node_id() -> str:
    """The Ray node this process runs on."""
    import ray

    return ray.get_runtime_context().get_node_id()


def run_trial(config: dict[str, Any]) -> None:
    """Tune's trainable: run the trial's kind and report its summary last."""
    from policies.experiments.kinds import get_kind

    kind = get_kind(config["kind"])
    context = TrialContext(config)
    # a parameter the kind gained after the experiment started (a resumed one) has its default
    params = {**{k: p.default for k, p in kind.params.items()}, **config["params"]}
    summary = kind.run(params, context)
    summary = {
        "trial": config["name"], "kind": config["kind"], "params": params,
        "point": config["point"], "source": "run_experiment", "node": node_id(),
        **summary,
    }
    summary.setdefault("wall_time_s", time.perf_counter() - context.started)
    flat = {f"final/{k}": v for k, v in summary.get("metrics", {}).items()
            if isinstance(v, (int, float))}
    from ray import tune

    tune.report({SUMMARY_KEY: json.dumps(summary, sort_keys=True, default=str), **flat})
