"""Trial kind ``bandit``: one run of one algorithm on a multi-agent bandit benchmark.

A trial is one *run* of :func:`policies.mauce.runner.run_one`: ``algorithm`` (MAUCE,
MATS, LLR, SCQL, random; :data:`policies.mauce.policies.ALGORITHMS`) plays ``horizon``
rounds of ``problem`` (``chain0101``, ``gem_mining``, ``wind_farm``; ``agents`` = chain
length / number of villages, null for the problem's default) with run seed ``seed``.
The seed alone fixes the run (the env's reward draws, the policy's randomness and the
Gem Mining instance, all from one ``numpy.random.SeedSequence``), so a study's grid is
*algorithms x run seeds*: one small, independent Tune trial per (algorithm, seed),
which spreads over every CPU of a cluster, and the trial ``algorithm=A,seed=r``
reproduces run ``r`` of algorithm A of the old ``run_bandits.py --seed 0 --runs N``.

Summary ``metrics``: ``regret`` (the exact expected cumulative regret
``sum_t E F(a*) - E F(a_t)`` at ``t = horizon``, divided by ``n - 1`` on the chain, as the
papers do; Gem Mining and the wind farm are normalised so the optimum earns 1 per round),
``us_per_step`` / ``wall_us_per_step`` (the policy's act + observe per round, CPU and
elapsed time); ``curves``: ``regret`` at ``curve_points`` rounds, to 4 decimals (a small
summary; the report's ``curves.png`` plots the mean curve of each algorithm, its x axis
the round).

The report's rows are the algorithms (mean ± std over the run seeds); :func:`notes` adds
the 95% confidence interval of each mean and what the algorithm names stand for;
:func:`anchors` gives the AI-Toolbox reference figures of the 10-agent 0101-chain at
T = 10,000.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from policies.experiments.kinds import REPORT_KEYS, Param, TrialKind, int_at_least


def _choice(allowed: tuple[str, ...] | list[str]) -> Any:
    def check(value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"{value!r} is not allowed; allowed: {list(allowed)}")
    return check


def _problems() -> tuple[str, ...]:
    from policies.mauce.runner import PROBLEMS

    return PROBLEMS


def _algorithms() -> list[str]:
    from policies.mauce.policies import ALGORITHMS

    return list(ALGORITHMS)


def _check_problem(value: Any) -> None:
    _choice(_problems())(value)


def _check_algorithm(value: Any) -> None:
    _choice(_algorithms())(value)


PARAMS: dict[str, Param] = {
    "problem": Param("chain0101", _check_problem, "chain0101, gem_mining or wind_farm"),
    "agents": Param(None, int_at_least(1, "the problem's default"),
                    "chain length / number of villages (null: 10 / drawn per instance; "
                    "the wind farm has 7)"),
    "algorithm": Param("mauce", _check_algorithm, "a policy of policies.mauce.ALGORITHMS"),
    "horizon": Param(10_000, int_at_least(1), "rounds of the run (T)"),
    "seed": Param(0, int_at_least(0), "the run seed (env rewards, policy, Gem Mining "
                                       "instance)"),
    "curve_points": Param(50, int_at_least(2), "rounds at which the regret curve is kept "
                                                "(evenly spaced from 1 to the horizon)"),
}


def _check_trial(params: dict[str, Any]) -> None:
    """The problem's own checks of ``agents`` (a chain of at least 2, the wind farm's 7)."""
    from policies.mauce.runner import make_problem

    try:
        make_problem(params["problem"], params["agents"], params["horizon"], 0)
    except ValueError as e:
        raise ValueError(f"agents {params['agents']!r} for problem "
                         f"{params['problem']!r}: {e}") from None


def run(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """Play the trial's run (module docstring); its regret, time per step and curve."""
    from policies.mauce.runner import run_one

    r = run_one(params["problem"], params["algorithm"], params["seed"], params["horizon"],
                params["agents"], n_points=params["curve_points"])
    return {
        "metrics": {"regret": r.regret, "us_per_step": r.us_per_step,
                    "wall_us_per_step": r.wall_us_per_step},
        "curves": {"regret": [[t, round(v, 4)]
                              for t, v in zip(r.checkpoints, r.curve, strict=True)]},
        "env_steps": params["horizon"],
    }


#: AI-Toolbox's figures of the 10-agent 0101-chain at T = 10,000 (20 runs; issue 5):
#: normalised regret, mean and std
REFERENCE_CHAIN = {"random": (2750.0, 13.0), "LLR": (161.0, 5.0),
                   "Thompson sampling": (13.8, 2.6), "MAUCE": (39.4, 3.4)}


def anchors(experiment: Any) -> list[dict[str, Any]]:
    """The AI-Toolbox reference rows where the study is their setting (chain, 10 agents,
    T = 10,000), none otherwise."""
    p = experiment.params
    if (p["problem"], p["agents"], p["horizon"]) != ("chain0101", 10, 10_000) \
            or "horizon" in experiment.search or "agents" in experiment.search:
        return []
    return [{"label": f"AI-Toolbox reference: {name}", "metrics": {"regret": mean},
             "std": {"regret": std}, "seeds": 20}
            for name, (mean, std) in REFERENCE_CHAIN.items()]


#: what each algorithm name stands for (policies/mauce/policies.py)
ALGORITHM_NOTES = {
    "mauce": "MAUCE with exact UCVE (envelope pruning; `policies/mauce/ucve.py`)",
    "mats": "multi-agent Thompson sampling with Beta posteriors (rewards scaled to [0, 1] by "
            "the factor's range, binarised by a Bernoulli draw when not 0/1) for Bernoulli "
            "and binomial rewards (chain, mining), the Gaussian posterior of `mats_gaussian` "
            "otherwise (wind farm)",
    "mats_beta": "MATS with Beta posteriors whatever the rewards",
    "mats_gaussian": "MATS with a Gaussian likelihood, unknown variance, Jeffreys prior "
                     "(Student-t posterior of the mean)",
    "llr": "LLR, `mu + r sqrt(2 ln t / n)` per local arm, VE argmax",
    "scql": "sparse cooperative Q-learning, optimistic init and epsilon-greedy with "
            "`policies/mauce/policies.py::SCQL_SETTINGS` (the spec gives no epsilon schedule "
            "for the wind farm; it uses Gem Mining's)",
    "random": "uniform joint action",
}


def _t95(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def notes(experiment: Any, summaries: list[dict[str, Any]]) -> str:
    """Each row's regret at T with its 95% confidence interval (Student t over the run
    seeds), what the regret and the times are, and the algorithm names."""
    from policies.experiments.report import row_label

    rows: dict[str, list[Mapping[str, Any]]] = {}
    for s in summaries:
        rows.setdefault(row_label(experiment, s), []).append(s)
    p = experiment.params
    scale = ("divided by n - 1, the papers' normalisation" if p["problem"] == "chain0101"
             else "rewards normalised so the optimum earns 1 per round")
    lines = [
        f"Regret: the exact expected cumulative regret `sum_t E F(a*) - E F(a_t)` at t = T "
        f"({scale}), one run per seed. Times: the policy's act + observe per round (not the "
        "environment), averaged over the run: CPU time of the trial's process "
        "(`time.process_time`) and elapsed time; on a shared machine the CPU time is the "
        "fairer figure.",
        "",
        "| row | runs | regret at T: mean | 95% CI of the mean | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for label, members in rows.items():
        values = [float(s["metrics"]["regret"]) for s in members]
        n = len(values)
        mean = sum(values) / n
        if n > 1:
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
            half = _t95(n - 1) * std / math.sqrt(n)
            ci = f"{mean - half:.1f} .. {mean + half:.1f}"
        else:
            ci = "-"
        lines.append(f"| {label} | {n} | {mean:.1f} | {ci} | {min(values):.1f} | "
                     f"{max(values):.1f} |")
    algos = [a for a in ALGORITHM_NOTES
             if any(s.get("params", {}).get("algorithm") == a for s in summaries)]
    if algos:
        lines += ["", "Algorithms:", ""] + [f"* `{a}`: {ALGORITHM_NOTES[a]}." for a in algos]
    return "\n".join(lines)


METRICS = {"regret": ".1f", "us_per_step": ".0f", "wall_us_per_step": ".0f"}

BANDIT = TrialKind(
    name="bandit", params=PARAMS, run=run, check_trial=_check_trial, metrics=METRICS,
    anchors=anchors, notes=notes,
    report_keys={**REPORT_KEYS,
                 "curves_yscale": "the y scale of curves.png: linear (default) or log",
                 "curves_xlabel": "the x axis label of curves.png (default: iteration)"},
)
