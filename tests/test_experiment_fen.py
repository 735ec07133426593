"""FEN's paper studies on the experiment layer (``results/fen_<env>/``, trial kind ``fen``):
report-only from the committed trials alone, the kind's parameter errors, row labels of
FEN options and presets, and the imported trials of each study."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from policies.experiments.cli import main
from policies.experiments.kinds import get_kind
from policies.experiments.report import load_summaries, row_label
from policies.experiments.spec import ExperimentError, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("fen_job_scheduling", "fen_matthew_effect", "fen_manufacturing_plant")


def fen_experiment(**params):
    return {"name": "fen_tiny", "trial": {"kind": "fen", "params": {"env": "job_scheduling",
                                                                   **params}},
            "search": {"seed": [0]}, "stop": {"iterations": 1}}


def test_report_only_on_a_copy_rewrites_the_same_report(tmp_path, monkeypatch):
    """A fresh clone rewrites a FEN study's report from its committed files alone."""
    study = tmp_path / "results" / "fen_matthew_effect"
    shutil.copytree(ROOT / "results" / "fen_matthew_effect", study)
    (study / "report.md").unlink()
    (study / "report.json").unlink()
    monkeypatch.chdir(tmp_path)  # the report names its files relative to the working dir
    assert main([str(Path("results/fen_matthew_effect/experiment.yaml")),
                 "--out", "results/fen_matthew_effect", "--report-only"]) == 0
    committed = ROOT / "results" / "fen_matthew_effect"
    assert (study / "report.md").read_text() == (committed / "report.md").read_text()
    assert (json.loads((study / "report.json").read_text())
            == json.loads((committed / "report.json").read_text()))


@pytest.mark.parametrize("params, message", [
    ({"variant": "fenn"}, "unknown FEN variant 'fenn'; allowed: ['fen', 'fen_gossip'"),
    ({"fen_options": {"perod": 10}}, "unknown FEN options ['perod']; allowed: ["),
    ({"preset": "paper"}, "unknown FEN preset 'paper'; allowed: ['authors']"),
    ({"sampler": "fast"}, "'fast'"),
])
def test_bad_fen_params_name_the_value(params, message):
    with pytest.raises(ExperimentError) as e:
        parse_experiment(fen_experiment(**params))
    assert message in str(e.value)
    assert str(e.value).startswith("trial seed=0: ")


def test_a_searched_bad_variant_names_its_trial():
    data = fen_experiment()
    data["search"] = {"variant": ["fen", "fne"]}
    with pytest.raises(ExperimentError, match=r"trial variant=fne: unknown FEN variant 'fne'"):
        parse_experiment(data)


def test_presets_and_options_label_the_rows():
    from policies.fen.variants import preset_options

    # the defaults: nothing to name; the authors' preset as one word; flags win over it
    assert preset_options(None, {"efficiency": "period", "segment_end": "truncate"}) == {}
    authors = preset_options("authors", {}, "fen")
    assert authors == {"efficiency": "episode", "segment_end": "terminate"}
    assert preset_options("authors", {}, "fen_gossip") == {**authors, "gossip_graph": "random3"}
    assert preset_options("authors", {"efficiency": "period"}, "fen") == {
        "segment_end": "terminate"}
    assert preset_options("authors", {}, "min") == {}  # a flat variant uses neither
    exp = parse_experiment({**fen_experiment(), "search": {"variant": ["fen"], "seed": [0]}})
    grid = exp.trials()[0]

    def label(**changes):
        return row_label(exp, {"point": grid.point, "iterations": 1,
                               "params": {**grid.params, **changes}})

    assert label() == "variant=fen"
    assert label(preset="authors") == "variant=fen [preset=authors]"
    assert label(fen_options={"controller_horizon": "episode"}, overrides={"lr": 0.001}) == (
        "variant=fen [fen_options.controller_horizon=episode, overrides.lr=0.001]")


@pytest.mark.parametrize("name", STUDIES)
def test_imported_trials_match_their_grid_or_have_names_of_their_own(name):
    """A trial named like a grid point has exactly that point's parameters (run_experiment
    does not retrain it); every other imported trial keeps a name of its own, its source
    and, for the old runner's options, a label that shows them."""
    folder = ROOT / "results" / name
    exp = load_experiment(folder / "experiment.yaml")
    grid = {t.name: t for t in exp.trials()}
    summaries = load_summaries(folder / "trials")
    assert summaries
    for s in summaries:
        if s["source"] == "run_experiment":  # trained through this layer
            assert s["params"] == grid[s["trial"]].params
            assert s["iterations"] == exp.stop.iterations
            continue
        assert s["source"].startswith("imported: results/fen_runs")
        assert s["kind"] == "fen" and set(s["params"]) == set(exp.params)
        if s["trial"] in grid:
            assert s["params"] == grid[s["trial"]].params
            assert s["iterations"] == exp.stop.iterations
        else:
            assert s["trial"].startswith(f"variant={s['params']['variant']},"
                                         f"seed={s['params']['seed']},from=fen_runs")
            assert row_label(exp, s) != f"variant={s['params']['variant']}"
    text = "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()
                   and p.suffix != ".png")
    assert "/work/" not in text


def test_trial_resources_main_process_cpus_then_one_per_runner():
    """A trial reserves overrides.num_cpus_for_main_process (FEN's learner updates with
    them) and one CPU per remote env runner; a bad value is the file's error."""
    def bundles(**params):
        exp = parse_experiment(fen_experiment(**params))
        return get_kind(exp.kind).resources(next(iter(exp.trials())).params)

    assert bundles() == [{"CPU": 1.0}]
    assert bundles(num_env_runners=1) == [{"CPU": 1.0}, {"CPU": 1.0}]
    assert bundles(overrides={"num_cpus_for_main_process": 2}) == [{"CPU": 2.0}]
    with pytest.raises(ExperimentError, match="num_cpus_for_main_process"):
        parse_experiment(fen_experiment(overrides={"num_cpus_for_main_process": 0}))
