"""Detectors fit and score tiny synthetic data; embedding scorers on toy embeddings."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from asdlib.config import ConfigError
from asdlib.datasets import split_train_val
from asdlib.detectors.common import DetectorError, unscorable_class
from asdlib.detectors.conformer_ae import ConformerAEDetector, ConformerAEDetectorSettings
from asdlib.detectors.dense_ae import DenseAEDetector, DenseAEDetectorSettings
from asdlib.detectors.registry import build_detector
from asdlib.detectors.stgram_mfn import STgramMFNDetector, STgramMFNDetectorSettings
from asdlib.features import DCASE_BASELINE_LOGMEL, STGRAM_LOGMEL
from asdlib.models.conformer_ae import ConformerAESettings
from asdlib.models.stgram_mfn import STgramMFNSettings
from asdlib.scoring import (KNNScorer, MahalanobisScorer, UnknownClassError, cross_fit_min_clips,
                            cross_fitted_scores)
from asdlib.training import TrainSettings, read_checkpoint

SR = 16000
SECONDS = 0.5
TONES = {("fan", "id_00"): 440.0, ("fan", "id_02"): 1000.0, ("pump", "id_00"): 300.0, ("pump", "id_02"): 2000.0}
N_MELS = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _corpus(n_train: int = 6, n_test: int = 3) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Sines per machine ID (normal) and loud white noise (anomaly)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * SR)) / SR
    rows, waves = [], {}
    for (machine_type, machine_id), freq in TONES.items():
        for split, label, count in (("train", "normal", n_train), ("test", "normal", n_test),
                                    ("test", "anomaly", n_test)):
            for k in range(count):
                clip_id = f"{machine_type}_{machine_id}_{split}_{label}_{k}"
                if label == "normal":
                    x = 0.3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
                    x = x + 0.005 * rng.standard_normal(len(t))
                else:
                    x = 0.5 * rng.standard_normal(len(t))
                waves[clip_id] = x.astype(np.float32)
                rows.append(dict(clip_id=clip_id, machine_type=machine_type, machine_id=machine_id,
                                 split=split, label=label, dataset="toy"))
    return pd.DataFrame(rows), waves


ROWS, WAVES = _corpus()
TRAIN = ROWS[ROWS.split == "train"].reset_index(drop=True)
TEST = ROWS[ROWS.split == "test"].reset_index(drop=True)


def _load(row: pd.Series) -> np.ndarray:
    return WAVES[row["clip_id"]]


def _train(epochs: int = 2, batch_size: int = 16, **kw) -> TrainSettings:
    return TrainSettings(epochs=epochs, batch_size=batch_size, device="cpu", val_fraction=0.2, **kw)


def _anomalies_score_higher(scores: pd.DataFrame, column: str = "score") -> bool:
    merged = TEST.merge(scores, on="clip_id")
    by_label = merged.groupby("label")[column]
    return by_label.min()["anomaly"] > by_label.max()["normal"]


def test_dense_ae_fits_scores_and_restores(tmp_path):
    settings = DenseAEDetectorSettings(logmel=replace(DCASE_BASELINE_LOGMEL, n_mels=N_MELS),
                                       train=_train(epochs=20, batch_size=16, lr=1e-2))
    detector = DenseAEDetector(settings)
    results = detector.fit(TRAIN, _load, tmp_path)
    assert set(results) == {"fan", "pump"}
    assert (tmp_path / "fan" / "model.pt").exists() and (tmp_path / "pump" / "history.csv").exists()
    scores = detector.score(TEST, _load)
    assert list(scores.columns) == ["clip_id", "score"]
    assert list(scores["clip_id"]) == list(TEST["clip_id"])
    assert np.isfinite(scores["score"]).all()
    assert _anomalies_score_higher(scores)

    _training_scores_are_its_scores_of_the_training_clips(detector)

    restored = DenseAEDetector(settings)
    restored.restore(tmp_path)
    pd.testing.assert_frame_equal(restored.score(TEST, _load), scores)
    fan_only = tmp_path.parent / f"{tmp_path.name}-fan"
    (fan_only / "fan").mkdir(parents=True)
    shutil.copy(tmp_path / "fan" / "model.pt", fan_only / "fan" / "model.pt")
    restored.restore(fan_only)  # replaces the models restored before: pump is gone
    with pytest.raises(DetectorError, match="no dense_ae model for machine type pump"):
        restored.score(TEST, _load)
    with pytest.raises(DetectorError, match="no training scores"):
        restored.training_scores()
    with pytest.raises(DetectorError, match="no dense_ae model for machine type valve"):
        detector.score(TEST.assign(machine_type="valve"), _load)


def _training_scores_are_its_scores_of_the_training_clips(detector, columns=("score",)) -> pd.DataFrame:
    """Every training clip (its validation share too) once, scored as :meth:`score` would."""
    training = detector.training_scores()
    assert sorted(training["clip_id"]) == sorted(TRAIN["clip_id"])
    training = training.set_index("clip_id").loc[TRAIN["clip_id"]].reset_index()
    again = detector.score(TRAIN, _load)
    for column in columns:
        np.testing.assert_allclose(training[column], again[column], rtol=1e-5)
    return training


def test_dense_ae_refuses_test_rows_in_training(tmp_path):
    with pytest.raises(DetectorError, match="is not a training normal"):
        DenseAEDetector(DenseAEDetectorSettings(train=_train())).fit(ROWS, _load, tmp_path)


def _conformer_settings(init: str) -> ConformerAEDetectorSettings:
    return ConformerAEDetectorSettings(
        logmel=replace(DCASE_BASELINE_LOGMEL, n_mels=N_MELS),
        model=ConformerAESettings(input_dim=N_MELS, embed_dim=4, widths=(16, 8), n_heads=2, conv_kernel=5),
        segment_frames=8, init=init, train=_train(epochs=2, lr=3e-3), pretrain=_train(epochs=2, lr=3e-3))


def test_conformer_pretrain_then_finetune(tmp_path):
    generic = TRAIN[TRAIN.machine_type == "fan"].assign(dataset="generic")
    detector = ConformerAEDetector(_conformer_settings("pretrained"))
    weights = detector.pretrain(generic, _load, tmp_path / "pretrain")
    assert weights == tmp_path / "pretrain" / "model.pt"
    pretrained = read_checkpoint(weights)["model"]

    initial = detector.initial_model().state_dict()
    assert all(torch.equal(initial[k], pretrained[k]) for k in pretrained)  # encoder and decoder loaded
    detector.fit(TRAIN, _load, tmp_path / "fine")
    tuned = read_checkpoint(tmp_path / "fine" / "fan" / "model.pt")["model"]
    encoder_keys = [k for k in pretrained if k.startswith("encoder.") and pretrained[k].is_floating_point()]
    assert encoder_keys and any(not torch.equal(tuned[k], pretrained[k]) for k in encoder_keys)

    scores = detector.score(TEST, _load)
    assert np.isfinite(scores["score"]).all()
    assert _anomalies_score_higher(scores)
    _training_scores_are_its_scores_of_the_training_clips(detector)

    restored = ConformerAEDetector(_conformer_settings("pretrained"))
    restored.restore(tmp_path / "fine")
    pd.testing.assert_frame_equal(restored.score(TEST, _load), scores)


def test_conformer_scratch_differs_and_pretrained_needs_weights(tmp_path):
    scratch = ConformerAEDetector(_conformer_settings("scratch")).initial_model().state_dict()
    again = ConformerAEDetector(_conformer_settings("scratch")).initial_model().state_dict()
    assert all(torch.equal(scratch[k], again[k]) for k in scratch)  # seeded
    with pytest.raises(DetectorError, match="no pre-trained weights"):
        ConformerAEDetector(_conformer_settings("pretrained")).fit(TRAIN, _load, tmp_path)


def test_conformer_scores_in_batches_as_one_clip_at_a_time(monkeypatch):
    """Clips of two models and three lengths, interleaved: each score in its place, equal to
    the clip's score alone up to float32 rounding, and batches of one model and length."""
    detector = ConformerAEDetector(_conformer_settings("scratch"))
    models = [detector.initial_model().eval(), ConformerAEDetector(replace(
        _conformer_settings("scratch"), train=_train(seed=5))).initial_model().eval()]
    generator = torch.Generator().manual_seed(0)
    clips = [(models[i % 2], torch.randn(N_MELS, (7, 12, 30)[i % 3], generator=generator)) for i in range(75)]
    with torch.no_grad():
        alone = [float(model.reconstruction_error(mel.T[None]).mean()) for model, mel in clips]
    monkeypatch.setattr("asdlib.detectors.conformer_ae.SCORE_BATCH", 4)
    batches = []
    for model in models:
        forward = model.reconstruction_error
        monkeypatch.setattr(model, "reconstruction_error",
                            lambda frames, forward=forward: batches.append(frames.shape) or forward(frames))
    scores = detector._errors(iter(clips))
    np.testing.assert_allclose(scores, alone, rtol=1e-6)
    assert len(set(scores)) == len(scores)
    group_sizes = pd.Series([i % 6 for i in range(75)]).value_counts()  # (model, length) pairs
    assert len(batches) == sum(-(-n // 4) for n in group_sizes)
    assert sum(shape[0] for shape in batches) == 75 and max(shape[0] for shape in batches) == 4


def test_conformer_normalise_global_uses_one_scale_and_band_one_per_band(tmp_path):
    stds = {}
    for normalise in ("global", "band"):
        settings = replace(_conformer_settings("scratch"), normalise=normalise)
        ConformerAEDetector(settings).fit(TRAIN[TRAIN.machine_type == "fan"], _load, tmp_path / normalise)
        stds[normalise] = read_checkpoint(tmp_path / normalise / "fan" / "model.pt")["extra"]["std"]
    assert torch.allclose(stds["global"], stds["global"][0].expand_as(stds["global"]))
    assert stds["band"].std() > 0  # tones and faint noise: bands differ
    with pytest.raises(ValueError, match="normalise"):
        replace(_conformer_settings("scratch"), normalise="per_clip")


def _stgram_settings(**kw) -> STgramMFNDetectorSettings:
    return STgramMFNDetectorSettings(logmel=replace(STGRAM_LOGMEL, n_mels=N_MELS),
                                     model=STgramMFNSettings(n_mels=N_MELS, blocks="mfn6"),
                                     train=_train(epochs=2, batch_size=8, lr=1e-3), knn_k=2, **kw)


def test_stgram_mfn_scores_side_by_side_and_restores(tmp_path):
    detector = STgramMFNDetector(_stgram_settings(score="mahalanobis"))
    detector.fit(TRAIN, _load, tmp_path)
    assert read_checkpoint(tmp_path / "model.pt")["extra"]["classes"] == \
        ["fan/id_00", "fan/id_02", "pump/id_00", "pump/id_02"]
    scores = detector.score(TEST, _load)
    assert list(scores.columns) == ["clip_id", "score", "score_published", "score_mahalanobis", "score_knn"]
    assert np.isfinite(scores.drop(columns="clip_id").to_numpy()).all()
    assert (scores["score"] == scores["score_mahalanobis"]).all()
    assert (scores["score_published"] > 0).all()  # -log p with p < 1
    assert _anomalies_score_higher(scores, "score_mahalanobis")
    assert _anomalies_score_higher(scores, "score_knn")

    # training clips: the network's score as for any clip; the embedding scores cross-fitted
    training = _training_scores_are_its_scores_of_the_training_clips(detector, ["score_published"])
    assert (training["score"] == training["score_mahalanobis"]).all()
    in_sample = detector.score(TRAIN, _load)
    assert (training["score_knn"] > in_sample["score_knn"]).all()  # a clip is not its own neighbour
    assert (training["score_mahalanobis"] > in_sample["score_mahalanobis"]).all()

    restored = STgramMFNDetector(_stgram_settings(score="knn"))
    restored.restore(tmp_path)
    again = restored.score(TEST, _load)
    pd.testing.assert_series_equal(again["score_published"], scores["score_published"])
    assert (again["score"] == again["score_knn"]).all()


def test_stgram_mfn_unseen_class_and_clip_length(tmp_path):
    detector = STgramMFNDetector(_stgram_settings())
    detector.fit(TRAIN[TRAIN.machine_type == "fan"], _load, tmp_path)
    with pytest.raises(DetectorError, match="class pump/id_00 was absent in training"):
        detector.score(TEST, _load)
    with pytest.raises(DetectorError, match="samples, but the model was trained on clips of 8000"):
        detector.score(TEST[TEST.machine_type == "fan"], lambda row: np.zeros(4000, np.float32))


@pytest.mark.parametrize("detector, dropped, unscorable", [
    (DenseAEDetector, "pump", ("pump", "pump_id_00_test_normal_0")),
    (DenseAEDetector, "pump/id_02", None),  # the autoencoders score every ID of a machine type they trained on
    (ConformerAEDetector, "pump", ("pump", "pump_id_00_test_normal_0")),
    (ConformerAEDetector, "pump/id_02", None),
    (STgramMFNDetector, "pump", ("pump/id_00", "pump_id_00_test_normal_0")),
    (STgramMFNDetector, "pump/id_02", ("pump/id_02", "pump_id_02_test_normal_0")),
])
def test_unscorable_class_is_the_first_class_to_score_the_detector_gets_no_training_clips_of(detector, dropped,
                                                                                           unscorable):
    train = TRAIN[~(TRAIN.machine_type + "/" + TRAIN.machine_id + "/").str.startswith(f"{dropped}/")]
    assert unscorable_class(detector, train, TEST) == unscorable
    assert unscorable_class(detector, TRAIN, TEST) is None


def test_build_detector_parses_settings():
    detector = build_detector("stgram_mfn", {"score": "knn", "train": {"epochs": 3, "device": "cpu"}})
    assert detector.settings.score == "knn" and detector.settings.train.epochs == 3
    assert detector.settings.train.lr == 1e-4
    with pytest.raises(ConfigError, match="stgram_mfn.train.epoch"):
        build_detector("stgram_mfn", {"train": {"epoch": 3}})
    with pytest.raises(DetectorError, match="unknown detector"):
        build_detector("svm")
    if not torch.cuda.is_available():  # a setting wrong for this machine, named like a wrong key
        with pytest.raises(DetectorError, match=r"params.yaml: detectors.dense_ae: train.device: device 'cuda' "
                                                r"requested but CUDA is not available"):
            build_detector("dense_ae", {"train": {"device": "cuda"}}, "params.yaml: detectors.dense_ae")
    with pytest.raises(ValueError, match="must equal logmel.n_mels"):
        STgramMFNDetectorSettings(model=STgramMFNSettings(n_mels=64))


def test_mahalanobis_and_knn_on_toy_embeddings():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (50, 4)) * [1, 1, 0.1, 0.1] + [5, 0, 0, 0]
    b = rng.normal(0, 1, (50, 4)) + [0, 5, 0, 0]
    train = np.concatenate([a, b])
    classes = ["a"] * 50 + ["b"] * 50
    maha = MahalanobisScorer().fit(train, classes)
    # same Euclidean offset from class a's mean: along a low-variance axis is far more anomalous
    far = maha.score(np.array([[5, 0, 1, 0], [6, 0, 0, 0]]), ["a", "a"])
    assert far[0] > 3 * far[1]
    assert maha.score(a[:1], ["a"])[0] < maha.score(a[:1], ["b"])[0]
    identity = MahalanobisScorer(shrinkage=1.0).fit(train, classes)
    assert identity.score(np.array([[5, 0, 1, 0]]), ["a"])[0] < far[0]

    knn = KNNScorer(k=1).fit(train, classes)
    assert knn.score(a[3:4], ["a"])[0] == pytest.approx(0.0, abs=1e-12)  # its own copy
    assert knn.score(np.array([[0, 5, 0, 0]]), ["a"])[0] > knn.score(np.array([[0, 5, 0, 0]]), ["b"])[0]
    assert KNNScorer(k=1000).fit(train, classes).score(a[:1], ["a"])[0] > 0  # k capped at class size
    square = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # cosine distances 0, 1, 2 from [1, 0]
    assert KNNScorer(k=2).fit(square, ["s"] * 3).score(np.array([[2.0, 0.0]]), ["s"])[0] == pytest.approx(0.5)
    with pytest.raises(UnknownClassError, match="class c was not seen"):
        knn.score(a[:1], ["c"])
    with pytest.raises(ValueError, match="class c: 1 training embedding"):
        MahalanobisScorer().fit(train[:3], ["a", "a", "c"])
    for scorer in (MahalanobisScorer(), KNNScorer(k=1)):  # a second fit replaces the first's classes
        scorer.fit(train, classes).fit(b, ["b"] * 50)
        with pytest.raises(UnknownClassError, match="class a was not seen"):
            scorer.score(a[:1], ["a"])


def test_cross_fitted_scores_refit_without_the_clips_fold():
    rng = np.random.default_rng(3)
    embeddings = rng.standard_normal((16, 4))
    classes = ["a"] * 6 + ["b"] * 10
    held_out = cross_fitted_scores(lambda: KNNScorer(k=2), embeddings, classes, folds=5)
    kept = [i for i in range(6, 16) if (i - 6) % 5 != 2]  # b's fold 2 is clips 8 and 13
    expected = KNNScorer(k=2).fit(embeddings[kept], ["b"] * 8).score(embeddings[[8, 13]], ["b", "b"])
    np.testing.assert_allclose(held_out[[8, 13]], expected)
    assert np.all(held_out > KNNScorer(k=2).fit(embeddings, classes).score(embeddings, classes))
    loo = cross_fitted_scores(lambda: KNNScorer(k=1), embeddings, classes, folds=16)  # one clip a fold
    own = [i for i in range(6) if i != 4]
    assert loo[4] == pytest.approx(KNNScorer(k=1).fit(embeddings[own], ["a"] * 5).score(embeddings[4:5], ["a"])[0])
    mahalanobis = cross_fitted_scores(MahalanobisScorer, embeddings, classes)
    assert np.all(np.isfinite(mahalanobis)) and mahalanobis.shape == (16,)
    with pytest.raises(ValueError, match="folds"):
        cross_fitted_scores(MahalanobisScorer, embeddings, classes, folds=1)


def test_published_score_is_minus_log_softmax_and_keeps_ranking_where_float32_rounds_to_zero():
    from asdlib.detectors.stgram_mfn import published_score

    logits = torch.tensor([[3.0, 1.0, -2.0], [0.5, 2.5, 0.0]])
    label = torch.tensor([0, 2])
    expected = -torch.log_softmax(logits.double(), dim=1).gather(1, label[:, None])[:, 0]
    torch.testing.assert_close(published_score(logits, label), expected)
    # An own class 30 and 35 logits above the rest: float32 log_softmax says 0 for both.
    confident = torch.tensor([[30.0, 0.0, 0.0], [35.0, 0.0, 0.0]])
    label = torch.tensor([0, 0])
    assert (torch.log_softmax(confident, dim=1)[:, 0] == 0).all()
    scores = published_score(confident, label)
    assert 0 < scores[1] < scores[0]
    torch.testing.assert_close(scores[0], torch.tensor(2 * np.exp(-30.0), dtype=torch.float64))


def test_cross_fit_min_clips_is_the_fewest_the_mahalanobis_cross_fit_takes():
    rng = np.random.default_rng(0)
    assert cross_fit_min_clips(2) == 3 and cross_fit_min_clips(2, folds=2) == 4
    for folds in (2, 5):
        n = cross_fit_min_clips(2, folds)
        assert np.isfinite(cross_fitted_scores(MahalanobisScorer, rng.standard_normal((n, 4)), ["a"] * n,
                                               folds)).all()
        with pytest.raises(ValueError, match="Mahalanobis needs 2"):
            cross_fitted_scores(MahalanobisScorer, rng.standard_normal((n - 1, 4)), ["a"] * (n - 1), folds)


def test_stgram_mfn_refuses_too_small_classes_before_training(tmp_path):
    fan = TRAIN[TRAIN.machine_type == "fan"]
    small = pd.concat([fan[fan.machine_id == "id_00"].head(2), fan[fan.machine_id == "id_02"].head(1),
                       TRAIN[TRAIN.machine_type == "pump"]])
    with pytest.raises(DetectorError, match=r"too few training clips in class\(es\) fan/id_00 \(2\), "
                                            r"fan/id_02 \(1\): each machine ID needs 3 or more"):
        STgramMFNDetector(_stgram_settings()).fit(small, _load, tmp_path)
    one_class = fan[fan.machine_id == "id_00"].head(3)  # 2 of 3 held out for validation: 1 left to train on
    settings = replace(_stgram_settings(), train=replace(_stgram_settings().train, val_fraction=0.9))
    with pytest.raises(DetectorError, match=r"1 training clip\(s\) left after holding out train\.val_fraction=0\.9"):
        STgramMFNDetector(settings).fit(one_class, _load, tmp_path)
    assert not list(tmp_path.iterdir())  # refused before training wrote anything


def test_stgram_mfn_needs_batches_of_two():
    with pytest.raises(ValueError, match=r"train.batch_size must be >= 2 .*got 1"):
        replace(_stgram_settings(), train=_train(batch_size=1))
    with pytest.raises(ConfigError, match=r"stgram_mfn: train.batch_size must be >= 2"):
        build_detector("stgram_mfn", {"train": {"batch_size": 1, "device": "cpu"}})


def _other_validation_audio(rows: pd.DataFrame, settings: TrainSettings):
    """A load giving the validation clips of ``rows`` other audio (time-reversed) under the same
    ids: the training clips, and so the normalisation statistics, stay as they were."""
    changed = set(split_train_val(rows, settings.val_fraction, settings.seed)[1]["clip_id"])
    return lambda row: WAVES[row["clip_id"]][::-1].copy() if row["clip_id"] in changed else _load(row)


def _resumed_from(result) -> list[int]:
    return [r.resumed_from for r in (result.values() if isinstance(result, dict) else [result])]


@pytest.mark.parametrize("detector", ["dense_ae", "conformer_ae", "stgram_mfn"])
def test_other_audio_under_the_same_clip_ids_is_trained_afresh(tmp_path, detector):
    rows = TRAIN[TRAIN.machine_type == "fan"]
    settings = {"dense_ae": DenseAEDetectorSettings(logmel=replace(DCASE_BASELINE_LOGMEL, n_mels=N_MELS),
                                                    train=_train()),
                "conformer_ae": _conformer_settings("scratch"), "stgram_mfn": _stgram_settings()}[detector]
    build = {"dense_ae": DenseAEDetector, "conformer_ae": ConformerAEDetector,
             "stgram_mfn": STgramMFNDetector}[detector]
    assert _resumed_from(build(settings).fit(rows, _load, tmp_path)) == [0]
    assert _resumed_from(build(settings).fit(rows, _load, tmp_path)) == [2]  # same data: resumed
    assert _resumed_from(build(settings).fit(rows, _other_validation_audio(rows, settings.train), tmp_path)) == [0]


@pytest.mark.parametrize("change", [{"segment_frames": 4}, {"segments_per_clip": 2}])
def test_conformer_other_training_segments_are_trained_afresh(tmp_path, change):
    rows = TRAIN[TRAIN.machine_type == "fan"]
    settings = _conformer_settings("scratch")
    assert _resumed_from(ConformerAEDetector(settings).fit(rows, _load, tmp_path)) == [0]
    assert _resumed_from(ConformerAEDetector(replace(settings, **change)).fit(rows, _load, tmp_path)) == [0]
