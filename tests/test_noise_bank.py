import numpy as np
import pytest
from scipy.signal import welch
from scipy.stats import kurtosis

from asdlib.audio import write_wav
from asdlib.config import ConfigError, parse
from asdlib.noise_bank import (NOISEX_NAMES, NoiseBankError, NoiseBankSettings, noise_bank_identity,
                               read_noise_bank, synthesize_noise, write_noise_bank)

SR = 16000


def psd(x, nperseg=4096):
    return welch(x.astype(np.float64), SR, nperseg=nperseg)


def band_slope(x, lo, hi):
    """Least-squares slope of log10 PSD against log10 frequency between lo and hi Hz."""
    f, p = psd(x)
    keep = (f >= lo) & (f <= hi)
    return np.polyfit(np.log10(f[keep]), np.log10(p[keep]), 1)[0]


@pytest.mark.parametrize("name", NOISEX_NAMES)
def test_each_noise_is_deterministic_finite_and_sized(name):
    a = synthesize_noise(name, 1.5, seed=3)
    assert a.dtype == np.float32 and a.shape == (24000,)
    assert np.all(np.isfinite(a)) and np.max(np.abs(a)) <= 1.0
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) > 0.01  # not silent
    assert np.array_equal(a, synthesize_noise(name, 1.5, seed=3))
    assert not np.array_equal(a, synthesize_noise(name, 1.5, seed=4))


@pytest.mark.parametrize("name", ["babble", "destroyerops"])
def test_shortest_noises_with_talkers_are_not_silent(name):
    # talkers start within their first 0.5 s; in a 0.1 s noise all eight could start after its end
    for seed in range(16):
        x = synthesize_noise(name, 0.1, seed)
        assert np.all(np.isfinite(x)) and np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 0.01, seed


def test_noises_differ_from_each_other():
    noises = {name: synthesize_noise(name, 1.0, seed=0) for name in NOISEX_NAMES}
    spectra = {name: np.log10(psd(x, 1024)[1] + 1e-20) for name, x in noises.items()}
    names = list(spectra)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.mean(np.abs(spectra[a] - spectra[b])) > 0.1, (a, b)


def test_white_is_flat_and_pink_falls_one_decade_per_decade():
    white = synthesize_noise("white", 8.0, seed=0)
    pink = synthesize_noise("pink", 8.0, seed=0)
    assert abs(band_slope(white, 100, 6000)) < 0.1
    assert -1.15 < band_slope(pink, 100, 6000) < -0.85


@pytest.mark.parametrize("name", ["factory1", "factory2"])
def test_factory_has_mains_hum_at_50_and_100_hz(name):
    f, p = welch(synthesize_noise(name, 8.0, seed=0).astype(np.float64), SR, nperseg=16000)  # 1 Hz bins
    for hum in (50, 100):
        peak = p[f == hum][0]
        around = p[(np.abs(f - hum) > 3) & (np.abs(f - hum) < 15)]
        assert 10 * np.log10(peak / np.median(around)) > 6, hum  # a broadband noise gives ~0 dB


def test_machinegun_is_impulsive_and_volvo_is_low_frequency():
    assert kurtosis(synthesize_noise("machinegun", 6.0, seed=0)) > 4  # excess kurtosis; Gaussian noise: 0
    assert abs(kurtosis(synthesize_noise("white", 6.0, seed=0))) < 0.5
    f, p = psd(synthesize_noise("volvo", 4.0, seed=0))
    assert p[f < 200].sum() > 0.9 * p.sum()


def level_spread_db(x):
    """10-90 percentile spread of 25 ms frame levels."""
    frames = x[: len(x) // 400 * 400].reshape(-1, 400)
    level = 10 * np.log10(np.mean(frames ** 2, axis=1))
    return np.percentile(level, 90) - np.percentile(level, 10)


def test_babble_is_speech_band_and_modulated():
    x = synthesize_noise("babble", 6.0, seed=0).astype(np.float64)
    f, p = psd(x)
    assert p[(f >= 100) & (f < 1000)].sum() > 0.6 * p.sum()
    # the same spectrum with random phases: stationary; babble's syllables make its level vary more
    spectrum = np.fft.rfft(x)
    phases = np.exp(2j * np.pi * np.random.default_rng(1).random(len(spectrum)))
    stationary = np.fft.irfft(np.abs(spectrum) * phases, len(x))
    assert level_spread_db(x) > level_spread_db(stationary) + 1.5


def test_settings_validate():
    assert parse(NoiseBankSettings, {"seconds": 5}).names == list(NOISEX_NAMES)
    with pytest.raises(ConfigError, match="noisex_dir"):
        parse(NoiseBankSettings, {"source": "noisex92"})
    with pytest.raises(ConfigError, match="no synthetic recipe"):
        parse(NoiseBankSettings, {"names": ["white", "traffic"]})
    with pytest.raises(ConfigError, match="seconds"):
        parse(NoiseBankSettings, {"seconds": 0})


def test_write_and_read_synthetic_bank(tmp_path):
    settings = NoiseBankSettings(seconds=0.5, names=["white", "m109"], seed=2)
    paths = write_noise_bank(tmp_path / "bank", settings)
    assert [p.name for p in paths] == ["white.wav", "m109.wav"]
    bank = read_noise_bank(tmp_path / "bank")
    assert sorted(bank) == ["m109", "white"] and len(bank["m109"]) == 8000
    assert np.max(np.abs(bank["m109"] - synthesize_noise("m109", 0.5, 2))) < 1e-4  # PCM-16 rounding only
    first = noise_bank_identity(tmp_path / "bank", ["white", "m109"])
    write_noise_bank(tmp_path / "again", settings)
    assert noise_bank_identity(tmp_path / "again", ["white", "m109"]) == first  # same bytes
    with pytest.raises(NoiseBankError, match="lacks pink.wav"):
        read_noise_bank(tmp_path / "bank", ["white", "pink"])


def test_noisex_bank_is_validated_and_copied(tmp_path):
    src = tmp_path / "noisex"
    rng = np.random.default_rng(0)
    write_wav(src / "white.wav", (0.1 * rng.standard_normal(4000)).astype(np.float32))
    write_wav(src / "babble.wav", (0.1 * rng.standard_normal(4000)).astype(np.float32))
    settings = NoiseBankSettings(source="noisex92", noisex_dir=str(src), names=["white", "babble"])
    paths = write_noise_bank(tmp_path / "bank", settings)
    assert all(p.read_bytes() == (src / p.name).read_bytes() for p in paths)
    with pytest.raises(NoiseBankError, match=r"missing NOISEX-92 files pink\.wav, volvo\.wav"):
        write_noise_bank(tmp_path / "b2", NoiseBankSettings(source="noisex92", noisex_dir=str(src),
                                                            names=["white", "pink", "volvo"]))
    assert not (tmp_path / "b2").exists() or not list((tmp_path / "b2").iterdir())
    write_wav(src / "white.wav", np.zeros(4000, np.float32))
    with pytest.raises(NoiseBankError, match="white.wav: noise is silent"):
        write_noise_bank(tmp_path / "b3", settings)
