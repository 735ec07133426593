"""What a FEN run is compared with: the paper's tables, uniform random play, and the
committed independent-PPO results.

:func:`reference_rows` gives ``scripts/train_fen.py``'s final table its reference rows;
the ``fen`` trial kind (:mod:`policies.experiments.rllib_trials`) puts :data:`PAPER` and
random play beside the rows of the studies ``results/fen_<env>/``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("utilization", "cv", "min_utility", "max_utility")
#: the plant's figures (``marl_envs.manufacturing_plant_v0``'s ``episode_stats()``): its
#: ``utilization`` is the share of collected gems that went into products (the generic
#: ``mean(u) / c`` is ``reward_utilization``), products per agent (mean, min, max, CV over
#: agents) are the scale of the paper's products column, ``products`` is the episode total
PLANT_PRODUCTS = ("products_per_agent", "products_min", "products_max", "products_cv")
PLANT_METRICS = (*METRICS, *PLANT_PRODUCTS, "products", "reward_utilization")

#: the paper's tables (mean, std; None where the paper gives no std or no number); the
#: plant's products are per agent (the authors' script prints each agent's products, ``su``)
PAPER: dict[str, dict[str, dict[str, tuple[float, float | None]]]] = {
    "job_scheduling": {
        "independent": {"utilization": (0.96, 0.11), "cv": (1.57, 0.26),
                        "min_utility": (0.0, None), "max_utility": (0.88, 0.17)},
        "min": {"utilization": (0.47, 0.08), "cv": (0.30, 0.07),
                "min_utility": (0.07, None), "max_utility": (0.16, None)},
        "avg": {"utilization": (0.84, 0.07), "cv": (0.75, 0.13),
                "min_utility": (0.05, None), "max_utility": (0.46, None)},
        "min_avg": {"utilization": (0.63, 0.05), "cv": (0.39, 0.03),
                    "min_utility": (0.09, None), "max_utility": (0.24, None)},
        "inequity_aversion": {"utilization": (0.72, 0.09), "cv": (0.69, 0.17),
                              "min_utility": (0.04, None), "max_utility": (0.33, None)},
        "fen": {"utilization": (0.90, 0.05), "cv": (0.17, 0.05),
                "min_utility": (0.18, 0.03), "max_utility": (0.28, 0.07)},
        "fen_no_hierarchy": {"utilization": (0.57, 0.13), "cv": (0.22, 0.06),
                             "min_utility": (0.10, None), "max_utility": (0.18, None)},
    },
    "manufacturing_plant": {
        "independent": {"utilization": (0.28, 0.05), "cv": (0.38, 0.08),
                        "products_per_agent": (19, 3)},
        "min": {"utilization": (0.29, 0.06), "cv": (0.26, 0.01), "products_per_agent": (20, 4)},
        "avg": {"utilization": (0.13, 0.03), "cv": (0.63, 0.07), "products_per_agent": (9, 2)},
        "min_avg": {"utilization": (0.34, 0.06), "cv": (0.28, 0.01),
                    "products_per_agent": (23, 4)},
        "inequity_aversion": {"utilization": (0.27, 0.07), "cv": (0.29, 0.07),
                              "products_per_agent": (19, 5)},
        "fen": {"utilization": (0.82, 0.05), "cv": (0.10, 0.03), "products_per_agent": (48, 3)},
        "fen_no_hierarchy": {"utilization": (0.22, 0.03), "cv": (0.18, 0.07),
                             "products_per_agent": (15, 1)},
    },
    "matthew_effect": {},
}

#: where the committed studies are (``results/fen_<env>/trials/*.json``, one summary a trial)
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"


def random_policy_figures(env: str, env_kwargs: dict[str, Any], episodes: int = 5,
                          seed: int = 0, names: Sequence[str] | None = None
                          ) -> dict[str, dict]:
    """The untrained reference: uniform random actions, figures over ``episodes``
    (``names``: the ``episode_stats()`` keys to report; default the env's table metrics)."""
    import marl_envs

    rng = np.random.default_rng(seed)
    base = marl_envs.make(env, **env_kwargs)
    rows = []
    for episode in range(episodes):
        base.reset(seed=seed + episode)
        while base.agents:
            base.step(dict(zip(base.agents, rng.integers(base.n_actions, size=len(base.agents)),
                               strict=True)))
        rows.append(base.episode_stats())
    if names is None:
        names = PLANT_METRICS if env == "manufacturing_plant" else METRICS
    return {m: {"mean": float(np.mean([r[m] for r in rows])),
                "std": float(np.std([r[m] for r in rows])), "seeds": episodes} for m in names}


def independent_row(env: str, results_dir: Path = RESULTS_DIR
                    ) -> tuple[str, dict[str, float]] | None:
    """Independent PPO of the committed study ``results_dir/fen_<env>/``: the mean over
    the seeds of its trials of variant ``independent`` on the default world without
    ``--set`` overrides (those of the largest budget, if several), None without any."""
    trials = results_dir / f"fen_{env}" / "trials"
    runs = [json.loads(f.read_text()) for f in sorted(trials.glob("*.json"))]
    runs = [r for r in runs if r.get("params", {}).get("variant") == "independent"
            and not r["params"].get("env_kwargs") and not r["params"].get("overrides")]
    if not runs:
        return None
    budget = max(r.get("iterations") or 0 for r in runs)
    runs = [r for r in runs if (r.get("iterations") or 0) == budget]
    names = [m for m in runs[0]["metrics"] if all(m in r["metrics"] for r in runs)]
    return (f"independent PPO (results/fen_{env}, {len(runs)} seeds x {budget} it)",
            {m: float(np.mean([r["metrics"][m] for r in runs])) for m in names})


def reference_rows(env: str, env_kwargs: dict[str, Any] | None = None,
                   results_dir: Path = RESULTS_DIR) -> list[tuple[str, dict[str, float]]]:
    """``(row name, {metric: value})`` to print beside a run of ``env``: uniform random
    play (measured now, 5 episodes), independent PPO (:func:`independent_row`, from the
    committed study ``results_dir/fen_<env>/``) and the paper's FEN row (where the paper
    gives one)."""
    env_kwargs = dict(env_kwargs or {})
    rows = [("random play (5 episodes, now)",
             {m: f["mean"] for m, f in random_policy_figures(env, env_kwargs).items()})]
    independent = None if env_kwargs else independent_row(env, results_dir)
    if independent is not None:
        rows.append(independent)
    paper = PAPER.get(env, {}).get("fen")
    if paper:
        rows.append(("FEN, paper", {m: mean for m, (mean, _) in paper.items()}))
    return rows
