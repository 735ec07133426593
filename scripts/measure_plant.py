#!/usr/bin/env python
"""The Manufacturing Plant measured as the paper measures it (issue 23, item 6).

    python scripts/measure_plant.py [--episodes 50] [--out results/fen_plant_measure/README.md]

Writes a markdown page with two parts:

1. The check of the utilization hypothesis against the paper's seven plant rows: the
   share of collected gems that went into products, predicted from each row's products
   per agent under three assumptions on how products are spread over the agents (equal;
   the spread of uniform random play; the spread that the row's CV allows with the
   3-gem recipes behind), next to the paper's utilization, and the generic
   ``mean(u) / c`` for comparison (the episode length it would need).
2. Uniform random play (``policies.fen.references.random_policy_figures``: the
   ``random_untrained`` row's policy, more episodes): the env's ``episode_stats()``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from marl_envs.manufacturing_plant_v0 import DEFAULT_REQUIREMENTS  # noqa: E402
from policies.cli import int_at_least, output_file  # noqa: E402
from policies.fen.references import PAPER, random_policy_figures  # noqa: E402

ENV = "manufacturing_plant"
MAX_GEMS = 700
#: an episode ends on the first step with more than MAX_GEMS gems: at least this many
GEMS_PER_EPISODE = MAX_GEMS + 1
C = 0.003
MAX_CYCLES = 10_000
ROW_NAMES = {
    "independent": "Independent", "min": "Min", "avg": "Avg", "min_avg": "Min+alpha*Avg",
    "inequity_aversion": "Inequity Aversion", "fen": "FEN",
    "fen_no_hierarchy": "FEN w/o hierarchy",
}


HEADER = (
    "| paper row | products per agent | CV | utilization (paper) | lowest possible | equal "
    "| random mix | CV mix | (paper - CV mix) / paper std | agents 0 and 4 would need "
    "| CV that implies | steps mean(u)/c would need |\n" + "|---" * 12 + "|"
)


def gems_per_product() -> np.ndarray:
    """Gems one product of each agent consumes (3, 2, 2, 2, 3)."""
    return np.array(DEFAULT_REQUIREMENTS).sum(axis=1)


def two_level(mean: float, cv: float, low: np.ndarray) -> np.ndarray:
    """Products per agent with mean ``mean`` and sample CV ``cv`` (ddof 1), the agents
    of ``low`` (a boolean mask) all at one level below the others' common level."""
    n, n_low = low.size, int(low.sum())
    n_high = n - n_low
    # p_low = m - d n_high / n, p_high = m + d n_low / n; sd = d sqrt(n_low n_high / (n (n-1)))
    d = cv * mean / np.sqrt(n_low * n_high / (n * (n - 1)))
    return np.where(low, mean - d * n_high / n, mean + d * n_low / n)


def share(products: np.ndarray) -> float:
    """The share of an episode's gems that went into ``products`` (per agent)."""
    return float(products @ gems_per_product() / GEMS_PER_EPISODE)


def hypothesis_rows(random_shares: np.ndarray) -> list[dict[str, float | str]]:
    """Per paper row: the gem share predicted from its products per agent, three ways."""
    g = gems_per_product()
    low = g == g.max()  # agents 0 and 4: the 3-gem recipes
    rows = []
    for key, name in ROW_NAMES.items():
        paper = PAPER[ENV][key]
        m, _ = paper["products_per_agent"]
        cv, _ = paper["cv"]
        u, u_std = paper["utilization"]
        equal = share(np.full(g.size, float(m)))
        lowest = share(np.where(low, 0.0, g.size * m / (~low).sum()))
        mix_random = share(m * random_shares)
        mix_cv = share(two_level(m, cv, low))
        # the low agents' products that would give the paper's utilization exactly
        # (the others sharing the rest equally), and the CV over agents that implies
        needed_low = (u * GEMS_PER_EPISODE - g[~low].mean() * g.size * m) / (
            g[low].mean() - g[~low].mean()) / low.sum()
        implied = np.where(low, needed_low, (g.size * m - low.sum() * needed_low) / (~low).sum())
        rows.append({
            "row": name, "products": m, "cv": cv, "paper": u, "paper_std": u_std,
            "lowest": lowest, "equal": equal, "mix_random": mix_random, "mix_cv": mix_cv,
            "implied_low": float(needed_low), "implied_cv": float(np.std(implied, ddof=1) / m),
            # mean(u)/c = paper utilization needs episodes of m / (u c) steps (gem rewards,
            # ignored here, would only lengthen them)
            "steps_for_reward_utilization": m / (u * C),
        })
    return rows


def random_play(episodes: int, seed: int = 0) -> dict[str, dict]:
    agents = [f"agent_{i}" for i in range(len(DEFAULT_REQUIREMENTS))]
    names = ("products_per_agent", "products_min", "products_max", "products_cv", "products",
             *(f"products/{a}" for a in agents), "utilization", "reward_utilization", "cv",
             "gems_collected")
    return random_policy_figures(ENV, {}, episodes=episodes, seed=seed, names=names)


def episode_lengths(episodes: int, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the random episodes' lengths (the same episodes as random_play)."""
    import marl_envs

    rng = np.random.default_rng(seed)
    env = marl_envs.make(ENV)
    steps = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        while env.agents:
            env.step(dict(zip(env.agents, rng.integers(env.n_actions, size=len(env.agents)),
                              strict=True)))
        steps.append(env.num_steps)
    return float(np.mean(steps)), float(np.std(steps))


def page(command: str, episodes: int) -> str:
    figures = random_play(episodes)
    agents = sorted(k.removeprefix("products/") for k in figures if k.startswith("products/"))
    per_agent = np.array([figures[f"products/{a}"]["mean"] for a in agents])
    shares = per_agent / per_agent.mean()
    rows = hypothesis_rows(shares)
    steps_mean, steps_std = episode_lengths(episodes)

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    table = "\n".join(
        f"| {r['row']} | {r['products']:.0f} | {r['cv']:.2f} | {pct(r['paper'])} ±"
        f"{100 * r['paper_std']:.0f} | {pct(r['lowest'])} | {pct(r['equal'])} | "
        f"{pct(r['mix_random'])} | "
        f"{pct(r['mix_cv'])} | {(r['paper'] - r['mix_cv']) / r['paper_std']:+.1f} | "
        f"{r['implied_low']:.1f} | {r['implied_cv']:.2f} | "
        f"{r['steps_for_reward_utilization']:,.0f} |" for r in rows)
    random_rows = "\n".join(
        f"| {name} | {figures[key]['mean']:.{digits}f} ±{figures[key]['std']:.{digits}f} |"
        for name, key, digits in [
            ("products per agent (mean over agents)", "products_per_agent", 1),
            ("products of the least productive agent", "products_min", 1),
            ("products of the most productive agent", "products_max", 1),
            ("CV of the agents' products", "products_cv", 2),
            ("products, all agents", "products", 1),
            *((f"products of {a} (recipe {list(DEFAULT_REQUIREMENTS[i])})", f"products/{a}", 1)
              for i, a in enumerate(agents)),
            ("utilization: share of collected gems in products", "utilization", 3),
            ("reward utilization: mean(u) / c, clipped", "reward_utilization", 3),
            ("CV of the utilities", "cv", 2),
            ("gems collected", "gems_collected", 1),
        ])
    g = gems_per_product()
    return f"""# Manufacturing Plant: the paper's measures

Written by

```
{command}
```

## Which utilization the paper reports

Hypothesis: the paper's plant utilization is the share of the collected gems that went
into products. A product of agent i consumes its recipe's gems ({g.tolist()} for agents
0-4) and an episode ends on the first step with more than {MAX_GEMS} gems collected
(so about {GEMS_PER_EPISODE}), so with per-agent products p_i the share is
sum_i g_i p_i / {GEMS_PER_EPISODE}. The paper gives each method's products per agent
(mean over agents) and the CV over agents, not the products of each agent, so the
prediction depends on how the products are spread:

* lowest possible: agents 0 and 4 make nothing, the other three all the products (any
  spread gives at least this share);
* equal: every agent makes the row's products;
* random mix: the agents' products in the proportions of uniform random play (below:
  {", ".join(f"{s:.2f}" for s in shares)} of the mean);
* CV mix: agents 0 and 4 (the 3-gem recipes) at one level below the other three, the
  gap set so that the CV over agents is the row's CV (the paper's CV is over utilities,
  which here are products plus a few 0.1 gem rewards). Of all spreads with the row's
  mean and CV, this one gives the lowest share (the share rises with p_0 + p_4 only).

{HEADER}
{table}

The last three columns: the products agents 0 and 4 would each need for the paper's
utilization exactly (the other three sharing the rest equally) and the CV over agents
that implies; and the episode length at which the generic utilization mean(u) / c
(c = {C}) would equal the paper's figure with the row's products per agent (gem
rewards ignored: they only lengthen it). Episodes are cut at {MAX_CYCLES:,} steps.

## Uniform random play ({episodes} episodes)

The `random_untrained` policy of the reproduction reports
(`policies.fen.references.random_policy_figures`, seed 0, episode k reset with seed k),
figures from the env's `episode_stats()`, mean ± std over episodes. Episode length:
{steps_mean:,.0f} ±{steps_std:,.0f} steps.

| figure | random play |
|---|---|
{random_rows}
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int_at_least(2), default=50)
    p.add_argument("--out", type=output_file, default="results/fen_plant_measure/README.md")
    args = p.parse_args(argv)
    command = "python scripts/measure_plant.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    text = page(command.strip(), args.episodes)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
