"""`asd score` and asdlib.inference: trained detectors rebuilt from their model files
score WAV files and manifests as the detector itself does, with MSE first when asked."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from asdlib import inference
from asdlib.audio import write_wav
from asdlib.cli import main
from asdlib.config import to_dict
from asdlib.detectors.dense_ae import DenseAEDetector, DenseAEDetectorSettings
from asdlib.detectors.stgram_mfn import STgramMFNDetector, STgramMFNDetectorSettings
from asdlib.features import DCASE_BASELINE_LOGMEL, LogMelSettings, STGRAM_LOGMEL
from asdlib.inference import (Extraction, load_detector, read_recording, recording_rows, recording_table,
                              score_recordings)
from asdlib.manifest import write_manifest
from asdlib.decisions import decide, fit_thresholds
from asdlib.extraction import MseInput, MseRecord
from asdlib.metrics import CLIP_COLUMNS, NORMAL_SCORES_FILE, evaluate_scores, read_scores, write_scores
from asdlib.model_card import MODEL_CARD_FILE, ModelCard, read_model_card, write_model_card
from asdlib.models.conformer_ae import ConformerAE, ConformerAESettings
from asdlib.models.snr_blstm import SnrBlstmSettings
from asdlib.models.stgram_mfn import STgramMFNSettings
from asdlib.mse import MseSettings, extract
from asdlib.snr_estimation import SnrEstimator, SnrEstimatorSettings
from asdlib.store import file_digest
from asdlib.training import TrainSettings, save_checkpoint

SR = 16000
N_MELS = 32
TONES = {("fan", "id_00"): 440.0, ("fan", "id_02"): 1000.0, ("pump", "id_00"): 300.0}
MSE = MseSettings(q_max=64, max_steps=4)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pd.DataFrame:
    """A manifest of WAVs: sines per machine ID (normal), noise (anomaly); 0.5 s each."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    rows = []
    for (machine_type, machine_id), freq in TONES.items():
        for split, label, count in (("train", "normal", 6), ("test", "normal", 3), ("test", "anomaly", 3)):
            for k in range(count):
                clip_id = f"{machine_type}_{machine_id}_{split}_{label}_{k}"
                x = (0.3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6)) + 0.005 * rng.standard_normal(t.size)
                     if label == "normal" else 0.3 * rng.standard_normal(t.size).clip(-3, 3))
                path = root / machine_type / machine_id / split / f"{clip_id}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_wav(path, x)
                rows.append(dict(clip_id=clip_id, path=str(path), dataset="toy", machine_type=machine_type,
                                 machine_id=machine_id, split=split, label=label, channel=0))
    return pd.DataFrame(rows)


def _train() -> TrainSettings:
    return TrainSettings(epochs=2, batch_size=8, lr=1e-3, device="cpu", val_fraction=0.2)


def _dense(tmp: Path, train: pd.DataFrame) -> tuple[DenseAEDetector, Path]:
    settings = DenseAEDetectorSettings(logmel=replace(DCASE_BASELINE_LOGMEL, n_mels=N_MELS), hidden=16,
                                       bottleneck=4, train=_train())
    detector = DenseAEDetector(settings)
    detector.fit(train, read_recording, tmp / "dense")
    return detector, tmp / "dense"


def _stgram_settings() -> STgramMFNDetectorSettings:
    return STgramMFNDetectorSettings(logmel=replace(STGRAM_LOGMEL, n_mels=N_MELS),
                                     model=STgramMFNSettings(n_mels=N_MELS, blocks="mfn6"), train=_train(), knn_k=3)


def _split(corpus: pd.DataFrame, split: str) -> pd.DataFrame:
    return corpus[corpus["split"] == split].reset_index(drop=True)


def test_wav_files_score_as_the_detector_does(corpus, tmp_path, capsys):
    detector, model_dir = _dense(tmp_path, _split(corpus, "train"))
    fan0 = corpus[(corpus["split"] == "test") & (corpus["machine_type"] == "fan") & (corpus["machine_id"] == "id_00")]
    folder = Path(fan0["path"].iloc[0]).parent
    out = tmp_path / "scores.csv"
    assert main(["score", str(model_dir), str(folder), "--machine-type", "fan", "--machine-id", "id_00",
                 "--out", str(out)]) == 0
    table = read_scores(out)
    assert list(table.columns) == CLIP_COLUMNS + ["score"]
    expected = detector.score(recording_rows([folder], "fan", "id_00"), read_recording)
    assert table["clip_id"].tolist() == expected["clip_id"].tolist()  # every WAV of the folder, sorted
    assert len(table) == 6 and set(table["label"]) == {"unknown"} and set(table["condition"]) == {"clean"}
    np.testing.assert_allclose(table["score"], expected["score"], rtol=1e-6)
    assert "6 clips scored" in capsys.readouterr().out


def test_decisions_from_the_model_folders_training_normals(corpus, tmp_path, capsys):
    train = _split(corpus, "train")
    train = train[~((train["machine_type"] == "fan") & (train["machine_id"] == "id_02"))]
    detector, model_dir = _dense(tmp_path, train)
    write_scores(model_dir / NORMAL_SCORES_FILE, recording_table(train, detector.training_scores()))
    manifest = tmp_path / "manifest.csv"
    write_manifest(corpus, manifest)
    out = tmp_path / "scores.csv"
    assert main(["score", str(model_dir), "--manifest", str(manifest), "--splits", "test", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = read_scores(out)
    assert list(table.columns) == CLIP_COLUMNS + ["score", "threshold", "decision"]
    unseen = (table["machine_type"] == "fan") & (table["machine_id"] == "id_02")  # no training clips: no decision
    assert table.loc[unseen, ["threshold", "decision"]].isna().all().all()
    assert "6 clips without a decision" in printed and "no AUC" not in printed and "F1" not in printed
    seen = table[~unseen]
    thresholds = fit_thresholds(read_scores(model_dir / NORMAL_SCORES_FILE), "score", 0.9)
    assert seen["decision"].tolist() == decide(seen, "score", thresholds)["decision"].tolist()
    assert seen["decision"].sum() > 0
    flagged = int(seen["decision"].sum())
    assert f"{flagged} of {len(seen)} clips flagged anomalous" in printed

    strict = tmp_path / "strict.csv"
    assert main(["score", str(model_dir), "--manifest", str(manifest), "--splits", "test", "--quantile", "0.999",
                 "--out", str(strict)]) == 0
    assert (read_scores(strict).loc[~unseen, "threshold"] > seen["threshold"]).all()
    known = tmp_path / "known.csv"
    write_manifest(corpus[~((corpus["machine_type"] == "fan") & (corpus["machine_id"] == "id_02"))], known)
    assert main(["score", str(model_dir), "--manifest", str(known), "--splits", "test",
                 "--out", str(tmp_path / "known_scores.csv")]) == 0
    assert "clean: mean AUC 1.000, pAUC 1.000, F1 " in capsys.readouterr().out
    assert main(["score", str(model_dir), "--manifest", str(manifest), "--quantile", "1.5",
                 "--out", str(tmp_path / "bad.csv")]) == 2
    assert "quantile must be in (0, 1)" in capsys.readouterr().err and not (tmp_path / "bad.csv").exists()


def test_manifest_with_labels_reports_auc_and_params_give_the_scorer_options(corpus, tmp_path, capsys):
    settings = _stgram_settings()
    detector = STgramMFNDetector(settings)
    detector.fit(_split(corpus, "train"), read_recording, tmp_path / "stgram")
    manifest = tmp_path / "manifest.csv"
    write_manifest(corpus, manifest)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"detectors": {"stgram_mfn": to_dict(settings)}}))
    expected = detector.score(_split(corpus, "test"), read_recording)

    out = tmp_path / "with_params.csv"
    assert main(["score", str(tmp_path / "stgram"), "--manifest", str(manifest), "--splits", "test",
                 "--params", str(params), "--out", str(out)]) == 0
    assert "clean: mean AUC" in capsys.readouterr().out
    table = read_scores(out)
    assert table["clip_id"].tolist() == expected["clip_id"].tolist()
    for column in ("score_published", "score_mahalanobis", "score_knn"):
        np.testing.assert_allclose(table[column], expected[column], rtol=1e-5)

    normals = tmp_path / "normals.csv"
    write_manifest(corpus[~((corpus["machine_type"] == "pump") & (corpus["label"] == "anomaly"))], normals)
    assert main(["score", str(tmp_path / "stgram"), "--manifest", str(normals), "--splits", "test",
                 "--out", str(tmp_path / "normals_scores.csv")]) == 0
    printed = capsys.readouterr().out
    assert "AUC leaves out machine IDs without both normal and anomalous clips: pump/id_00 (clean)" in printed
    fan = read_scores(tmp_path / "normals_scores.csv").query("machine_type == 'fan'")
    assert f"clean: mean AUC {evaluate_scores(fan)['overall']['auc']:.3f}," in printed

    # without params the model file's settings: front end and model, default scorer options (k 1, not 3)
    _, restored = load_detector(tmp_path / "stgram")
    assert restored.settings.config() == settings.config() and restored.settings.knn_k == 1
    alone = score_recordings(restored, _split(corpus, "test"), read_recording)
    np.testing.assert_allclose(alone["score_published"], expected["score_published"], rtol=1e-5)
    assert not np.allclose(alone["score_knn"], expected["score_knn"])


def test_extraction_first_as_the_mse_stage(corpus, tmp_path):
    train, test = _split(corpus, "train"), _split(corpus, "test")
    detector, _ = _dense(tmp_path, train)
    fixed = score_recordings(detector, test, read_recording, Extraction(MSE, snr_db=3.0), chunk=7)
    extracted = {row["clip_id"]: extract(read_recording(row), 3.0, MSE).signal.astype(np.float32)
                 for _, row in test.iterrows()}
    expected = detector.score(test, lambda row: extracted[row["clip_id"]])
    pd.testing.assert_frame_equal(fixed, expected)
    assert not np.allclose(fixed["score"], detector.score(test, read_recording)["score"])

    estimator = SnrEstimator(SnrEstimatorSettings(logmel=LogMelSettings(n_mels=16),
                                                  model=SnrBlstmSettings(n_mels=16, hidden=8)))
    estimator.save(tmp_path / "snr.pt")
    estimated = score_recordings(detector, test, read_recording, Extraction(MSE, estimator=tmp_path / "snr.pt"))
    targets = np.round(estimator.predict([read_recording(row) for _, row in test.iterrows()]), 4)
    by_estimate = {row["clip_id"]: extract(read_recording(row), float(target), MSE).signal.astype(np.float32)
                   for (_, row), target in zip(test.iterrows(), targets)}
    pd.testing.assert_frame_equal(estimated, detector.score(test, lambda row: by_estimate[row["clip_id"]]))


def test_cli_extraction_needs_its_settings(corpus, tmp_path, capsys):
    _, model_dir = _dense(tmp_path, _split(corpus, "train"))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"mse": {"settings": to_dict(MSE)}}))
    manifest = tmp_path / "manifest.csv"
    write_manifest(corpus, manifest)
    out = tmp_path / "scores.csv"
    base = ["score", str(model_dir), "--manifest", str(manifest), "--splits", "test", "--out", str(out)]
    assert main(base + ["--extract", "--snr-db", "3"]) == 2
    assert "give --params" in capsys.readouterr().err
    assert main(base + ["--extract", "--params", str(params)]) == 2
    assert "one of --snr-model" in capsys.readouterr().err
    assert main(base + ["--snr-db", "3"]) == 2
    assert "only apply with --extract" in capsys.readouterr().err
    assert not out.exists()
    assert main(base + ["--extract", "--params", str(params), "--snr-db", "3", "--jobs", "1"]) == 0
    assert len(read_scores(out)) == 18


def test_bad_input_names_what_is_wrong(corpus, tmp_path, capsys):
    stgram = STgramMFNDetector(_stgram_settings())
    stgram.fit(_split(corpus, "train").query("machine_type == 'fan'"), read_recording, tmp_path / "fan_only")
    pump = corpus[(corpus["machine_type"] == "pump") & (corpus["split"] == "test")]
    out = tmp_path / "scores.csv"

    def fails(*argv: str) -> str:
        assert main(["score", *argv, "--out", str(out)]) == 2
        return capsys.readouterr().err

    clip = [pump["path"].iloc[0], "--machine-type", "pump", "--machine-id", "id_00"]
    assert "class pump/id_00 was absent in training" in fails(str(tmp_path / "fan_only"), *clip)
    (tmp_path / "empty").mkdir()
    assert "no trained model" in fails(str(tmp_path / "empty"), *clip)
    assert f"give the folder of {tmp_path / 'fan_only' / 'model.pt'}" in fails(str(tmp_path), *clip)
    assert (f"{tmp_path / 'fan_only' / 'model.pt'}: a file, not a model folder; give the folder it is in "
            f"({tmp_path / 'fan_only'})") in fails(str(tmp_path / "fan_only" / "model.pt"), *clip)
    _dense(tmp_path, _split(corpus, "train"))
    assert f"give the folder above ({tmp_path / 'dense'})" in fails(str(tmp_path / "dense" / "fan"), *clip)
    SnrEstimator(SnrEstimatorSettings(logmel=LogMelSettings(n_mels=16), model=SnrBlstmSettings(n_mels=16, hidden=8))
                 ).save(tmp_path / "snr" / "model.pt")
    assert "not a detector" in fails(str(tmp_path / "snr"), *clip)
    pretrained = ConformerAE.from_settings(ConformerAESettings(input_dim=N_MELS, embed_dim=4, widths=(8,), n_heads=2))
    save_checkpoint(tmp_path / "pretrained" / "model.pt", pretrained, extra={"role": "pretrained"})
    assert "pre-trained weights, not a fine-tuned detector" in fails(str(tmp_path / "pretrained"), *clip)
    assert "need --machine-type" in fails(str(tmp_path / "fan_only"), pump["path"].iloc[0])
    assert "machine ID '7': write it as the manifests do" in fails(
        str(tmp_path / "fan_only"), pump["path"].iloc[0], "--machine-type", "fan", "--machine-id", "7")
    assert "named id_00, but the machine ID given is id_02" in fails(
        str(tmp_path / "fan_only"), str(Path(pump["path"].iloc[0]).parent), "--machine-type", "pump",
        "--machine-id", "id_02")
    missing = tmp_path / "nowhere.wav"
    assert f"{missing}: no such file" in fails(str(tmp_path / "fan_only"), str(missing), "--machine-type", "fan",
                                               "--machine-id", "id_00")
    at_8k = tmp_path / "8k.wav"
    write_wav(at_8k, np.zeros(3000), sample_rate=8000)
    assert f"{at_8k}: sample rate 8000 Hz" in fails(str(tmp_path / "fan_only"), str(at_8k), "--machine-type", "fan",
                                                    "--machine-id", "id_00")
    assert "6000 samples, but the model was trained on clips of 8000" in fails(
        str(tmp_path / "fan_only"), str(at_8k), "--resample", "--machine-type", "fan", "--machine-id", "id_00")
    assert not out.exists()


def test_model_card_gives_scorer_options_and_how_the_input_was_made(corpus, tmp_path, capsys):
    """A folder's model_card.json stands in for --params: STgram-MFN's scorer options, and
    with --extract the MSE settings and a fixed stop target of the training input."""
    manifest = tmp_path / "manifest.csv"
    write_manifest(corpus, manifest)
    test = _split(corpus, "test")
    settings = _stgram_settings()
    stgram = STgramMFNDetector(settings)
    stgram.fit(_split(corpus, "train"), read_recording, tmp_path / "stgram")
    write_model_card(tmp_path / "stgram", ModelCard("stgram_mfn", "raw", "clean", to_dict(settings)))
    out = tmp_path / "stgram.csv"
    assert main(["score", str(tmp_path / "stgram"), "--manifest", str(manifest), "--splits", "test",
                 "--out", str(out)]) == 0
    assert "note:" not in capsys.readouterr().out
    np.testing.assert_allclose(read_scores(out)["score_knn"], stgram.score(test, read_recording)["score_knn"],
                               rtol=1e-5)  # k 3 from the card (the model file alone gives k 1)

    detector, model_dir = _dense(tmp_path, _split(corpus, "train"))
    made = MseRecord(MseInput(snr_source="fixed", fixed_snr_db=3.0, settings=MSE))
    write_model_card(model_dir, ModelCard("dense_ae", "mse", "clean", to_dict(detector.settings), to_dict(made)))
    assert read_model_card(model_dir).extraction == to_dict(made)
    base = ["score", str(model_dir), "--manifest", str(manifest), "--splits", "test", "--out", str(out)]
    assert main(base + ["--extract", "--jobs", "1"]) == 0
    assert "note:" not in capsys.readouterr().out
    expected = score_recordings(detector, test, read_recording, Extraction(MSE, snr_db=3.0))
    np.testing.assert_allclose(read_scores(out)["score"], expected["score"], rtol=1e-6)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"mse": {"settings": to_dict(replace(MSE, max_steps=2))}}))
    assert main(base + ["--extract", "--params", str(params), "--jobs", "1"]) == 0
    assert "mse.settings differ from those the model's input was extracted with" in capsys.readouterr().out
    assert main(base) == 0
    assert "was trained on mse audio" in capsys.readouterr().out
    extracted = tmp_path / "extracted.csv"  # a manifest of MSE output (the mse stage's) needs no note
    write_manifest(corpus.assign(mse_snr_db=3.0), extracted)
    assert main(["score", str(model_dir), "--manifest", str(extracted), "--splits", "test", "--out", str(out)]) == 0
    assert "note:" not in capsys.readouterr().out
    assert main(["score", str(model_dir), "--manifest", str(extracted), "--splits", "test", "--extract",
                 "--jobs", "1", "--out", str(out)]) == 0
    assert (f"note: {extracted} lists MSE output (it has an mse_snr_db column); --extract extracts these clips "
            "again") in capsys.readouterr().out

    estimator = SnrEstimator(SnrEstimatorSettings(logmel=LogMelSettings(n_mels=16),
                                                  model=SnrBlstmSettings(n_mels=16, hidden=8)))
    estimator.save(tmp_path / "snr.pt")
    estimated = MseRecord(MseInput(settings=MSE), snr_model_sha256=file_digest(tmp_path / "snr.pt"))
    write_model_card(model_dir, ModelCard("dense_ae", "mse", "clean", to_dict(detector.settings),
                                          to_dict(estimated)))
    assert main(base + ["--extract"]) == 2
    assert "(its input was stopped at estimated SNRs)" in capsys.readouterr().err
    assert main(base + ["--extract", "--snr-model", str(tmp_path / "snr.pt"), "--jobs", "1"]) == 0
    assert "note:" not in capsys.readouterr().out
    torch.manual_seed(1)
    SnrEstimator(SnrEstimatorSettings(logmel=LogMelSettings(n_mels=16), model=SnrBlstmSettings(n_mels=16, hidden=8))
                 ).save(tmp_path / "other_snr.pt")
    assert main(base + ["--extract", "--snr-model", str(tmp_path / "other_snr.pt"), "--jobs", "1"]) == 0
    assert "is not the SNR estimator whose estimates stopped the extraction" in capsys.readouterr().out
    write_model_card(model_dir, ModelCard("stgram_mfn", "raw", "clean", {}))
    assert main(base) == 2
    assert "a card of a stgram_mfn, but" in capsys.readouterr().err
    (model_dir / MODEL_CARD_FILE).write_text("{not json")
    assert main(base) == 2
    assert f"{model_dir / MODEL_CARD_FILE}: not valid JSON" in capsys.readouterr().err
    with pytest.raises(ValueError, match="extraction must be given for mse input"):
        ModelCard("dense_ae", "mse", "clean", {})


def test_decisions_use_the_thresholds_of_the_scorer_asked_for(corpus, tmp_path):
    train = _split(corpus, "train")
    settings = _stgram_settings()  # scorer: published
    detector = STgramMFNDetector(settings)
    detector.fit(train, read_recording, tmp_path / "stgram")
    write_scores(tmp_path / "stgram" / NORMAL_SCORES_FILE, recording_table(train, detector.training_scores()))
    manifest, params, out = tmp_path / "manifest.csv", tmp_path / "params.yaml", tmp_path / "scores.csv"
    write_manifest(corpus, manifest)
    params.write_text(yaml.safe_dump({"detectors": {"stgram_mfn": to_dict(replace(settings, score="knn"))}}))
    assert main(["score", str(tmp_path / "stgram"), "--manifest", str(manifest), "--splits", "test",
                 "--params", str(params), "--out", str(out)]) == 0
    table = read_scores(out)
    np.testing.assert_array_equal(table["score"], table["score_knn"])
    thresholds = fit_thresholds(read_scores(tmp_path / "stgram" / NORMAL_SCORES_FILE), "score_knn", 0.9)
    assert table["threshold"].tolist() == pytest.approx(
        [thresholds[(t, i)] for t, i in zip(table["machine_type"], table["machine_id"])])


def test_auc_leaves_out_the_training_clips(corpus, tmp_path, capsys):
    _, model_dir = _dense(tmp_path, _split(corpus, "train"))
    manifest = tmp_path / "manifest.csv"
    write_manifest(corpus, manifest)
    summaries = []
    for splits in (["--splits", "test"], []):
        assert main(["score", str(model_dir), "--manifest", str(manifest), *splits,
                     "--out", str(tmp_path / "scores.csv")]) == 0
        summaries.append(capsys.readouterr().out)
    auc = [line for line in summaries[0].splitlines() if "mean AUC" in line]
    assert auc and auc[0] in summaries[1] and "leave out the training clips" in summaries[1]
    assert len(read_scores(tmp_path / "scores.csv")) == len(corpus)  # every clip is still scored


def test_channel_of_multichannel_files(corpus, tmp_path, capsys):
    _, model_dir = _dense(tmp_path, _split(corpus, "train"))
    path = corpus[(corpus["split"] == "test") & (corpus["machine_type"] == "fan")]["path"].iloc[0]
    mono = read_recording(pd.Series({"path": path, "channel": 0}))
    import soundfile as sf
    stereo = tmp_path / "stereo" / "fan_id_00.wav"
    stereo.parent.mkdir()
    sf.write(stereo, np.stack([np.zeros_like(mono), mono], axis=1), SR, subtype="FLOAT")
    machine = ["--machine-type", "fan", "--machine-id", "id_00"]
    scores = {}
    for name, extra in (("mono", [path]), ("channel 1", [str(stereo), "--channel", "1"]),
                        ("default", [str(stereo)])):
        assert main(["score", str(model_dir), *extra, *machine, "--out", str(tmp_path / "s.csv")]) == 0
        scores[name] = read_scores(tmp_path / "s.csv")["score"].iloc[0]
        printed = capsys.readouterr().out
        assert ("1 of 1 files have several channels" in printed) == (name == "default")
    assert scores["channel 1"] == pytest.approx(scores["mono"], rel=1e-6)
    assert scores["default"] != pytest.approx(scores["mono"], rel=1e-3)
    assert main(["score", str(model_dir), str(stereo), "--channel", "2", *machine, "--out", str(tmp_path / "x.csv")]) == 2
    assert "channel 2 requested but the file has 2 channels" in capsys.readouterr().err
    second = corpus[(corpus["split"] == "test") & (corpus["machine_type"] == "fan")]["path"].iloc[1]
    assert main(["score", str(model_dir), path, second, str(stereo), "--channel", "1", *machine,
                 "--out", str(tmp_path / "s.csv")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert notes == [f"note: --channel 1: 2 of 3 files are mono (e.g. {path}); scoring their one channel"]


def test_extract_on_a_raw_model_says_what_to_give(corpus, tmp_path, capsys):
    _, model_dir = _dense(tmp_path, _split(corpus, "train"))
    write_model_card(model_dir, ModelCard("dense_ae", "raw", "clean", {}))
    path = corpus[(corpus["split"] == "test") & (corpus["machine_type"] == "fan")]["path"].iloc[0]
    assert main(["score", str(model_dir), path, "--machine-type", "fan", "--machine-id", "id_00", "--extract",
                 "--snr-db", "0", "--out", str(tmp_path / "s.csv")]) == 2
    captured = capsys.readouterr()
    assert "trained on raw audio, so its model card names no MSE settings; give --params" in captured.err
    assert "never saw in training" in captured.out


def test_other_scorer_options_get_thresholds_of_their_own_training_scores(corpus, tmp_path, capsys):
    train = _split(corpus, "train")
    settings = replace(_stgram_settings(), score="knn")  # knn_k 3
    model_dir, manifest = tmp_path / "stgram", tmp_path / "manifest.csv"
    detector = STgramMFNDetector(settings)
    detector.fit(train, read_recording, model_dir)
    write_scores(model_dir / NORMAL_SCORES_FILE, recording_table(train, detector.training_scores()))
    write_model_card(model_dir, ModelCard("stgram_mfn", "raw", "clean", to_dict(settings)))
    write_manifest(corpus, manifest)

    def thresholds(knn_k: int) -> tuple[dict, str]:
        params, out = tmp_path / f"k{knn_k}.yaml", tmp_path / f"k{knn_k}.csv"
        params.write_text(yaml.safe_dump({"detectors": {"stgram_mfn": to_dict(replace(settings, knn_k=knn_k))}}))
        assert main(["score", str(model_dir), "--manifest", str(manifest), "--splits", "test",
                     "--params", str(params), "--out", str(out)]) == 0
        table = read_scores(out)
        return table.groupby(["machine_type", "machine_id"])["threshold"].first().to_dict(), capsys.readouterr().out

    kept, printed = thresholds(3)  # the card's options: the folder's training scores
    assert "recomputed" not in printed
    assert kept == pytest.approx(fit_thresholds(read_scores(model_dir / NORMAL_SCORES_FILE), "score_knn", 0.9))
    nearest, printed = thresholds(1)
    assert "recomputed from the model's training embeddings with {'knn_k': 1, 'mahalanobis_shrinkage': None}" in printed
    _, restored = load_detector(model_dir, {"stgram_mfn": to_dict(replace(settings, knn_k=1))})
    assert nearest == pytest.approx(fit_thresholds(restored.embedding_training_scores(), "score_knn", 0.9))
    assert all(nearest[key] < kept[key] for key in kept)  # the nearest neighbour is nearer than the third
    (model_dir / MODEL_CARD_FILE).unlink()  # options unknown: recomputed, as fit computed them
    again, printed = thresholds(3)
    assert "has no model_card.json to say which it was scored with" in printed
    assert again == pytest.approx(kept)


def test_folders_skip_hidden_files(corpus, tmp_path):
    fan0 = corpus.query("split == 'test' and machine_type == 'fan' and machine_id == 'id_00'")["path"]
    folder = tmp_path / "recordings"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    for path in fan0:
        shutil.copy(path, folder)
    shutil.copy(fan0.iloc[0], folder / ".ipynb_checkpoints")
    (folder / "._copy.wav").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata, not audio
    rows = recording_rows([folder], "fan", "id_00")
    assert rows["path"].tolist() == sorted(str(folder / Path(path).name) for path in fan0)


def test_bad_options_are_refused_before_any_work(corpus, tmp_path, capsys, monkeypatch):
    _, model_dir = _dense(tmp_path, _split(corpus, "train"))
    manifest, out = tmp_path / "manifest.csv", tmp_path / "scores.csv"
    write_manifest(corpus, manifest)
    clip = [corpus["path"].iloc[0], "--machine-type", "fan", "--machine-id", "id_00"]

    def fails(*argv: str, to: Path = out) -> str:
        assert main(["score", str(model_dir), *argv, "--out", str(to)]) == 2
        assert not out.exists()
        return capsys.readouterr().err

    assert f"{manifest}: no clips of split tset (it has test, train)" in fails(
        "--manifest", str(manifest), "--splits", "test", "tset")
    assert "--splits and --conditions choose a manifest's clips" in fails(*clip, "--splits", "test")
    assert "score --threads 0: give 1 or more" in fails(*clip, "--threads", "0")
    assert "score --snr-db nan: give a finite number of dB" in fails(*clip, "--extract", "--snr-db", "nan")
    assert "score --jobs 0: n_jobs must be" in fails(*clip, "--jobs", "0")
    assert "score --device gpu:" in fails(*clip, "--device", "gpu")
    if not torch.cuda.is_available():
        assert "score --device cuda: device 'cuda' requested but CUDA is not available" in fails(
            *clip, "--device", "cuda")
    (tmp_path / "elsewhere").mkdir()
    assert f"score --out {tmp_path / 'elsewhere'}: a folder" in fails(*clip, to=tmp_path / "elsewhere")
    relative = tmp_path / "relative.csv"
    write_manifest(corpus.assign(path=[os.path.relpath(p, tmp_path) for p in corpus["path"]]), relative)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert "relative paths are read from the folder asd runs in" in fails("--manifest", str(relative))
    monkeypatch.chdir(tmp_path)
    assert main(["score", str(model_dir), "--manifest", str(relative), "--out", str(out)]) == 0


def test_bad_values_and_files_are_refused_before_any_clip_is_scored(corpus, tmp_path, capsys, monkeypatch):
    """The quantile, the output path, the input files and the folder's training normals'
    scores are checked before the first clip is read: scoring can take minutes."""
    train = _split(corpus, "train")
    detector, model_dir = _dense(tmp_path, train)
    manifest = tmp_path / "manifest.csv"
    write_manifest(corpus, manifest)

    def unscored(*args, **kwargs):
        raise AssertionError("clips were scored")

    monkeypatch.setattr(inference, "score_recordings", unscored)

    def fails(*argv: str, out: Path = tmp_path / "scores.csv") -> str:
        assert main(["score", str(model_dir), "--manifest", str(manifest), *argv, "--out", str(out)]) == 2
        return capsys.readouterr().err

    assert "score --quantile 2: quantile must be in (0, 1)" in fails("--quantile", "2")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"evaluate": {"decision": {"quantile": 1.5}}}))
    assert f"{params}: evaluate.decision: quantile must be in (0, 1)" in fails("--params", str(params))
    assert f"score --out {manifest / 'x.csv'}: {manifest} is a file, not a folder" in fails(out=manifest / "x.csv")
    assert f"score --manifest {tmp_path}: a folder; give the manifest CSV" in fails("--manifest", str(tmp_path))
    assert f"score --params {tmp_path}: a folder; give a params.yaml" in fails("--params", str(tmp_path))
    normals = model_dir / NORMAL_SCORES_FILE
    normals.write_text("garbage\n")
    assert f"{normals}: lacks columns ['machine_type', 'machine_id', 'score']" in fails()
    recording_table(train, detector.training_scores()).assign(score="high").to_csv(normals, index=False)
    assert f"{normals}: column score holds values that are not numbers" in fails()
    normals.write_text(",".join(CLIP_COLUMNS + ["score"]) + "\n")
    assert f"{normals}: no rows" in fails()
    assert not (tmp_path / "scores.csv").exists()


def test_counts_of_one_clip_and_a_quantile_without_thresholds(corpus, tmp_path, capsys):
    train = _split(corpus, "train")
    detector, model_dir = _dense(tmp_path, train)
    fan2 = corpus.query("split == 'test' and machine_type == 'fan' and machine_id == 'id_02'")["path"].iloc[0]
    argv = ["score", str(model_dir), fan2, "--machine-type", "fan", "--machine-id", "id_02",
            "--out", str(tmp_path / "s.csv")]
    assert main(argv + ["--quantile", "0.8"]) == 0
    printed = capsys.readouterr().out
    assert "dense_ae (" in printed and ": 1 clip scored -> " in printed
    assert f"no decisions: {model_dir} has no {NORMAL_SCORES_FILE} (trained before thresholds were kept); " \
           "--quantile 0.8 goes unused" in printed
    normals = recording_table(train, detector.training_scores())
    write_scores(model_dir / NORMAL_SCORES_FILE, normals[normals["machine_id"] != "id_02"])
    assert main(argv) == 0
    assert "1 clip without a decision: its machine ID had no training clips" in capsys.readouterr().out
