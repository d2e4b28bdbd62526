"""Stage `evaluate` on a tiny score table: what it writes, and errors that name the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asdlib.decisions import fit_thresholds
from asdlib.metrics import evaluate_scores
from stages import evaluate

PARAMS = "parallel:\n  backend: sequential\nevaluate:\n  roc_points: 11\n  bootstrap:\n    resamples: 100\n"


def _tables(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test clips (6 normal, 6 anomalous per ID) and 20 training normals per ID of two fan IDs."""
    test, normals = [], []
    for machine_id in ("id_00", "id_02"):
        for label, centre in (("normal", 1.0), ("anomaly", 1.6)):
            for k in range(6):
                test.append(dict(clip_id=f"{machine_id}_{label}_{k}@clean", machine_type="fan",
                                 machine_id=machine_id, label=label, condition="clean",
                                 score=centre + 0.3 * rng.random()))
        for k in range(20):
            normals.append(dict(clip_id=f"{machine_id}_train_{k}@clean", machine_type="fan", machine_id=machine_id,
                                label="normal", condition="clean", score=1.0 + 0.3 * rng.random()))
    return pd.DataFrame(test), pd.DataFrame(normals)


def _with_0db(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (condition clean) and a copy of its rows as condition 0dB."""
    noisy = table.assign(condition="0dB", clip_id=table["clip_id"].str.replace("@clean", "@0dB"))
    return pd.concat([table, noisy], ignore_index=True)


def _workspace(tmp_path, monkeypatch, test: pd.DataFrame, normals: pd.DataFrame, input_name: str = "raw") -> None:
    """The dense AE's score table of ``input_name`` and, per condition, its training normals' scores."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS)
    (tmp_path / "data" / "scores" / "dense_ae").mkdir(parents=True, exist_ok=True)
    test.to_csv(tmp_path / "data" / "scores" / "dense_ae" / f"{input_name}.csv", index=False)
    for condition, rows in normals.groupby("condition"):
        model_dir = tmp_path / "data" / "models" / "dense_ae" / input_name / condition
        model_dir.mkdir(parents=True, exist_ok=True)
        rows.to_csv(model_dir / "normal_scores.csv", index=False)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_evaluate_writes_metrics_tables_and_figures(tmp_path, monkeypatch):
    test, normals = _tables(np.random.default_rng(0))
    _workspace(tmp_path, monkeypatch, test, normals)
    evaluate.main()
    metrics = tmp_path / "metrics"
    # the figures of the library functions, rounded as written
    assert json.loads((metrics / "asd.json").read_text())["dense_ae"]["raw"]["clean"] == \
        json.loads(json.dumps(evaluate_scores(test)))
    thresholds = fit_thresholds(normals, "score", 0.9)
    decided = json.loads((metrics / "decisions.json").read_text())["dense_ae"]["raw"]["clean"]["fan"]
    assert decided["id_02"]["threshold"] == pytest.approx(thresholds[("fan", "id_02")], abs=1e-6)
    auc = pd.read_csv(metrics / "auc_vs_snr.csv")
    assert auc.loc[0, "auc"] == pytest.approx(evaluate_scores(test)["overall"]["auc"], abs=1e-6)
    for name in ("asd.json", "decisions.json", "comparisons.json", "summary.md", "auc_vs_snr.csv",
                 "roc/dense_ae.raw.clean.csv", "plots/roc/dense_ae.raw.clean.png",
                 "plots/hist/dense_ae.raw.clean.png", "plots/auc_vs_snr.png"):
        assert (metrics / name).stat().st_size > 0, name
    assert (metrics / "plots" / "roc" / "dense_ae.raw.clean.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    roc = pd.read_csv(metrics / "roc" / "dense_ae.raw.clean.csv")  # long: a DVC plot line per type
    assert list(roc.columns) == ["machine_type", "fpr", "tpr"]
    assert roc.groupby("machine_type").size().eq(11).all()
    assert not [p for p in metrics.rglob("*") if ".tmp" in p.name]


def test_evaluate_errors_name_the_file_at_fault(tmp_path, monkeypatch):
    test, normals = _tables(np.random.default_rng(0))
    normals.loc[3, "score"] = np.nan
    _workspace(tmp_path, monkeypatch, test, normals)
    with pytest.raises(ValueError, match=r"data/models/dense_ae/raw/clean/normal_scores.csv: fan/id_00: .*NaN"):
        evaluate.main()
    _workspace(tmp_path, monkeypatch, test.drop(columns="condition"), normals)
    with pytest.raises(ValueError, match=r"data/scores/dense_ae/raw.csv: lacks columns \['condition'\]"):
        evaluate.main()
    no_anomaly = test[~((test["machine_id"] == "id_02") & (test["label"] == "anomaly"))]
    _workspace(tmp_path, monkeypatch, no_anomaly, normals.fillna(1.0))
    with pytest.raises(ValueError, match=r"dense_ae/raw.csv \(dense_ae.raw.clean\): fan/id_02: no anomalous"):
        evaluate.main()


def test_a_failure_midway_changes_no_output(tmp_path, monkeypatch):
    test, normals = _tables(np.random.default_rng(0))
    _workspace(tmp_path, monkeypatch, _with_0db(test), _with_0db(normals))
    evaluate.main()
    before = _files(tmp_path / "metrics")
    changed = _with_0db(test.assign(score=test["score"] + 0.2 * (test["label"] == "anomaly")))
    _workspace(tmp_path, monkeypatch, changed, _with_0db(normals))
    real_histograms = evaluate.plot_score_histograms

    def failing_for_0db(rows, score_column, title):  # the clean setting's figures are made first
        if "0dB" in title:
            raise ValueError("figure failed")
        return real_histograms(rows, score_column=score_column, title=title)

    monkeypatch.setattr(evaluate, "plot_score_histograms", failing_for_0db)
    with pytest.raises(ValueError, match="figure failed"):
        evaluate.main()
    assert _files(tmp_path / "metrics") == before  # nothing of the failed run, no temporary file
    monkeypatch.undo()
    changed.loc[changed["condition"] == "0dB", "score"] = np.nan
    _workspace(tmp_path, monkeypatch, changed, _with_0db(normals))
    with pytest.raises(ValueError, match=r"data/scores/dense_ae/raw.csv \(dense_ae.raw.0dB\): .*NaN"):
        evaluate.main()
    assert _files(tmp_path / "metrics") == before


def test_a_run_leaves_no_files_of_settings_gone(tmp_path, monkeypatch):
    test, normals = _tables(np.random.default_rng(0))
    _workspace(tmp_path, monkeypatch, _with_0db(test), _with_0db(normals))
    evaluate.main()
    metrics = tmp_path / "metrics"
    gone = ["roc/dense_ae.raw.0dB.csv", "plots/roc/dense_ae.raw.0dB.png", "plots/hist/dense_ae.raw.0dB.png"]
    assert all((metrics / name).exists() for name in gone)
    shutil.rmtree(tmp_path / "data" / "models" / "dense_ae" / "raw" / "0dB")  # 0dB no longer trained
    _workspace(tmp_path, monkeypatch, test, normals)
    evaluate.main()
    assert [name for name in gone if (metrics / name).exists()] == []
    assert (metrics / "roc" / "dense_ae.raw.clean.csv").exists()
    assert list(json.loads((metrics / "asd.json").read_text())["dense_ae"]["raw"]) == ["clean"]


def test_a_score_table_missing_a_trained_condition_is_refused(tmp_path, monkeypatch):
    test, normals = _tables(np.random.default_rng(0))
    _workspace(tmp_path, monkeypatch, test, _with_0db(normals))  # 0dB trained, but no 0dB rows
    with pytest.raises(ValueError, match=r"^data/scores/dense_ae/raw.csv: no rows of conditions \['0dB'\], "
                                         r"which data/models/dense_ae/raw has"):
        evaluate.main()
    _workspace(tmp_path, monkeypatch, _with_0db(test), _with_0db(normals))
    _workspace(tmp_path, monkeypatch, test, normals, input_name="mse")  # 0dB neither trained nor scored on mse
    with pytest.raises(ValueError, match=r"^data/scores/dense_ae/mse.csv: no rows of conditions \['0dB'\], "
                                         r"which data/scores/dense_ae/raw.csv has"):
        evaluate.main()
    assert not (tmp_path / "metrics").exists()
