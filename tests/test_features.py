"""Log-mel front end against an independent numpy reference (and librosa when present)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asdlib.config import ConfigError, parse
from asdlib.features import (
    DCASE_BASELINE_LOGMEL,
    STGRAM_LOGMEL,
    LogMel,
    LogMelSettings,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    stack_frames,
)

SMALL = dict(sample_rate=8000, n_fft=256, win_length=256, hop_length=64, n_mels=24)


# ---------------------------------------------------------------- numpy reference


def ref_hz_to_mel(f: float, scale: str) -> float:
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + f / 700.0)
    if f < 1000.0:
        return 3.0 * f / 200.0
    return 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)


def ref_mel_to_hz(m: float, scale: str) -> float:
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if m < 15.0:
        return 200.0 * m / 3.0
    return 1000.0 * 6.4 ** ((m - 15.0) / 27.0)


def ref_filterbank(sr, n_fft, n_mels, scale, norm, f_min=0.0, f_max=None):
    """Straightforward loop over filters and FFT bins."""
    f_max = sr / 2 if f_max is None else f_max
    lo, hi = ref_hz_to_mel(f_min, scale), ref_hz_to_mel(f_max, scale)
    edges = [ref_mel_to_hz(lo + (hi - lo) * i / (n_mels + 1), scale) for i in range(n_mels + 2)]
    n_freqs = n_fft // 2 + 1
    fb = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        a, b, c = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_freqs):
            f = k * sr / n_fft
            if a < f <= b:
                w = (f - a) / (b - a)
            elif b < f < c:
                w = (c - f) / (c - b)
            else:
                w = 0.0
            if norm == "slaney":
                w *= 2.0 / (c - a)
            fb[k, m] = w
    return fb


def ref_logmel(x, sr, n_fft, win_length, hop, n_mels, scale, norm, power=2.0, eps=1e-10):
    """Explicit reflect padding, periodic Hann, framing and rfft."""
    pad = n_fft // 2
    padded = np.pad(x.astype(np.float64), pad, mode="reflect")
    n = np.arange(win_length)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
    window = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    window[offset : offset + win_length] = hann
    n_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.stack([padded[t * hop : t * hop + n_fft] * window for t in range(n_frames)])
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** power  # (frames, n_freqs)
    mel = spec @ ref_filterbank(sr, n_fft, n_mels, scale, norm)
    return 10.0 * np.log10(np.maximum(mel, eps)).T  # (n_mels, frames)


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 8000.0
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(n)).astype(np.float32)


# ---------------------------------------------------------------- filterbank


@pytest.mark.parametrize("scale,norm", [("htk", "none"), ("slaney", "slaney"),
                                        ("htk", "slaney"), ("slaney", "none")])
def test_filterbank_matches_loop_reference(scale, norm):
    s = LogMelSettings(**SMALL, mel_scale=scale, mel_norm=norm)
    ours = mel_filterbank(s).numpy()
    ref = ref_filterbank(8000, 256, 24, scale, norm)
    assert ours.shape == (129, 24)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)


def test_filterbank_of_an_odd_fft_size():
    """Bin k is at k * sr / n_fft, which never reaches sr / 2 when n_fft is odd."""
    s = LogMelSettings(**{**SMALL, "n_fft": 255, "win_length": 255}, mel_scale="slaney", mel_norm="slaney")
    np.testing.assert_allclose(mel_filterbank(s).numpy(), ref_filterbank(8000, 255, 24, "slaney", "slaney"),
                               rtol=1e-5, atol=1e-7)


def test_filterbank_full_size_and_band_limits():
    for s in (STGRAM_LOGMEL, DCASE_BASELINE_LOGMEL):
        ours = mel_filterbank(s).numpy()
        ref = ref_filterbank(16000, 1024, 128, s.mel_scale, s.mel_norm)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)
    limited = LogMelSettings(**SMALL, f_min=300.0, f_max=3000.0)
    fb = mel_filterbank(limited).numpy()
    freqs = np.arange(129) * 8000 / 256
    assert np.all(fb[(freqs <= 300.0) | (freqs >= 3000.0)] == 0)
    np.testing.assert_allclose(fb, ref_filterbank(8000, 256, 24, "htk", "none", 300.0, 3000.0),
                               rtol=1e-5, atol=1e-7)


def test_mel_scale_known_values():
    f = torch.tensor([0.0, 500.0, 1000.0, 4000.0], dtype=torch.float64)
    htk = hz_to_mel(f, "htk")
    assert abs(float(htk[2]) - 1000.0) < 0.1  # HTK mel(1 kHz) ~= 1000
    slaney = hz_to_mel(f, "slaney")
    assert float(slaney[1]) == pytest.approx(7.5)  # linear: 500 Hz / (200/3)
    assert float(slaney[2]) == pytest.approx(15.0)  # the break point
    assert float(slaney[3]) == pytest.approx(15 + 27 * math.log(4) / math.log(6.4))
    for scale in ("htk", "slaney"):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, scale), scale).numpy(), f.numpy(),
                                   atol=1e-8)


def test_slaney_triangle_peaks_where_expected():
    s = DCASE_BASELINE_LOGMEL
    fb = mel_filterbank(s).numpy()
    bin_hz = np.arange(s.n_freqs) * s.sample_rate / s.n_fft
    top = ref_hz_to_mel(8000.0, "slaney")
    centres = np.array([ref_mel_to_hz(top * (m + 1) / 129, "slaney") for m in range(128)])
    peak_bins = fb.argmax(axis=0)
    # Each row's maximum sits at an FFT bin next to the filter's centre frequency.
    assert np.all(np.abs(bin_hz[peak_bins] - centres) <= bin_hz[1])
    # Below 1 kHz the centres are evenly spaced in Hz (linear part of the scale).
    low = centres[centres < 1000.0]
    np.testing.assert_allclose(np.diff(low), np.diff(low)[0], rtol=1e-9)
    # Area normalisation: peak value of filter m is 2 / (f_high - f_low) at most.
    edges = np.concatenate([[0.0], centres, [ref_mel_to_hz(top, "slaney")]])
    assert np.all(fb.max(axis=0) <= 2.0 / (edges[2:] - edges[:-2]) + 1e-9)


# ---------------------------------------------------------------- log-mel


@pytest.mark.parametrize("scale,norm", [("htk", "none"), ("slaney", "slaney")])
@pytest.mark.parametrize("win_length", [256, 200])
def test_logmel_matches_numpy_reference(scale, norm, win_length):
    s = LogMelSettings(**{**SMALL, "win_length": win_length}, mel_scale=scale, mel_norm=norm)
    x = np.stack([_signal(4000, 0), _signal(4000, 1)])
    ours = LogMel(s)(torch.from_numpy(x)).numpy()
    assert ours.shape == (2, 24, 1 + 4000 // 64)
    for i in range(2):
        ref = ref_logmel(x[i], 8000, 256, win_length, 64, 24, scale, norm)
        np.testing.assert_allclose(ours[i], ref, atol=2e-3)


def test_logmel_power_one_and_silence_floor():
    s = LogMelSettings(**SMALL, power=1.0)
    x = _signal(3000)
    ours = LogMel(s)(torch.from_numpy(x)).numpy()
    ref = ref_logmel(x, 8000, 256, 256, 64, 24, "htk", "none", power=1.0)
    np.testing.assert_allclose(ours, ref, atol=2e-3)
    silent = LogMel(s)(torch.zeros(3000))
    assert torch.all(silent == -100.0)  # 10 * log10(1e-10)


def test_ten_second_clip_gives_313_frames_and_1d_input():
    x = torch.from_numpy(_signal(160000))
    out = LogMel(STGRAM_LOGMEL)(x)
    assert out.shape == (128, 313) == (128, STGRAM_LOGMEL.num_frames(160000))
    batched = LogMel(STGRAM_LOGMEL)(x[None])
    assert batched.shape == (1, 128, 313)
    torch.testing.assert_close(batched[0], out)
    for n in (1000, 1023, 1024, 16000, 32000):
        assert LogMel(STGRAM_LOGMEL)(torch.zeros(2, n)).shape[-1] == 1 + n // 512
    odd = LogMelSettings(**{**SMALL, "n_fft": 255, "win_length": 255})
    for n in (640, 641, 700):
        assert LogMel(odd)(torch.zeros(n)).shape[-1] == odd.num_frames(n)


def test_logmel_float64_input_matches_reference():
    s = LogMelSettings(**SMALL)
    x = _signal(3000).astype(np.float64)
    ours = LogMel(s)(torch.from_numpy(x))
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), ref_logmel(x, 8000, 256, 256, 64, 24, "htk", "none"),
                               atol=1e-4)


def test_logmel_rejects_bad_input():
    m = LogMel(LogMelSettings(**SMALL))
    with pytest.raises(ValueError, match="samples"):
        m(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="shape"):
        m(torch.zeros(1, 2, 4000))
    with pytest.raises(ValueError, match="floating"):
        m(torch.zeros(4000, dtype=torch.int16))


def test_logmel_state_dict_is_empty_and_gradients_flow():
    m = LogMel(LogMelSettings(**SMALL))
    assert len(m.state_dict()) == 0
    x = torch.from_numpy(_signal(2000)).requires_grad_()
    m(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ---------------------------------------------------------------- settings


def test_settings_validation_names_the_field():
    for kwargs, field in [
        (dict(n_fft=0), "n_fft"),
        (dict(win_length=2048), "win_length"),
        (dict(hop_length=-1), "hop_length"),
        (dict(power=0.0), "power"),
        (dict(mel_scale="bark"), "mel_scale"),
        (dict(mel_norm="l2"), "mel_norm"),
        (dict(f_min=9000.0), "f_min"),
        (dict(f_max=100.0, f_min=200.0), "f_max"),
        (dict(f_max=9000.0), "f_max"),
        (dict(eps=0.0), "eps"),
    ]:
        with pytest.raises(ValueError, match=field):
            LogMelSettings(**kwargs)


def test_settings_parse_from_mapping():
    s = parse(LogMelSettings, {"mel_scale": "slaney", "mel_norm": "slaney", "f_max": 7000})
    assert s.mel_scale == "slaney" and s.f_max == 7000.0 and s.upper_frequency == 7000.0
    with pytest.raises(ConfigError, match="features.n_mel"):
        parse(LogMelSettings, {"n_mel": 64}, "features")
    assert STGRAM_LOGMEL.mel_scale == "htk" and STGRAM_LOGMEL.mel_norm == "none"
    assert DCASE_BASELINE_LOGMEL.mel_scale == "slaney" and DCASE_BASELINE_LOGMEL.mel_norm == "slaney"


# ---------------------------------------------------------------- frame stacking


def test_stack_frames_dcase_layout():
    logmel = torch.randn(2, 128, 313)
    vectors = stack_frames(logmel, 5)
    assert vectors.shape == (2, 309, 640)
    for t in (0, 17, 308):
        for k in range(5):
            torch.testing.assert_close(vectors[1, t, 128 * k : 128 * (k + 1)], logmel[1, :, t + k])
    unbatched = stack_frames(logmel[0], 5)
    torch.testing.assert_close(unbatched, vectors[0])
    with pytest.raises(ValueError, match="frames"):
        stack_frames(torch.zeros(128, 4), 5)
    with pytest.raises(ValueError, match="n_frames"):
        stack_frames(logmel, 0)


# ---------------------------------------------------------------- librosa, GPU


@pytest.mark.parametrize("scale,norm", [("htk", "none"), ("slaney", "slaney")])
def test_against_librosa_when_installed(scale, norm):
    librosa = pytest.importorskip("librosa")
    s = LogMelSettings(**SMALL, mel_scale=scale, mel_norm=norm)
    fb = librosa.filters.mel(sr=8000, n_fft=256, n_mels=24, htk=scale == "htk",
                             norm="slaney" if norm == "slaney" else None)
    np.testing.assert_allclose(mel_filterbank(s).numpy(), fb.T, rtol=1e-4, atol=1e-7)
    x = _signal(4000)
    mel = librosa.feature.melspectrogram(y=x, sr=8000, n_fft=256, hop_length=64, n_mels=24,
                                         htk=scale == "htk",
                                         norm="slaney" if norm == "slaney" else None,
                                         pad_mode="reflect", power=2.0)
    ref = 10.0 * np.log10(np.maximum(mel, 1e-10))
    np.testing.assert_allclose(LogMel(s)(torch.from_numpy(x)).numpy(), ref, atol=2e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu():
    m = LogMel(STGRAM_LOGMEL)
    x = torch.from_numpy(np.stack([_signal(32000, 0), _signal(32000, 1)]))
    cpu = m(x)
    gpu_module = m.to("cuda")
    assert gpu_module.filterbank.device.type == "cuda"
    gpu = gpu_module(x.to("cuda"))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-4)
