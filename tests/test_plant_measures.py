"""The Manufacturing Plant measured as the paper measures it (issue 23, item 6): products
per agent, the gem-share utilization, random play's figures and the plant report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import marl_envs
from policies.experiments.report import load_summaries, write_report
from policies.experiments.spec import load_experiment
from policies.fen.references import PAPER, PLANT_METRICS, PLANT_PRODUCTS, random_policy_figures

PLANT = "manufacturing_plant"
ROOT = Path(__file__).resolve().parents[1]
SHIFT = 1  # the plant keeps cells shifted by this much inside its padded grids
STAY, XP = 0, 2
FAR = (2, 7)  # an inner cell no agent of the scripted episode reaches


def put(env: Any, agents: dict[int, tuple[int, int]], gems: list[tuple[tuple[int, int], int]]
        ) -> None:
    """Place agents (index -> cell; the others parked on the border, outside the inner
    square gems respawn in) and gems ((cell, type)), cells in 1..grid_size."""
    parked = [(8, 1), (8, 3), (8, 5), (8, 7), (1, 8)]
    cells = [agents.get(i, parked[i]) for i in range(env.n_agents)]
    env._positions = np.array(cells, dtype=np.int64) + SHIFT
    env._occupied[:] = False
    env._occupied[env._positions[:, 0], env._positions[:, 1]] = True
    env._gems = np.array([c for c, _ in gems], dtype=np.int64) + SHIFT
    env._gem_types = np.array([t for _, t in gems], dtype=np.int64)
    env._paint_gems()


def step(env: Any, movers: tuple[int, ...]) -> None:
    env.step({a: (XP if i in movers else STAY) for i, a in enumerate(env.possible_agents)})


def scripted_episode(**kw: Any) -> Any:
    """agent_0 (recipe [2, 1, 0]) walks down column 3 collecting types 0, 0, 1 (a product
    of 3 gems) and then 2 (unused); agent_1 (recipe [1, 0, 1]) walks down column 5
    collecting types 0, 2 (a product of 2 gems). 6 gems collected, 5 in products."""
    env = marl_envs.make(PLANT, n_gems=2, **kw)
    env.reset(seed=0)
    put(env, {0: (3, 3), 1: (3, 5)}, [((4, 3), 0), ((4, 5), 0)])
    step(env, (0, 1))
    put(env, {0: (4, 3), 1: (4, 5)}, [((5, 3), 0), ((5, 5), 2)])
    step(env, (0, 1))
    put(env, {0: (5, 3), 1: (5, 5)}, [((6, 3), 1), (FAR, 0)])
    step(env, (0,))
    put(env, {0: (6, 3), 1: (5, 5)}, [((7, 3), 2), (FAR, 0)])
    step(env, (0,))
    return env


def test_scripted_episode_products_per_agent_and_gem_utilization() -> None:
    env = scripted_episode(max_fair_utility=100.0)
    assert env.total_gems == 6 and env._total_products.tolist() == [1, 1, 0, 0, 0]
    stats = env.episode_stats()
    assert stats["products"] == 2
    assert stats["products_per_agent"] == pytest.approx(0.4)
    assert (stats["products_min"], stats["products_max"]) == (0, 1)
    # [1, 1, 0, 0, 0]: mean 0.4, sample std sqrt(0.3)
    assert stats["products_cv"] == pytest.approx(np.sqrt(0.3) / 0.4)
    assert {k: v for k, v in stats.items() if k.startswith("products/")} == {
        "products/agent_0": 1, "products/agent_1": 1, "products/agent_2": 0,
        "products/agent_3": 0, "products/agent_4": 0}
    assert stats["gems_collected"] == 6
    # 3 + 2 of the 6 collected gems went into products
    assert stats["utilization"] == pytest.approx(5 / 6)
    assert env.gems_consumed == 5 and env.gem_utilization == pytest.approx(5 / 6)
    # the generic mean(u) / c: rewards 1.1 (agent_0: +0.1 for its first type-0 gem, +1)
    # and 1.0 over 4 steps and 5 agents
    assert stats["reward_utilization"] == pytest.approx((2.1 / 4 / 5) / 100.0)
    assert stats["reward_utilization"] == env.fairness_report().utilization


def test_gem_utilization_before_any_gem_and_with_the_default_c() -> None:
    env = marl_envs.make(PLANT)
    env.reset(seed=0)
    stats = env.episode_stats()
    assert stats["utilization"] == 0.0 and stats["products_per_agent"] == 0.0
    assert stats["products_cv"] == 0.0  # every agent at 0: no NaN
    # with c = 0.003 the generic utilization saturates on two products in four steps; the
    # gem share does not
    stats = scripted_episode().episode_stats()
    assert stats["reward_utilization"] == 1.0
    assert stats["utilization"] == pytest.approx(5 / 6)


def test_random_play_figures_are_on_the_per_agent_scale() -> None:
    figures = random_policy_figures(PLANT, {}, episodes=5)
    assert set(figures) == set(PLANT_METRICS)
    mean = {k: f["mean"] for k, f in figures.items()}
    # 50 episodes (results/fen_plant_measure/README.md): 35.0 per agent, least 21.2, most 49.2,
    # utilization 0.566, total 174.9, generic utilization 1.0
    assert 30 < mean["products_per_agent"] < 40
    assert 15 < mean["products_min"] < mean["products_per_agent"] < mean["products_max"] < 56
    assert 0.2 < mean["products_cv"] < 0.5
    assert mean["products"] == pytest.approx(5 * mean["products_per_agent"])
    assert 0.45 < mean["utilization"] < 0.7
    assert mean["reward_utilization"] == 1.0
    agents = random_policy_figures(PLANT, {}, episodes=5,
                                   names=[f"products/agent_{i}" for i in range(5)])
    per_agent = [agents[f"products/agent_{i}"]["mean"] for i in range(5)]
    # the 3-gem recipes of agents 0 and 4 make fewer products than the 2-gem ones
    assert max(per_agent[0], per_agent[4]) < min(per_agent[1:4])


def test_the_paper_columns_compare_like_with_like() -> None:
    for row in PAPER[PLANT].values():
        assert set(row) == {"utilization", "cv", "products_per_agent"}
    assert PAPER[PLANT]["fen"]["products_per_agent"] == (48, 3)
    study = load_experiment(ROOT / "results" / "fen_manufacturing_plant" / "experiment.yaml")
    columns = study.report["metrics"]
    assert set(PLANT_METRICS) <= set(columns) and set(PLANT_PRODUCTS) <= set(columns)


def test_plant_report_puts_products_per_agent_beside_the_paper(tmp_path: Path) -> None:
    """The plant study's report from its committed trials: the paper's products per agent
    beside each row, and the runs recorded before the plant logged it named, with '-'
    rather than their generic utilization of 100% under the gem-share heading."""
    folder = ROOT / "results" / "fen_manufacturing_plant"
    study = load_experiment(folder / "experiment.yaml")
    summaries = load_summaries(folder / "trials")
    old = [s for s in summaries if "products_per_agent" not in s["metrics"]]
    assert old and all("utilization" not in s["metrics"] for s in old)
    assert all(s["metrics"]["reward_utilization"] == 1.0 for s in old)
    write_report(study, summaries, tmp_path, ["cmd"])
    md = (tmp_path / "report.md").read_text()
    beside = [line for line in md.splitlines()
              if line.startswith("| variant=independent [imported] | 1 | 20 | - / 28%")]
    assert len(beside) == 1 and beside[0].endswith("| - / 19.0 ±3.0 |")
    assert "Rows recorded before the plant logged products per agent" in md
    assert "| *paper: fen* | - | - | 82.0% ±5.0 | 0.100 ±0.030 | 48.0 ±3.0 |" in md


def test_measure_script_hypothesis_rows(load_script) -> None:
    module = load_script("measure_plant")
    assert module.gems_per_product().tolist() == [3, 2, 2, 2, 3]
    low = np.array([True, False, False, False, True])
    p = module.two_level(20.0, 0.3, low)
    assert p.mean() == pytest.approx(20.0) and np.std(p, ddof=1) / 20 == pytest.approx(0.3)
    assert p[0] == p[4] < p[1] == p[2] == p[3]
    rows = {r["row"]: r for r in module.hypothesis_rows(np.ones(5))}
    # every agent making FEN's 48: 48 * 12 of 701 gems
    assert rows["FEN"]["equal"] == pytest.approx(48 * 12 / 701)
    assert rows["FEN"]["mix_random"] == rows["FEN"]["equal"]  # equal shares given
    for r in rows.values():
        assert r["lowest"] <= r["mix_cv"] <= r["equal"]
        assert abs(r["paper"] - r["mix_cv"]) < r["paper_std"]  # within one paper std
        assert r["steps_for_reward_utilization"] > 10_000  # mean(u)/c cannot give it
