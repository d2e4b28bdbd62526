"""Metrics against hand-computed examples and sklearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from asdlib.metrics import MetricsError, evaluate_scores, harmonic_mean, roc_points
from asdlib.reporting import reported_scores


def _table(machine_type, machine_id, labels, scores):
    return pd.DataFrame({"clip_id": [f"{machine_type}_{machine_id}_{k}" for k in range(len(labels))],
                         "machine_type": machine_type, "machine_id": machine_id,
                         "label": labels, "score": scores})


def test_auc_hand_computed():
    # normals 1, 2, 3 ; anomalies 2.5, 4: pairs won 2 of 3 and 3 of 3 -> AUC 5/6
    df = _table("fan", "id_00", ["normal"] * 3 + ["anomaly"] * 2, [1.0, 2.0, 3.0, 2.5, 4.0])
    result = evaluate_scores(df)
    assert result["fan"]["id_00"]["auc"] == round(5 / 6, 6)
    assert result["fan"]["mean"]["mauc"] == round(5 / 6, 6)


def test_pauc_matches_sklearn_mcclish():
    rng = np.random.default_rng(0)
    labels = ["normal"] * 40 + ["anomaly"] * 15
    scores = np.concatenate([rng.normal(0, 1, 40), rng.normal(1, 1, 15)])
    y = np.array([lab == "anomaly" for lab in labels], int)
    result = evaluate_scores(_table("pump", "id_02", labels, scores))
    assert result["pump"]["id_02"]["pauc"] == round(roc_auc_score(y, scores, max_fpr=0.1), 6)
    assert result["pump"]["id_02"]["auc"] == round(roc_auc_score(y, scores), 6)


def test_perfect_separation_pauc_is_one():
    df = _table("fan", "id_00", ["normal"] * 10 + ["anomaly"] * 3, list(range(13)))
    assert evaluate_scores(df)["fan"]["id_00"]["pauc"] == 1.0


def test_type_means_overall_over_types_and_hmean():
    # fan: id_00 AUC 1, id_02 AUC 0.5 (ties) ; pump: one ID with AUC 0.75
    fan0 = _table("fan", "id_00", ["normal", "normal", "anomaly", "anomaly"], [0, 1, 2, 3])
    fan2 = _table("fan", "id_02", ["normal", "normal", "anomaly", "anomaly"], [1, 1, 1, 1])
    pump = _table("pump", "id_00", ["normal", "normal", "anomaly", "anomaly"], [0, 2, 1, 3])
    unknown = _table("pump", "id_04", ["unknown"], [100.0])
    result = evaluate_scores(pd.concat([fan0, fan2, pump, unknown], ignore_index=True))
    assert result["fan"]["mean"]["auc"] == 0.75
    assert result["fan"]["mean"]["mauc"] == 0.5
    assert result["pump"]["mean"]["auc"] == 0.75
    assert "id_04" not in result["pump"]
    assert result["overall"]["auc"] == 0.75  # mean over types: (0.75 + 0.75) / 2, not over 3 IDs
    assert result["overall"]["auc_hmean"] == round(3 / (1 / 1 + 1 / 0.5 + 1 / 0.75), 6)
    assert set(result["overall"]) == {"auc", "pauc", "auc_hmean", "pauc_hmean"}


def test_overall_is_mean_over_types_not_ids():
    ids = [_table("fan", f"id_0{k}", ["normal", "anomaly"], [0, 1]) for k in range(3)]  # AUC 1 each
    pump = _table("pump", "id_00", ["normal", "anomaly"], [1, 0])  # AUC 0
    result = evaluate_scores(pd.concat([*ids, pump], ignore_index=True))
    assert result["overall"]["auc"] == 0.5
    assert result["overall"]["auc_hmean"] == 0.0


def test_harmonic_mean():
    assert harmonic_mean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert harmonic_mean([0.8, 0.0]) == 0.0
    with pytest.raises(MetricsError):
        harmonic_mean([])


def test_errors_name_the_id():
    only_normal = _table("valve", "id_06", ["normal", "normal"], [0.1, 0.2])
    ok = _table("valve", "id_00", ["normal", "anomaly"], [0.1, 0.2])
    with pytest.raises(MetricsError, match="valve/id_06: no anomalous clips"):
        evaluate_scores(pd.concat([ok, only_normal], ignore_index=True))
    only_anomaly = _table("valve", "id_04", ["anomaly"], [0.3])
    with pytest.raises(MetricsError, match="valve/id_04: no normal clips"):
        evaluate_scores(pd.concat([ok, only_anomaly], ignore_index=True))
    nan = _table("valve", "id_00", ["normal", "anomaly"], [0.1, np.nan])
    with pytest.raises(MetricsError, match="NaN.*valve_id_00_1"):
        evaluate_scores(nan)
    with pytest.raises(MetricsError, match="lacks columns"):
        evaluate_scores(ok.drop(columns="label"))


def test_other_score_column():
    df = _table("fan", "id_00", ["normal", "anomaly"], [0.0, 1.0])
    df["score_knn"] = [1.0, 0.0]
    assert evaluate_scores(df, "score_knn")["fan"]["id_00"]["auc"] == 0.0


def test_roc_points_fixed_grid():
    rng = np.random.default_rng(1)
    fan = _table("fan", "id_00", ["normal"] * 30 + ["anomaly"] * 10,
                 np.concatenate([rng.normal(0, 1, 30), rng.normal(2, 1, 10)]))
    perfect = _table("pump", "id_00", ["normal"] * 5 + ["anomaly"] * 5, list(range(10)))
    pts = roc_points(pd.concat([fan, perfect], ignore_index=True), num_points=11)
    assert list(pts.columns) == ["machine_type", "fpr", "tpr"]
    assert len(pts) == 22
    fan_pts = pts[pts.machine_type == "fan"]
    assert np.all(np.diff(fan_pts["tpr"]) >= 0) and fan_pts["tpr"].iloc[-1] == 1.0
    assert (pts[pts.machine_type == "pump"]["tpr"] == 1.0).all()
    # trapezoid area on the grid approximates the AUC
    auc = roc_auc_score((fan["label"] == "anomaly").astype(int), fan["score"])
    assert np.trapezoid(fan_pts["tpr"], fan_pts["fpr"]) == pytest.approx(auc, abs=0.1)


def test_reported_scores_names_extra_scorers_and_skips_the_copy_of_the_own_score():
    scores = pd.DataFrame({"score": [1.0, 2.0], "score_published": [1.0, 2.0],
                           "score_knn": [0.5, 0.1], "label": ["normal", "anomaly"]})
    assert reported_scores(scores, "stgram_mfn") == {"stgram_mfn": "score", "stgram_mfn_knn": "score_knn"}
    assert reported_scores(scores, "stgram_mfn", extra=False) == {"stgram_mfn": "score"}


def test_roc_points_keep_every_operating_point_of_tied_scores():
    # three tie groups of one normal and one anomalous clip: their ROC points lie on one
    # diagonal, and the middle ones are reachable thresholds all the same
    scores = [0.9, 0.8, 0.7, 0.6, 0.9, 0.8, 0.7, 0.1]
    tied = _table("fan", "id_00", ["anomaly"] * 4 + ["normal"] * 4, scores)
    pts = roc_points(tied, num_points=5)
    assert pts["tpr"].tolist() == [0.0, 0.25, 0.5, 1.0, 1.0]  # at FPR 0, 0.25, 0.5, 0.75, 1
