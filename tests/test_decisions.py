"""Decision thresholds from training normals' scores, and precision / recall / F1 of the decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from asdlib.decisions import DecisionError, DecisionSettings, decide, decision_metrics, fit_thresholds, gamma_threshold


def test_gamma_threshold_finds_the_quantile_of_gamma_scores():
    shape, scale = 3.0, 0.2
    scores = stats.gamma.rvs(shape, scale=scale, size=2000, random_state=np.random.default_rng(0))
    truth = stats.gamma.ppf(0.9, shape, scale=scale)
    assert gamma_threshold(scores, 0.9, "fan/id_00") == pytest.approx(truth, rel=0.03)
    assert gamma_threshold(scores, 0.5, "fan/id_00") < gamma_threshold(scores, 0.9, "fan/id_00")


def test_gamma_threshold_is_not_thrown_off_by_a_degenerate_fit():
    # 40 scores like a machine ID's reconstruction errors, on which scipy's free
    # three-parameter fit lands on shape 0.31 and a threshold over 6x the highest score
    scores = np.random.default_rng(18).gamma(20.0, 0.004, 40)
    free = stats.gamma.ppf(0.9, *stats.gamma.fit(scores))
    assert free > 2 * scores.max()
    threshold = gamma_threshold(scores, 0.9, "pump/id_04")
    assert np.quantile(scores, 0.75) < threshold < scores.max() * 1.2
    assert threshold == pytest.approx(stats.gamma.ppf(0.9, 20.0, scale=0.004), rel=0.1)


def test_gamma_threshold_of_scores_reaching_zero_or_below():
    scores = np.random.default_rng(2).gamma(2.0, 1.0, 200)
    for shift in (-scores.min(), -3.0):  # lowest score exactly 0; scores down to -3
        threshold = gamma_threshold(scores + shift, 0.9, "fan/id_00")
        assert np.isfinite(threshold)
        assert threshold == pytest.approx(np.quantile(scores + shift, 0.9), abs=0.5)


def test_gamma_threshold_of_few_or_tied_or_bad_scores():
    assert gamma_threshold(np.full(5, 0.25), 0.9, "x") == 0.25  # nothing above a tie is flagged
    at_threshold = pd.DataFrame({"clip_id": ["a", "b"], "machine_type": "x", "machine_id": "y", "score": [0.25, 0.26]})
    assert decide(at_threshold, "score", {("x", "y"): 0.25})["decision"].tolist() == [0, 1]  # strictly above
    with pytest.raises(DecisionError, match="pump/id_04: 2 normal training clip"):
        gamma_threshold(np.array([1.0, 2.0]), 0.9, "pump/id_04")
    with pytest.raises(DecisionError, match="fan/id_00: .*NaN"):
        gamma_threshold(np.array([1.0, np.nan, 2.0, 3.0]), 0.9, "fan/id_00")
    with pytest.raises(ValueError, match="quantile"):
        DecisionSettings(quantile=1.0)


def _clips(scores_by_id: dict[str, tuple[list[float], list[float]]]) -> pd.DataFrame:
    rows = []
    for machine_id, (normal, anomaly) in scores_by_id.items():
        for label, values in (("normal", normal), ("anomaly", anomaly)):
            for k, value in enumerate(values):
                rows.append(dict(clip_id=f"{machine_id}_{label}_{k}", machine_type="fan", machine_id=machine_id,
                                 label=label, score=value))
    return pd.DataFrame(rows)


def test_decision_metrics_count_flags_against_labels():
    clips = _clips({"id_00": ([0.1, 0.2, 0.6, 0.3], [0.9, 0.4, 0.8, 0.7]),  # 1 false alarm, 3 of 4 hits
                    "id_02": ([0.1, 0.2], [0.3, 0.4])})  # nothing flagged
    thresholds = {("fan", "id_00"): 0.5, ("fan", "id_02"): 1.0}
    result = decision_metrics(clips, "score", thresholds)
    assert result["fan"]["id_00"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "false_alarm": 0.25,
                                      "threshold": 0.5}
    assert result["fan"]["id_02"]["precision"] == 0.0 and result["fan"]["id_02"]["f1"] == 0.0
    assert result["fan"]["mean"] == {"precision": 0.375, "recall": 0.375, "f1": 0.375, "false_alarm": 0.125}
    assert result["overall"] == result["fan"]["mean"]
    flags = decide(clips, "score", thresholds)
    assert flags["decision"].tolist() == [0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0]
    assert decision_metrics(clips.join(flags), "score", thresholds) == result  # as `asd score` writes it


def test_thresholds_per_machine_id_and_a_missing_one_named():
    rng = np.random.default_rng(1)
    normals = pd.DataFrame({"machine_type": "fan", "machine_id": ["id_00"] * 30 + ["id_02"] * 30,
                            "score": np.concatenate([rng.gamma(4.0, 0.1, 30), 10 + rng.gamma(4.0, 0.1, 30)])})
    thresholds = fit_thresholds(normals, "score", 0.9)
    assert set(thresholds) == {("fan", "id_00"), ("fan", "id_02")}
    assert thresholds[("fan", "id_00")] < 1 < 10 < thresholds[("fan", "id_02")]
    clips = _clips({"id_04": ([0.1], [0.9])})
    with pytest.raises(DecisionError, match="clip id_04_normal_0: no threshold for fan/id_04"):
        decision_metrics(clips, "score", thresholds)
    with pytest.raises(DecisionError, match="lack column score_knn"):
        fit_thresholds(normals, "score_knn", 0.9)


@pytest.mark.parametrize("normal, anomalous, message", [
    ([0.1, 0.2], [], "fan/id_00: no anomalous clips, so recall and F1 would be undefined"),
    ([], [0.8, 0.9], "fan/id_00: no normal clips, so the false-alarm rate would be undefined"),
])
def test_a_machine_id_without_one_class_is_named(normal, anomalous, message):
    clips = _clips({"id_00": (normal, anomalous)})
    with pytest.raises(DecisionError, match=message):
        decision_metrics(clips, "score", {("fan", "id_00"): 0.5})
