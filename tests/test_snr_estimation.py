import numpy as np
import pandas as pd
import pytest
import torch

from asdlib.models.snr_blstm import SnrBlstm, SnrBlstmSettings
from asdlib.snr_estimation import (SnrEstimator, SnrEstimatorSettings, SnrTrainSettings, make_examples,
                                   plot_snr_scatter, snr_report, train_snr_estimator)
from asdlib.training import save_checkpoint
from asdlib.features import LogMelSettings

SR = 16000


def machine_clip(rng, n=8000):
    """A harmonic 'machine' with a random fundamental: structured, unlike the noises."""
    t = np.arange(n) / SR
    f0 = rng.uniform(80, 400)
    x = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in range(1, 8))
    return (0.1 * x).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    clips = [machine_clip(rng) for _ in range(24)]
    white = rng.standard_normal(40000).astype(np.float32)
    brown = np.cumsum(rng.standard_normal(40000)).astype(np.float32)
    bank = {"white": white, "brown": brown / np.std(brown)}
    return clips, bank


def small_settings(**train) -> SnrEstimatorSettings:
    return SnrEstimatorSettings(logmel=LogMelSettings(n_mels=32), model=SnrBlstmSettings(n_mels=32, hidden=24),
                                examples_per_epoch=384, val_examples=64,
                                train=SnrTrainSettings(**{"epochs": 10, "lr": 5e-3, "num_threads": 1, **train}))


def test_stacked_layers_shapes():
    for layers in (1, 2, 3):
        model = SnrBlstm(SnrBlstmSettings(n_mels=16, hidden=8, layers=layers))
        assert model(torch.randn(3, 20, 16)).shape == (3,)


def test_examples_are_reproducible(data):
    clips, bank = data
    settings = small_settings()
    a = make_examples(clips, bank, 10, 7, settings)
    b = make_examples(clips, bank, 10, 7, settings)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[1].min() >= -10.01 and a[1].max() <= 15.01


def test_estimator_learns_and_round_trips(data, tmp_path):
    clips, bank = data
    torch.set_num_threads(1)
    estimator, result = train_snr_estimator(clips[:20], bank, small_settings(), tmp_path / "run")
    waves, truth = make_examples(clips[20:], bank, 80, 99, estimator.settings)  # held-out clips
    estimates = estimator.predict(list(waves))
    mae = np.mean(np.abs(estimates - truth))
    baseline = np.mean(np.abs(truth - truth.mean()))
    assert mae < 0.6 * baseline, (mae, baseline)
    estimator.save(tmp_path / "snr.pt")
    again = SnrEstimator.load(tmp_path / "snr.pt")
    assert np.allclose(again.predict(list(waves[:5])), estimates[:5], atol=1e-5)


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "other.pt", torch.nn.Linear(2, 2), extra={"role": "detector"})
    with pytest.raises(ValueError, match="other.pt: not an SNR estimator"):
        SnrEstimator.load(tmp_path / "other.pt")


def test_report_and_plot(tmp_path):
    df = pd.DataFrame({"condition": ["0dB", "0dB", "6dB", "clean"], "machine_type": ["fan", "pump", "fan", "fan"],
                       "snr_db": [0.0, 0.0, 6.0, np.nan], "snr_est_db": [1.0, -1.0, 4.0, 12.0]})
    report = snr_report(df)
    assert report["overall"] == {"mae": round(4 / 3, 4), "bias": round(-2 / 3, 4), "clips": 3}
    assert report["by_condition"]["0dB"] == {"mae": 1.0, "bias": 0.0, "clips": 2}
    assert report["by_type"]["fan"]["bias"] == -0.5
    plot_snr_scatter(df, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no mixtures with a true SNR"):
        snr_report(df[df["condition"] == "clean"])
