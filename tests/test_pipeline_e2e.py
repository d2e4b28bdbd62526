"""The real `dvc repro` on a tiny params override, in a temporary copy of the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_repo import copy_repo_with_cache, reproduced_repo, sh

from asdlib.config import parse, to_dict
from asdlib.decisions import decide, fit_thresholds
from asdlib.detectors.registry import DETECTORS
from asdlib.extraction import MseInput, MseRecord
from asdlib.metrics import read_scores
from asdlib.model_card import read_model_card
from asdlib.store import file_digest


pytestmark = pytest.mark.timeout(3600)  # one tiny full repro, shared by the session


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    """A private copy of the session's tiny reproduced repository (full `dvc repro` done)."""
    return copy_repo_with_cache(reproduced_repo(tmp_path_factory), tmp_path_factory.mktemp("e2e"))


def test_repro_writes_per_id_metrics(tiny_repo: Path):
    metrics = json.loads((tiny_repo / "metrics" / "asd.json").read_text())
    for model in ("dense_ae", "conformer_ae", "stgram_mfn"):
        for input_name in ("raw", "mse"):
            for condition in ("clean", "0dB"):
                result = metrics[model][input_name][condition]
                for machine_type in ("fan", "valve"):
                    per_type = result[machine_type]
                    assert set(per_type) == {"id_00", "id_02", "mean"}
                    for values in (per_type["id_00"], per_type["id_02"]):
                        assert 0.0 <= values["auc"] <= 1.0 and 0.0 <= values["pauc"] <= 1.0
                    assert per_type["mean"]["mauc"] <= per_type["mean"]["auc"]
                assert set(result["overall"]) == {"auc", "pauc", "auc_hmean", "pauc_hmean"}
    assert {"stgram_mfn_mahalanobis", "stgram_mfn_knn"} <= set(metrics)  # extra scorers, side by side
    assert "stgram_mfn_published" not in metrics  # the model's own score: reported once, as stgram_mfn
    snr = json.loads((tiny_repo / "metrics" / "snr.json").read_text())
    assert snr["overall"]["mae"] >= 0
    assert (tiny_repo / "metrics" / "summary.md").read_text().startswith("# Anomaly detection results")
    assert (tiny_repo / "metrics" / "plots" / "auc_vs_snr.png").stat().st_size > 1000
    comparisons = json.loads((tiny_repo / "metrics" / "comparisons.json").read_text())
    interval = comparisons["mse_minus_raw"]["stgram_mfn"]["clean"]
    assert interval["low"] <= interval["value"] <= interval["high"]
    assert set(comparisons["minus_dense_ae_raw"]["conformer_ae"]) == {"raw", "mse"}
    assert comparisons["auc"]["dense_ae"]["raw"]["0dB"]["value"] == pytest.approx(
        metrics["dense_ae"]["raw"]["0dB"]["overall"]["auc"], abs=1e-6)
    assert "## Are the differences real?" in (tiny_repo / "metrics" / "summary.md").read_text()


def test_repro_writes_decisions_from_training_normals(tiny_repo: Path):
    decisions = json.loads((tiny_repo / "metrics" / "decisions.json").read_text())
    quantile = yaml.safe_load((tiny_repo / "params.yaml").read_text())["evaluate"]["decision"]["quantile"]
    assert set(decisions) == set(json.loads((tiny_repo / "metrics" / "asd.json").read_text()))
    for model, column in (("dense_ae", "score"), ("stgram_mfn", "score"), ("stgram_mfn_knn", "score_knn")):
        for input_name in ("raw", "mse"):
            for condition in ("clean", "0dB"):
                folder = tiny_repo / "data" / "models" / model.removesuffix("_knn") / input_name / condition
                normals = read_scores(folder / "normal_scores.csv")
                assert set(normals["split"]) == {"train"} and set(normals["label"]) == {"normal"}
                thresholds = fit_thresholds(normals, column, quantile)
                result = decisions[model][input_name][condition]
                for (machine_type, machine_id), threshold in thresholds.items():
                    values = result[machine_type][machine_id]
                    assert values["threshold"] == pytest.approx(threshold, abs=1e-6)  # JSON: 6 decimals
                    assert 0 <= values["precision"] <= 1 and 0 <= values["f1"] <= 1
    assert "## Decisions" in (tiny_repo / "metrics" / "summary.md").read_text()


def test_model_cards_say_what_each_model_was_trained_on(tiny_repo: Path):
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    made = to_dict(MseRecord(parse(MseInput, params["mse"]),
                             file_digest(tiny_repo / "data" / "snr" / "model" / "model.pt")))
    assert json.loads((tiny_repo / "data" / "mse" / "extraction.json").read_text()) == made
    for model, (settings_cls, _) in DETECTORS.items():
        for input_name in ("raw", "mse"):
            for condition in params["train"]["conditions"]:
                card = read_model_card(tiny_repo / "data" / "models" / model / input_name / condition)
                assert (card.detector, card.input, card.condition) == (model, input_name, condition)
                assert card.settings == to_dict(parse(settings_cls, params["detectors"][model]))
                assert card.extraction == (made if input_name == "mse" else None)


def test_shard_stages_leave_no_scratch_behind(tiny_repo: Path):
    for stage in ("mix", "mse"):  # finished shards wait in data/.work until the output is in place
        assert not list((tiny_repo / "data" / ".work" / stage).rglob("*.*")), stage


def test_dvc_plots_draw_every_curve(tiny_repo: Path):
    """`dvc plots show` gets every system, machine type and training curve, each a series of its
    own (the templates in .dvc/plots colour by it), not one column or one zig-zag line."""
    plots = json.loads(sh(["dvc", "plots", "show", "--json"], tiny_repo).stdout)["data"]
    metrics = json.loads((tiny_repo / "metrics" / "asd.json").read_text())

    def spec(name: str) -> dict:
        return plots[name][0]["content"]

    def series(name: str, *fields: str) -> set[tuple]:
        return {tuple(row[f] for f in fields) for row in spec(name)["data"]["values"]}

    auc = "metrics/auc_vs_snr.csv"
    assert series(auc, "model", "input") == {(m, i) for m, by_input in metrics.items() for i in by_input}
    assert spec(auc)["encoding"]["color"]["field"] == spec(auc)["transform"][0]["as"] == "system"
    assert spec(auc)["encoding"]["y"]["field"] == "auc"
    rocs = sorted((tiny_repo / "metrics" / "roc").glob("*.csv"))
    assert len(rocs) == sum(len(by_cond) for by_input in metrics.values() for by_cond in by_input.values())
    for path in rocs:
        name = f"metrics/roc/{path.name}"
        assert series(name, "machine_type") == {("fan",), ("valve",)}, name
        assert spec(name)["encoding"]["color"]["field"] == "machine_type"
    for model in ("dense_ae", "conformer_ae"):
        name = f"metrics/training/{model}.raw.csv"
        assert series(name, "condition", "unit") == {(c, t) for c in ("clean", "0dB") for t in ("fan", "valve")}
        assert spec(name)["encoding"]["color"]["field"] == "condition / unit"


def test_second_repro_does_nothing(tiny_repo: Path):
    status = sh(["dvc", "status"], tiny_repo).stdout
    assert "up to date" in status.lower(), status


def test_typo_in_params_fails_before_work(tiny_repo: Path):
    broken = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    broken["evaluate"]["roc_pointz"] = 5
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(broken, sort_keys=False))
    result = sh(["dvc", "repro"], tiny_repo, check=False)
    assert result.returncode != 0
    assert "evaluate.roc_pointz: unknown key" in result.stdout + result.stderr


@pytest.mark.parametrize("model, input_name", [("dense_ae", "raw"), ("stgram_mfn", "mse")])
def test_asd_score_gives_the_pipelines_scores(tmp_path_factory, tmp_path: Path, model: str, input_name: str):
    """`asd score` on a trained model folder and the mixture manifest reproduces the train
    stage's scores; for an MSE-input model by extracting from the mixtures as the mse stage,
    with the settings on its model card (no params file)."""
    repo = reproduced_repo(tmp_path_factory)  # read only
    out = tmp_path / "scores.csv"
    settings = (["--extract", "--snr-model", "data/snr/model/model.pt"] if input_name == "mse"
                else ["--params", "params.yaml"])
    sh(["asd", "score", f"data/models/{model}/{input_name}/0dB", "--manifest", "data/mix/manifest.csv",
        "--splits", "test", "--conditions", "0dB", *settings, "--out", str(out)], repo)
    ours = read_scores(out)
    pipeline = read_scores(repo / "data" / "scores" / model / f"{input_name}.csv")
    pipeline = pipeline[pipeline["condition"] == "0dB"].reset_index(drop=True)
    thresholds = fit_thresholds(read_scores(repo / "data" / "models" / model / input_name / "0dB" /
                                            "normal_scores.csv"), "score", 0.9)
    assert ours["decision"].tolist() == decide(pipeline, "score", thresholds)["decision"].tolist()
    ours = ours.drop(columns=["threshold", "decision"])
    assert list(ours.columns) == list(pipeline.columns)
    # equal but for the last float bits (the stage may score with another thread count); the
    # Mahalanobis score of a tiny training set magnifies them to ~1e-5
    pd.testing.assert_frame_equal(ours, pipeline, check_exact=False, rtol=1e-4, check_dtype=False)
