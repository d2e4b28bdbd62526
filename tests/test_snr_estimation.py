import numpy as np
import pandas as pd
import pytest
import torch

from asdlib.config import to_dict
from asdlib.features import LogMelSettings
from asdlib.mixing import MixError
from asdlib.models.snr_blstm import SnrBlstm, SnrBlstmSettings
from asdlib.snr_estimation import (VAL_NOISE_FRACTION, SnrEstimator, SnrEstimatorSettings, SnrTrainSettings,
                                   _example, _FreshMixtures, _split_noises, make_examples, plot_snr_scatter,
                                   snr_report, train_snr_estimator)
from asdlib.training import CheckpointError, save_checkpoint

SR = 16000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def small_settings(hidden=24, examples=384, **train) -> SnrEstimatorSettings:
    return SnrEstimatorSettings(logmel=LogMelSettings(n_mels=32), model=SnrBlstmSettings(n_mels=32, hidden=hidden),
                                examples_per_epoch=examples, val_examples=64,
                                train=SnrTrainSettings(**{"epochs": 20, "lr": 5e-3, "num_threads": 1, **train}))


@pytest.mark.parametrize("pooling", ["mean", "final"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_stacked_layers_and_pooling(layers, pooling):
    torch.manual_seed(0)
    model = SnrBlstm(SnrBlstmSettings(n_mels=16, hidden=8, layers=layers, pooling=pooling), 2.5, 12.5)
    frames = torch.randn(3, 20, 16, requires_grad=True)
    out = model(frames)
    assert out.shape == (3,)
    out.sum().backward()  # gradients reach the input through every layer
    assert frames.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.lstm.parameters())
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(3, 20, 15))


def test_final_pooling_reads_each_directions_final_state():
    torch.manual_seed(0)
    hidden = 3
    model = SnrBlstm(SnrBlstmSettings(n_mels=4, hidden=hidden, layers=2, pooling="final"), 1.0, 2.0)
    frames = torch.randn(2, 6, 4)
    outputs, _ = model.lstm(torch.tanh(model.project(frames)))
    # top layer: forward direction after the last frame, backward direction after the first
    pooled = torch.cat([outputs[:, -1, :hidden], outputs[:, 0, hidden:]], dim=1)
    expected = 1.0 + 2.0 * model.readout(pooled).squeeze(-1)
    assert torch.allclose(model(frames), expected, atol=1e-6)


def test_examples_are_reproducible(data):
    clips, bank = data
    settings = small_settings()
    a = make_examples(clips, bank, 10, 7, settings)
    b = make_examples(clips, bank, 10, 7, settings)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[1].min() >= -10.01 and a[1].max() <= 15.01


def test_estimator_learns_and_round_trips(data, tmp_path):
    clips, bank = data
    estimator, result = train_snr_estimator(clips[:20], bank, small_settings(), tmp_path / "run")
    waves, truth = make_examples(clips[20:], bank, 80, 99, estimator.settings)  # held-out clips
    estimates = estimator.predict(list(waves))
    mae = np.mean(np.abs(estimates - truth))
    baseline = np.mean(np.abs(truth - truth.mean()))
    assert mae < 0.75 * baseline, (mae, baseline)  # clearly better than always answering the mean
    estimator.save(tmp_path / "snr.pt")
    again = SnrEstimator.load(tmp_path / "snr.pt")
    assert np.allclose(again.predict(list(waves[:5])), estimates[:5], atol=1e-5)


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "other.pt", torch.nn.Linear(2, 2), extra={"role": "detector"})
    with pytest.raises(CheckpointError, match="other.pt: not an SNR estimator"):
        SnrEstimator.load(tmp_path / "other.pt")
    # settings say hidden=16, weights are of hidden=8: another shape
    weights = SnrBlstm(SnrBlstmSettings(n_mels=32, hidden=8))
    save_checkpoint(tmp_path / "shape.pt", weights,
                    extra={"settings": to_dict(small_settings(hidden=16)), "role": "snr_estimator"})
    with pytest.raises(CheckpointError, match=r"shape\.pt: does not fit .*mismatching key"):
        SnrEstimator.load(tmp_path / "shape.pt")


def test_estimator_trained_on_cuda_loads_on_any_machine(tmp_path):
    estimator = SnrEstimator(small_settings(hidden=8))
    settings = to_dict(estimator.settings)
    settings["train"]["device"] = "cuda"  # as saved by a run on a GPU
    save_checkpoint(tmp_path / "gpu.pt", estimator.model, extra={"settings": settings, "role": "snr_estimator"})
    loaded = SnrEstimator.load(tmp_path / "gpu.pt")  # auto: CUDA when present, else the CPU
    assert loaded.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert SnrEstimator.load(tmp_path / "gpu.pt", device="cpu").device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(CheckpointError, match=r"gpu\.pt: cannot load .*CUDA is not available"):
            SnrEstimator.load(tmp_path / "gpu.pt", device="cuda")


def test_too_short_mixture_is_named():
    estimator = SnrEstimator(small_settings(hidden=8))
    waves = [np.full(8000, 0.01, np.float32), np.full(100, 0.01, np.float32)]
    with pytest.raises(ValueError, match="clip fan.b@0dB: waveform has 100 samples"):
        estimator.predict(waves, names=["fan.a@0dB", "fan.b@0dB"])
    with pytest.raises(ValueError, match="waveform 1: waveform has 100 samples"):
        estimator.predict(waves)


def noise_offsets(monkeypatch, clip, noise, count=60):
    """The noise offsets ``_example`` draws for ``clip`` and a one-noise bank."""
    import asdlib.mixing as mixing

    offsets = []
    segment = mixing.noise_segment

    def spy(x, n, offset, crossfade):
        offsets.append(offset)
        return segment(x, n, offset, crossfade)

    monkeypatch.setattr(mixing, "noise_segment", spy)
    for i in range(count):
        _example(clip, {"white": noise}, np.random.default_rng([1, i]), small_settings(), f"mixture {i}")
    return offsets


def test_offsets_cover_a_noise_not_longer_than_the_clip(monkeypatch):
    rng = np.random.default_rng(4)
    clip = machine_clip(rng, 8000)
    short = noise_offsets(monkeypatch, clip, rng.standard_normal(6000).astype(np.float32))
    assert max(short) < 6000 and len(set(short)) > 50  # the whole looped noise, not always 0
    long = noise_offsets(monkeypatch, clip, rng.standard_normal(20000).astype(np.float32))
    assert max(long) < 20000 - 8000 and len(set(long)) > 50


def test_silent_stretch_of_a_noise_is_named(data):
    clips, _ = data
    hum = np.zeros(40000, np.float32)
    hum[-100:] = 0.1
    with pytest.raises(MixError, match=r"SNR mixture 0, noise hum: .*silent over the 8000 samples from offset \d+"):
        make_examples(clips, {"hum": hum}, 4, 1, small_settings())


@pytest.mark.parametrize("val_fraction, held_out", [(0.9, True), (0.0, False)])
def test_validation_share_is_capped_and_zero_turns_it_off(data, tmp_path, val_fraction, held_out):
    clips, bank = data
    settings = small_settings(hidden=8, examples=32, epochs=1, val_fraction=val_fraction)
    _, result = train_snr_estimator(clips[:4], bank, settings, tmp_path / "run")  # 0.9: 3 held out, 1 trained on
    assert np.isfinite(result.history[0]["val_loss"]) == held_out
    assert result.selection == ("val_loss" if held_out else "last")


def test_fresh_mixtures_change_every_draw_but_runs_repeat(data, tmp_path):
    clips, bank = data
    settings = small_settings(hidden=8, examples=32, epochs=2)
    dataset = _FreshMixtures(clips, bank, settings)
    torch.manual_seed(5)
    first = [dataset[0][1].item() for _ in range(3)]
    torch.manual_seed(5)
    assert [dataset[0][1].item() for _ in range(3)] == first  # fixed by torch's (seeded) generator
    assert len(set(first)) == 3  # the same clip gets a new mixture each time it is drawn
    runs = [train_snr_estimator(clips[:8], bank, settings, tmp_path / name)[0] for name in ("a", "b")]
    for (key, a), b in zip(runs[0].model.state_dict().items(), runs[1].model.state_dict().values()):
        assert torch.equal(a, b), key


def test_validation_noise_is_held_out():
    bank = {"white": np.arange(1000, dtype=np.float32), "pink": np.arange(500, dtype=np.float32)}
    train, val = _split_noises(bank)
    for name, noise in bank.items():
        assert len(val[name]) == round(len(noise) * VAL_NOISE_FRACTION)
        assert np.array_equal(np.concatenate([train[name], val[name]]), noise)


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
