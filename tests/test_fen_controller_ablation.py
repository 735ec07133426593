"""scripts/fen_controller_ablation.py's reading of a Tune trial's training curve (its
evaluations are tested in test_fen_rllib's checkpoint test)."""

from __future__ import annotations

import json
from typing import Any


def test_training_utilization_is_the_last_value_reported_by_the_iteration(
        tmp_path: Any, load_script: Any) -> None:
    ablation = load_script("fen_controller_ablation")
    rows = [{"training_iteration": 1}, {"training_iteration": 2, "fairness/utilization": 0.2},
            {"training_iteration": 3}, {"training_iteration": 4, "fairness/utilization": 0.4}]
    (tmp_path / "result.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert ablation.training_utilization(tmp_path, 1) is None  # nothing reported yet
    assert ablation.training_utilization(tmp_path, 3.2) == 0.2  # iteration 3: 2's value
    assert ablation.training_utilization(tmp_path, 3.6) == 0.4  # rounds to iteration 4
    assert ablation.training_utilization(tmp_path, 50) == 0.4
    assert ablation.training_utilization(tmp_path / "elsewhere", 2) is None
