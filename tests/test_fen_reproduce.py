"""The reproduction driver's bookkeeping: figures from TensorBoard, aggregation, table."""

import math

import pytest

from policies.fen.reproduce import ReproductionPlan, aggregate, final_figures, markdown_table


def test_final_figures_take_the_latest_finite_value(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    for step, value in enumerate([0.2, 0.5, math.nan], start=1):
        writer.add_scalar("fairness/utilization", value, step)
    writer.add_scalar("fairness/cv", 0.3, 1)
    writer.add_scalar("fairness/controller/choice_freq/sub0", 0.4, 1)
    writer.add_scalar("loss/ctrl/total_loss", 1.0, 1)
    writer.close()
    figures = final_figures(tmp_path / "tb")
    assert figures["metrics"] == pytest.approx({"utilization": 0.5, "cv": 0.3})
    assert figures["controller"] == pytest.approx({"controller/choice_freq/sub0": 0.4})
    # the learning curves, finite values only, kept in final.json for fresh clones
    assert figures["curves"] == {"fairness/utilization": [[1, pytest.approx(0.2)],
                                                          [2, pytest.approx(0.5)]],
                                 "fairness/cv": [[1, pytest.approx(0.3)]]}
    assert final_figures(tmp_path / "missing") == {
        "metrics": {}, "controller": {}, "curves": {"fairness/utilization": [], "fairness/cv": []}}


def test_learning_curves_come_from_final_json_or_from_tensorboard(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from policies.fen.reproduce import plot_learning_curves, run_curve

    kept = {"variant": "fen", "seed": 0, "curves": {"fairness/utilization": [[1, 0.1], [2, 0.3]]}}
    steps, values = run_curve(kept, "fairness/utilization")
    assert steps.tolist() == [1, 2] and values.tolist() == [0.1, 0.3]
    assert run_curve(kept, "fairness/cv")[0].size == 0  # no TensorBoard dir to fall back on
    writer = SummaryWriter(log_dir=str(tmp_path / "run" / "tb"))  # an older final.json
    writer.add_scalar("fairness/cv", 0.4, 3)
    writer.close()
    older = {"variant": "independent", "seed": 0, "dir": tmp_path / "run"}
    assert run_curve(older, "fairness/cv")[1].tolist() == [pytest.approx(0.4)]
    lost = {"variant": "min", "seed": 0}  # neither curves nor TensorBoard files
    assert plot_learning_curves("job_scheduling", [kept, older, lost], tmp_path / "c.png") == 2
    assert (tmp_path / "c.png").stat().st_size > 0
    from policies.fen.reproduce import curve_note

    assert curve_note(3, 3) == ""
    assert "the curves of 2 of the 3 runs" in curve_note(2, 3)


def test_aggregate_and_table_against_the_paper():
    finals = [
        {"variant": "fen", "seed": s, "metrics": {"utilization": u, "cv": 0.1,
                                                   "min_utility": 0.2, "max_utility": 0.3}}
        for s, u in ((0, 0.8), (1, 0.9))
    ]
    table = aggregate(finals, "job_scheduling")
    assert table["fen"]["utilization"] == pytest.approx({"mean": 0.85, "std": 0.05, "seeds": 2})
    md = markdown_table("job_scheduling", table)
    assert "| fen | 2 | 85.0% ±5.0 | 90.0% ±5.0 |" in md


def test_plan_validation(tmp_path):
    with pytest.raises(ValueError, match="unknown FEN variant"):
        ReproductionPlan("job_scheduling", ["fen", "best"], [0], 1, tmp_path)
    with pytest.raises(ValueError, match="at least one seed"):
        ReproductionPlan("job_scheduling", ["fen"], [], 1, tmp_path)
    plan = ReproductionPlan("job_scheduling", ["fen"], [3], 1, tmp_path)
    assert plan.run_dir("fen", 3) == tmp_path / "job_scheduling" / "fen" / "seed3"


def test_utilization_breakdown_averages_the_controller_figures_over_seeds():
    from policies.fen.reproduce import utilization_breakdown

    def final(variant, share0, use1):
        return {"variant": variant, "controller": {
            "controller/steps_with_0_on_sub0": share0,
            "controller/utilization_with_0_on_sub0": 0.1,
            "controller/steps_with_1_on_sub0": 1 - share0,
            "controller/utilization_with_1_on_sub0": use1,
        }}

    md = utilization_breakdown([final("fen", 0.2, 0.6), final("fen", 0.4, 0.8),
                                {"variant": "independent", "controller": {}}])
    assert "| fen | 0 | 0.30 | 0.10 | 2 |" in md
    assert "| fen | 1 | 0.70 | 0.70 | 2 |" in md
    assert "independent" not in md
    assert utilization_breakdown([{"variant": "avg", "controller": {}}]) == ""


def test_runs_of_other_dirs_join_the_report_labelled_by_their_options(tmp_path):
    import json

    from policies.fen.reproduce import finished_runs

    def write_run(runs_dir, variant, seed, utilization, fen_options, iterations=20):
        run = runs_dir / "job_scheduling" / variant / f"seed{seed}"
        run.mkdir(parents=True)
        metrics = {"utilization": utilization, "cv": 0.1, "min_utility": 0.2, "max_utility": 0.3}
        (run / "final.json").write_text(json.dumps(
            {"variant": variant, "seed": seed, "metrics": metrics,
             "training_iteration": iterations}))
        (run / "run_info.json").write_text(json.dumps({"fen_options": fen_options}))

    # runs recorded before the presets: their options sit on the authors' behaviour
    write_run(tmp_path / "paper", "fen", 0, 0.6, {"feature_scale": 2.0})
    write_run(tmp_path / "long", "avg", 0, 0.95, {}, iterations=60)
    write_run(tmp_path / "paper", "avg", 0, 0.9, {})
    for seed, u in ((0, 0.8), (1, 1.0)):
        write_run(tmp_path / "period", "fen", seed, u, {"efficiency": "period"})
    plan = ReproductionPlan("job_scheduling", ["fen"], [0], 1, tmp_path / "paper",
                            also_report=[tmp_path / "period", tmp_path / "long"])
    finals = finished_runs(plan)
    # runs of one setup with different budgets are told apart by their iterations
    authors, period = "fen [preset=authors, feature_scale=2.0]", "fen [segment_end=terminate]"
    assert [f["label"] for f in finals] == [authors, "avg", period, period, "avg (60 it)"]
    table = aggregate(finals, "job_scheduling")
    assert list(table) == [authors, period, "avg", "avg (60 it)"]
    assert "| avg (60 it) | 1 | 95.0% ±0.0 | 84.0% ±7.0 |" in markdown_table("job_scheduling",
                                                                         table)
    finals = [f for f in finals if f["variant"] == "fen"]
    table = aggregate(finals, "job_scheduling")
    assert table[period]["utilization"]["mean"] == pytest.approx(0.9)
    md = markdown_table("job_scheduling", table)
    # a labelled row sits beside the paper's figure of its variant
    assert f"| {period} | 2 | 90.0% ±10.0 | 90.0% ±5.0 |" in md
    # the iterations column tells rows of different budgets apart
    from policies.fen.reproduce import training_budgets

    for f, its in zip(finals, (20, 40, 60), strict=True):
        f["training_iteration"] = its
    budgets = training_budgets(finals)
    assert budgets == {authors: "20", period: "40-60"}
    assert f"| {period} | 2 | 40-60 | 90.0% ±10.0 |" in markdown_table(
        "job_scheduling", table, budgets)


def test_report_dirs_and_rows_are_never_counted_twice(tmp_path):
    import json

    from policies.fen.reproduce import finished_runs

    with pytest.raises(ValueError, match="given twice"):
        ReproductionPlan("job_scheduling", ["fen"], [0], 1, tmp_path,
                         also_report=[tmp_path / "." / ""])
    for name in ("a", "b"):  # the same setup and seed in two dirs
        run = tmp_path / name / "job_scheduling" / "fen" / "seed0"
        run.mkdir(parents=True)
        (run / "final.json").write_text(json.dumps(
            {"variant": "fen", "seed": 0, "metrics": {}, "training_iteration": 20}))
    plan = ReproductionPlan("job_scheduling", ["fen"], [0], 1, tmp_path / "a",
                            also_report=[tmp_path / "b"])
    with pytest.raises(ValueError, match="would hold seed 0 twice"):
        finished_runs(plan)


def test_labels_name_only_the_options_a_variant_uses():
    from policies.fen.reproduce import label_variant, run_label
    from policies.fen.variants import options_for

    options = {"feature_scale": 10.0, "efficiency": "period", "gossip_rounds": 3}
    assert run_label("independent", options) == "independent"
    assert run_label("fen_no_hierarchy", options) == "fen_no_hierarchy [feature_scale=10.0]"
    assert run_label("fen", options) == "fen [efficiency=period, feature_scale=10.0]"
    # fields set with --set tell rows apart too
    assert run_label("independent", options, {"minibatch_size": 128}) == \
        "independent [minibatch_size=128]"
    assert run_label("fen", {}, {"lr": 1e-4}) == "fen [lr=0.0001]"
    assert options_for("fen_gossip", options) == options
    assert label_variant("fen [efficiency=period] (60 it)") == "fen"


def test_presets_and_recorded_options():
    from policies.fen.reproduce import run_label
    from policies.fen.variants import RESOLVED_KEY, preset_options, recorded_options

    # the defaults: nothing to name; the authors' preset as one word; flags win over it
    assert preset_options(None, {"efficiency": "period", "segment_end": "truncate"}) == {}
    authors = preset_options("authors", {}, "fen")
    assert authors == {"efficiency": "episode", "segment_end": "terminate"}
    assert run_label("fen", authors) == "fen [preset=authors]"
    gossip = preset_options("authors", {}, "fen_gossip")
    assert gossip == {**authors, "gossip_graph": "random3"}
    assert run_label("fen_gossip", gossip) == "fen_gossip [preset=authors]"
    # an older fen_gossip run with today's window and segments gossiped on random3
    older = {"fen_options": {"efficiency": "period", "segment_end": "truncate"}}
    assert run_label("fen_gossip", recorded_options("fen_gossip", older)) == \
        "fen_gossip [gossip_graph=random3]"
    assert preset_options("authors", {"efficiency": "period"}, "fen") == {
        "segment_end": "terminate"}
    assert preset_options("authors", {}, "min") == {}  # a flat variant uses neither
    with pytest.raises(ValueError, match="unknown FEN preset 'fast'; allowed: \\['authors'\\]"):
        preset_options("fast", {})
    # a run recorded since the presets names every default; an older one did not
    new = {RESOLVED_KEY: {"efficiency": "period", "segment_end": "truncate"}}
    assert recorded_options("fen", new) == {}
    assert recorded_options("fen", {}) == authors
    assert recorded_options("fen", {"fen_options": {"efficiency": "period",
                                                    "segment_end": "truncate"}}) == {}
    # sub-policy options are 0-based now: an older run's subpolicy1_entropy is sub0's
    old = {"fen_options": {"efficiency": "period", "segment_end": "truncate",
                           "subpolicy1_entropy": 0.01}}
    assert recorded_options("fen", old) == {"subpolicy0_entropy": 0.01}


def test_the_sampler_reaches_the_hierarchical_variants_only(tmp_path, monkeypatch):
    from pathlib import Path

    import policies.fen.config
    import policies.training
    from policies.fen.reproduce import run_one

    seen: dict[str, str] = {}

    def fake_config(env, variant, **kw):
        seen[variant] = kw["sampler"]
        return object()

    def fake_training(config, *, logdir, **kw):
        from torch.utils.tensorboard import SummaryWriter

        SummaryWriter(str(Path(logdir) / "tb")).close()
        return {"training_iteration": 1, "env_steps": 10, "wall_time_s": 1.0}

    monkeypatch.setattr(policies.fen.config, "build_fen_config", fake_config)
    monkeypatch.setattr(policies.training, "run_training", fake_training)
    plan = ReproductionPlan("job_scheduling", ["fen", "avg"], [0], 1, tmp_path, sampler="vector")
    for variant in ("fen", "avg"):
        run_one(plan, variant, 0)
    assert seen == {"fen": "vector", "avg": "multi_agent"}
