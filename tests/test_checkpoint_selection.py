"""Choosing a run's checkpoint on validation episodes (policies/checkpoint_selection.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policies import checkpoint_selection as selection
from policies.scheduler_comparison import STAT_KEYS


def figures(slowdown: float, cv: float) -> dict[str, float]:
    return {"slowdown": slowdown, "cv": cv}


def test_choose_takes_the_fairest_checkpoint_within_the_slowdown_limit() -> None:
    validation = {5: figures(3.0, 0.20), 10: figures(3.3, 0.15), 15: figures(3.4, 0.10),
                  20: figures(3.2, 0.15)}
    assert selection.choose(validation, figures(3.0, 0.19), 1.1) == 10  # 15 is too slow
    assert selection.choose(validation, figures(3.0, 0.19), 1.2) == 15
    assert selection.choose(validation, figures(2.0, 0.19), 1.1) is None
    # candidates (iteration, actions): a tie goes to the earlier iteration
    both = {(5, "sampled"): figures(3.0, 0.15), (5, "greedy"): figures(3.5, 0.10),
            (10, "greedy"): figures(3.1, 0.15)}
    assert selection.choose(both, figures(3.0, 0.19), 1.1) == (5, "sampled")
    assert selection.choose(both, figures(3.0, 0.19), 1.2) == (5, "greedy")


def cached_run(tmp_path: Path, iterations: tuple[int, ...] = (5, 10), **extra: Any) -> Path:
    checkpoints = tmp_path / "train" / "checkpoints"
    for it in iterations:
        (checkpoints / f"iter_{it:06d}").mkdir(parents=True)
    run = {"learner": "fen", "load": 0.7, "seed": 0, "episodes": 3, "eval_seed": 10_000,
           "env_kwargs": {"max_cycles": 30, "load": 0.7, "action_mask": True,
                          "reward_scale": 0.02},
           "checkpoint": str(checkpoints / f"iter_{max(iterations or (1,)):06d}"), **extra}
    path = tmp_path / "fen_load0.7_it10_s0.json"
    path.write_text(json.dumps(run))
    return path


def test_bad_runs_and_seeds_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'nowhere.json' is not a cached run"):
        selection.read_run("nowhere.json")
    (tmp_path / "x.json").write_text(json.dumps({"learner": "fen"}))
    with pytest.raises(ValueError, match="lacks \\['load', 'seed', 'checkpoint'"):
        selection.read_run(tmp_path / "x.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="checkpoints of .* are missing.*--checkpoint-every"):
        selection.read_run(cached_run(empty, iterations=()))
    run = selection.read_run(cached_run(tmp_path))
    assert sorted(run["checkpoints"]) == [5, 10]
    with pytest.raises(ValueError, match="overlap fen_load0.7_it10_s0's evaluation episodes "
                                         "\\(10000..10002\\)"):
        selection.check_validation_seeds(run, 9_999, 2)
    with pytest.raises(ValueError, match="warm-start demonstrations \\(1000..1049\\)"):
        selection.check_validation_seeds(run, 1_040, 5)
    selection.check_validation_seeds(run, 10_003, 5)
    with pytest.raises(ValueError, match="evaluation episodes \\(10000..10049\\)"):
        selection.check_validation_seeds(run, 10_003, 5, eval_episodes=50)
    args = selection.parse_args([str(cached_run(tmp_path / "r"))])
    args.reference = "fairest"
    with pytest.raises(ValueError, match="unknown --reference 'fairest'"):
        selection.run(args, "t")
    with pytest.raises(ValueError, match="--eval-episodes must be >= 2 .*got 1"):
        selection.run(selection.parse_args([str(tmp_path / "r" / "x.json"), "--eval-episodes",
                                            "1"]), "t")


def test_selection_reports_the_choice_and_its_evaluation(tmp_path: Path, monkeypatch: Any
                                                          ) -> None:
    """The learner's evaluation is stubbed (no training here): checkpoint 10 is fair but
    slow, checkpoint 5 fair enough and fast; DRF runs for real."""
    import policies.training

    calls = []

    def fake_evaluation(checkpoint: str, *, episodes: int, seed: int, sample: bool
                        ) -> dict[str, Any]:
        calls.append((Path(checkpoint).name, seed, sample))
        slow = checkpoint.endswith("10")
        stats = dict.fromkeys(STAT_KEYS.values(), 1.0)
        return {"per_episode": [{**stats, "avg_slowdown": 50.0 if slow else 0.5 + 0.1 * i,
                                 "cv": 0.0 if slow else 0.01 * i} for i in range(episodes)]}

    monkeypatch.setattr(policies.training, "evaluate_checkpoint", fake_evaluation)
    md, out = tmp_path / "sel.md", tmp_path / "sel.json"
    report = selection.run(selection.parse_args(
        [str(cached_run(tmp_path)), "--episodes", "2", "--eval-episodes", "4", "--md", str(md),
         "--json", str(out)]), "python scripts/select_checkpoint.py ...")
    (s,) = report["selections"]
    assert s["chosen"] == 5
    # the stub's CVs (0.00, 0.01) and slowdowns (0.5, 0.6) beat any scheduler's
    assert s["verdict"] == "met" and s["cv_difference"][0] < 0 and s["slowdown_ratio"] < 1
    # validation on 20000.., then one evaluation of the chosen checkpoint on 4 episodes
    # from the run's first evaluation seed (the run itself was evaluated on 3)
    assert calls == [("iter_000005", 20_000, True), ("iter_000010", 20_000, True),
                     ("iter_000005", 10_000, True)]
    assert len(s["evaluation"]["cv_episodes"]) == len(s["reference_evaluation"]["cv_episodes"]) == 4
    assert "Evaluation episodes (seeds 10000..10003)" in md.read_text()
    assert "next to drf, on 4 episodes from the run's first evaluation seed" in md.read_text()
    assert s["reference_evaluation"]["slowdown_episodes"] != s["reference_validation"][
        "slowdown_episodes"]
    assert "| 5 (chosen) |" in md.read_text()
    assert json.loads(out.read_text())["selections"][0]["chosen"] == 5


def stub_evaluation(monkeypatch: Any, calls: list[tuple[str, int, bool]],
                    greedy_cv: float = 1.0) -> None:
    """Checkpoint 10 (the last) is fair but slow, checkpoint 5 fair enough and fast; greedy
    actions add 1 to every slowdown and multiply the CV by ``greedy_cv``."""
    import policies.training

    def fake_evaluation(checkpoint: str, *, episodes: int, seed: int, sample: bool
                        ) -> dict[str, Any]:
        calls.append((Path(checkpoint).name, seed, sample))
        slow = checkpoint.endswith("10")
        stats = dict.fromkeys(STAT_KEYS.values(), 1.0)
        cv = 1.0 if sample else greedy_cv
        return {"per_episode": [{**stats, "cv": 0.0 if slow else 0.01 * i * cv,
                                 "avg_slowdown": (50.0 if slow else 0.5 + 0.1 * i)
                                 + (not sample)} for i in range(episodes)]}

    monkeypatch.setattr(policies.training, "evaluate_checkpoint", fake_evaluation)


def test_cached_selection_is_kept_in_the_runs_json(tmp_path: Path, monkeypatch: Any) -> None:
    calls: list[tuple[str, int, bool]] = []
    stub_evaluation(monkeypatch, calls)
    path = cached_run(tmp_path)
    chosen = selection.cached_selection(path, episodes=2)
    assert chosen["chosen"] == 5 and chosen["verdict"] == "met"
    # the run's own 3 evaluation episodes, sampled and greedy
    assert calls[2:] == [("iter_000005", 10_000, True), ("iter_000005", 10_000, False)]
    assert chosen["evaluation_greedy"]["slowdown"] == pytest.approx(
        chosen["evaluation"]["slowdown"] + 1)
    assert len(chosen["evaluation"]["cv_episodes"]) == 3
    kept = json.loads(path.read_text())["selections"]
    assert list(kept) == ["drf_seed20000_n2_ratio1.1"]
    # the checkpoints gone, the choice is read back, not made again
    for checkpoint in (tmp_path / "train" / "checkpoints").iterdir():
        checkpoint.rmdir()
    calls.clear()
    assert selection.cached_selection(path, episodes=2) == chosen and calls == []
    with pytest.raises(ValueError, match="checkpoints of .* are missing"):
        selection.cached_selection(path, episodes=3)  # another choice needs them again


def test_a_choice_among_sampled_and_greedy_actions(tmp_path: Path, monkeypatch: Any) -> None:
    """``actions="both"``: every checkpoint is validated sampled and greedy; the greedy
    checkpoint 5 (CV halved, within the slowdown limit of 1.1 x DRF's) is chosen, and
    evaluated greedily, once."""
    calls: list[tuple[str, int, bool]] = []
    stub_evaluation(monkeypatch, calls, greedy_cv=0.5)
    path = cached_run(tmp_path)
    chosen = selection.cached_selection(path, episodes=2, actions="both")
    assert (chosen["chosen"], chosen["chosen_actions"]) == (5, "greedy")
    assert calls == [("iter_000005", 20_000, True), ("iter_000005", 20_000, False),
                     ("iter_000010", 20_000, True), ("iter_000010", 20_000, False),
                     ("iter_000005", 10_000, False)]
    assert chosen["evaluation_greedy"] == chosen["evaluation"]
    assert selection.chosen_validation(chosen) == chosen["validation_greedy"]["5"]
    assert chosen["validation"]["5"]["cv"] == pytest.approx(2 * chosen["validation_greedy"][
        "5"]["cv"])
    kept = json.loads(path.read_text())["selections"]
    assert list(kept) == ["drf_seed20000_n2_ratio1.1_actionsboth"]
    with pytest.raises(ValueError, match="unknown validation actions 'argmax'; allowed: "
                                         r"\['sampled', 'both'\]"):
        selection.cached_selection(path, actions="argmax")
    md = tmp_path / "sel.md"
    report = selection.run(selection.parse_args(
        [str(path), "--episodes", "2", "--actions", "both", "--md", str(md),
         "--json", str(tmp_path / "sel.json")]), "t")
    assert report["selections"][0]["chosen_actions"] == "greedy"
    text = md.read_text()
    assert "| 5 (chosen) | greedy |" in text and "| 5 | sampled |" in text
    assert "iteration 5 (greedy) CV" in text


def fake_training(config: Any, *, iterations: int, logdir: Path, checkpoint_every: int,
                  **_: Any) -> dict[str, Any]:
    """run_training stubbed out: it leaves a checkpoint every ``checkpoint_every``."""
    for it in range(checkpoint_every, iterations + 1, checkpoint_every):
        (logdir / "checkpoints" / f"iter_{it:06d}").mkdir(parents=True)
    return {"checkpoint": str(logdir / "checkpoints" / f"iter_{iterations:06d}"),
            "env_steps": 0, "latest_metrics": {}}


def comparison_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--loads", "0.7", "--episodes", "3", "--max-cycles", "30", "--learners", "fen",
            "--fen-iterations", "10", "--json", str(tmp_path / "ra.json"),
            "--md", str(tmp_path / "ra.md"), "--plot", str(tmp_path / "ra.png"),
            "--runs-dir", str(tmp_path / "runs"), "--train-dir", str(tmp_path / "train"),
            *extra]


def test_comparison_reports_the_checkpoint_chosen_on_validation(tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    """``compare_schedulers.py --fen-select-on-validation``: FEN's rows and its target are
    the chosen checkpoint's, the last one is shown next to it; training is stubbed out
    (it leaves checkpoints 5 and 10), DRF runs for real."""
    import policies.training
    from policies.scheduler_comparison import parse_args, run

    calls: list[tuple[str, int, bool]] = []
    stub_evaluation(monkeypatch, calls)
    monkeypatch.setattr(policies.training, "run_training", fake_training)
    monkeypatch.setattr(policies.training, "init_ray", lambda address: None)
    args = comparison_args(tmp_path, "--checkpoint-every", "5", "--fen-select-on-validation",
                           "--validation-episodes", "2")
    table = run(parse_args(args), "python scripts/compare_schedulers.py ...")
    assert table["fen"]["0.7"]["cv"] == pytest.approx(0.01)  # checkpoint 5's, not 10's 0.0
    assert table["fen_greedy"]["0.7"]["slowdown"] == pytest.approx(0.6 + 1)
    report = (tmp_path / "ra.md").read_text()
    assert "## FEN's checkpoint, chosen on validation episodes" in report
    assert "| 0.7 |" in report and "| 2 | iteration 5 | 0.55 / 0.005 |" in report
    assert "| 0.000 / 50.00 (it 10) |" in report  # the last checkpoint, for comparison
    assert "FEN (its checkpoints chosen on validation episodes) with a lower CV" in report
    # written again without checkpoints: the same figures, from the run's JSON
    import shutil

    shutil.rmtree(tmp_path / "train")
    calls.clear()
    assert run(parse_args(args), "again") == table and calls == []


def test_comparison_can_choose_how_fen_acts_on_validation(tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    """``--fen-select-actions both``: FEN's row ``fen`` is the chosen candidate acting as
    chosen (here greedily), and the report says so."""
    import policies.training
    from policies.scheduler_comparison import parse_args, run

    stub_evaluation(monkeypatch, [], greedy_cv=0.5)
    monkeypatch.setattr(policies.training, "run_training", fake_training)
    monkeypatch.setattr(policies.training, "init_ray", lambda address: None)
    table = run(parse_args(comparison_args(
        tmp_path, "--checkpoint-every", "5", "--fen-select-on-validation",
        "--validation-episodes", "2", "--fen-select-actions", "both")), "test")
    assert table["fen"]["0.7"] == table["fen_greedy"]["0.7"]
    assert table["fen"]["0.7"]["cv"] == pytest.approx(0.005)  # greedy: half of 0.01
    report = (tmp_path / "ra.md").read_text()
    assert "| iteration 5, greedy |" in report
    assert "`--fen-select-actions both`" in report
    # FEN's target judged on 5 evaluation episodes; the tables' rows stay on the 3
    again = run(parse_args(comparison_args(
        tmp_path, "--checkpoint-every", "5", "--fen-select-on-validation",
        "--validation-episodes", "2", "--fen-select-actions", "both",
        "--fen-target-episodes", "5")), "test")
    assert again == table
    kept = json.loads(next((tmp_path / "runs").glob("fen_*.json")).read_text())["selections"]
    chosen = kept["drf_seed20000_n2_ratio1.1_actionsboth_eval5"]
    assert len(chosen["evaluation"]["cv_episodes"]) == 5
    assert len(chosen["evaluation_rows"]["cv_episodes"]) == 3
    report = (tmp_path / "ra.md").read_text()
    assert "judged on 5 evaluation episodes from the first one" in report
    assert "5 episodes: CV FEN / DRF, difference" in report


@pytest.mark.parametrize("extra, match", [
    (["--validation-episodes", "5"], "--validation-episodes applies with "
                                     "--fen-select-on-validation only"),
    (["--fen-select-on-validation"], "checkpoints of --checkpoint-every N; give N >= 1"),
    (["--fen-select-on-validation", "--checkpoint-every", "5", "--learners", "ppo"],
     "--fen-select-on-validation applies to learner 'fen'"),
    (["--fen-select-on-validation", "--checkpoint-every", "5", "--validation-episodes", "1"],
     "--validation-episodes must be >= 2, got 1"),
    (["--fen-select-on-validation", "--checkpoint-every", "5", "--validation-episodes", "0"],
     "--validation-episodes must be >= 2, got 0"),
    (["--fen-select-actions", "both"], "--fen-select-actions applies with "
                                       "--fen-select-on-validation only"),
    (["--fen-target-episodes", "50"], "--fen-target-episodes applies with "
                                      "--fen-select-on-validation only"),
    (["--fen-select-on-validation", "--checkpoint-every", "5", "--fen-target-episodes", "1"],
     "--fen-target-episodes must be >= 2 \\(a paired SE needs two\\), got 1"),
    (["--fen-select-on-validation", "--checkpoint-every", "5", "--fen-select-actions", "argmax"],
     "unknown --fen-select-actions 'argmax'"),
    (["--fen-select-on-validation", "--checkpoint-every", "5", "--validation-seed", "10001"],
     "overlap this comparison's evaluation episodes \\(10000..10002\\)"),
])
def test_comparison_rejects_bad_validation_flags(tmp_path: Path, extra: list[str],
                                                 match: str) -> None:
    from policies.scheduler_comparison import parse_args, run

    with pytest.raises(ValueError, match=match):
        run(parse_args(comparison_args(tmp_path, *extra)), "test")
    assert not (tmp_path / "ra.json").exists()
