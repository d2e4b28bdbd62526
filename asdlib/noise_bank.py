"""The noise bank: one long mono noise recording per noise type, 16 kHz WAV files.

Two sources fill it:

* ``noisex92``: the 15 NOISEX-92 recordings, already prepared as 16 kHz WAVs named
  ``<name>.wav`` in a folder (see ``asdlib.corpora``); they are validated and
  copied byte for byte.
* ``synthetic`` (built in, no download): physically motivated imitations of the
  same 15 noise types (:func:`synthesize_noise`), so every pipeline stage runs
  without the corpus. They are not the recordings; they only share each
  recording's character (spectral tilt, tonal components, impulsiveness,
  modulation), which is what matters for mixing at a chosen SNR.

Every synthetic noise is a pure function of ``(name, seconds, seed)`` (the seed is
combined with the name through SHA-256, never Python's salted ``hash``), is
scaled to an RMS of 0.1 and, if needed, scaled down further so its peak stays
below full scale (never clipped), so it survives PCM-16 WAV storage unchanged in
character.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import scipy

from asdlib.audio import SAMPLE_RATE, AudioError, read_audio, write_wav
from asdlib.fileio import atomic_path

NOISEX_NAMES: tuple[str, ...] = (
    "white", "pink", "babble", "factory1", "factory2", "destroyerengine", "destroyerops", "f16",
    "buccaneer1", "buccaneer2", "hfchannel", "leopard", "m109", "machinegun", "volvo",
)
TARGET_RMS = 0.1
PEAK_LIMIT = 0.99


class NoiseBankError(ValueError):
    """The noise bank (or a file in it) cannot be used; the message names it."""


@dataclass(frozen=True)
class NoiseBankSettings:
    """Where the noise bank comes from.

    source: ``synthetic`` (built in) or ``noisex92`` (prepared 16 kHz WAVs in
    ``noisex_dir``, named ``<name>.wav``).
    seed: seed of the synthetic noises.
    seconds: length of each synthetic noise (the NOISEX originals last ~235 s).
    names: noise types to put in the bank.
    """

    source: Literal["synthetic", "noisex92"] = "synthetic"
    noisex_dir: str = ""
    seed: int = 0
    seconds: float = 60.0
    names: list[str] = field(default_factory=lambda: list(NOISEX_NAMES))

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "noisex92"):
            raise ValueError(f"source must be 'synthetic' or 'noisex92', got {self.source!r}")
        if self.source == "noisex92" and not self.noisex_dir:
            raise ValueError("noisex_dir must name the folder of prepared NOISEX-92 WAVs when source is noisex92")
        if not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if not self.names:
            raise ValueError("names must list at least one noise type")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names has duplicates: {sorted(n for n in set(self.names) if self.names.count(n) > 1)}")
        bad = [n for n in self.names if not n or "/" in n or os.sep in n or n.startswith(".")]
        if bad:
            raise ValueError(f"names must be plain file stems, got {bad}")
        if self.source == "synthetic":
            unknown = [n for n in self.names if n not in NOISEX_NAMES]
            if unknown:
                raise ValueError(f"names: no synthetic recipe for {unknown} (known: {', '.join(NOISEX_NAMES)})")


# ---------------------------------------------------------------------------------------------
# Public entry points


def synthesize_noise(name: str, seconds: float, seed: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic imitation of NOISEX-92 noise ``name``: float32, ``round(seconds * rate)`` samples."""
    if name not in _RECIPES:
        raise NoiseBankError(f"no synthetic recipe for noise {name!r} (known: {', '.join(NOISEX_NAMES)})")
    n = int(round(seconds * sample_rate))
    if n < sample_rate // 10:
        raise NoiseBankError(f"{name}: {seconds} s is too short for a noise (need at least 0.1 s)")
    x = _RECIPES[name](_rng(name, seed), n, sample_rate)
    return _normalise(x)


def write_noise_bank(out_dir: str | os.PathLike, settings: NoiseBankSettings) -> list[Path]:
    """Write ``<out_dir>/<name>.wav`` for every name in ``settings``; return the paths in that order.

    Synthetic noises are generated; NOISEX-92 files are validated (16 kHz, finite,
    not silent) and copied unchanged. Missing NOISEX files are reported all at once
    before anything is written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if settings.source == "noisex92":
        src_dir = Path(settings.noisex_dir)
        missing = [n for n in settings.names if not (src_dir / f"{n}.wav").is_file()]
        if missing:
            raise NoiseBankError(f"{src_dir}: missing NOISEX-92 files {', '.join(f'{n}.wav' for n in missing)}")
        for name in settings.names:
            src = src_dir / f"{name}.wav"
            _check_noise(read_audio(src), src)
            target = out_dir / f"{name}.wav"
            with atomic_path(target) as tmp:
                shutil.copyfile(src, tmp)
            paths.append(target)
        return paths
    for name in settings.names:
        target = out_dir / f"{name}.wav"
        write_wav(target, synthesize_noise(name, settings.seconds, settings.seed))
        paths.append(target)
    return paths


def read_noise_bank(noise_dir: str | os.PathLike, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Noises of a bank folder as ``{name: float32 array}`` (all ``*.wav`` when ``names`` is None)."""
    noise_dir = Path(noise_dir)
    if not noise_dir.is_dir():
        raise NoiseBankError(f"{noise_dir}: noise bank folder not found (run the stage that writes it)")
    names = noise_bank_names(noise_dir) if names is None else list(names)
    if not names:
        raise NoiseBankError(f"{noise_dir}: no .wav noises in the noise bank")
    missing = [n for n in names if not (noise_dir / f"{n}.wav").is_file()]
    if missing:
        raise NoiseBankError(f"{noise_dir}: noise bank lacks {', '.join(f'{n}.wav' for n in missing)}")
    bank = {}
    for name in names:
        path = noise_dir / f"{name}.wav"
        bank[name] = _check_noise(read_audio(path), path)
    return bank


def noise_bank_names(noise_dir: str | os.PathLike) -> list[str]:
    """Sorted names of the ``*.wav`` noises in a bank folder."""
    return sorted(p.stem for p in Path(noise_dir).glob("*.wav") if not p.name.startswith("."))


def noise_bank_identity(noise_dir: str | os.PathLike, names: Sequence[str]) -> dict[str, str]:
    """``{name: sha256 of the WAV file}``: what a cache of results made with the bank depends on."""
    identity = {}
    for name in names:
        path = Path(noise_dir) / f"{name}.wav"
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        identity[name] = digest.hexdigest()
    return identity


def _check_noise(x: np.ndarray, path: Path) -> np.ndarray:
    if not np.any(x):
        raise NoiseBankError(f"{path}: noise is silent (all samples zero); it cannot be scaled to an SNR")
    return x


# ---------------------------------------------------------------------------------------------
# Building blocks (float64, one noise at a time)


def _rng(name: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"asdlib.noise_bank:{name}:{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x - np.mean(x)
    x = x * (TARGET_RMS / np.sqrt(np.mean(x ** 2)))
    peak = np.max(np.abs(x))
    if peak > PEAK_LIMIT:
        x = x * (PEAK_LIMIT / peak)
    if not np.all(np.isfinite(x)):
        raise AudioError("synthetic noise came out non-finite (a bug in its recipe)")
    return x.astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit RMS (so recipe levels below are relative dB)."""
    r = np.sqrt(np.mean(x ** 2))
    return x / r if r > 0 else x


def _db(level_db: float) -> float:
    return 10.0 ** (level_db / 20.0)


def _shaped_noise(rng: np.random.Generator, n: int, sr: int,
                  points: Sequence[tuple[float, float]]) -> np.ndarray:
    """Gaussian noise whose spectrum follows ``(Hz, dB)`` breakpoints (linear in dB over log Hz)."""
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    fp = np.array([p[0] for p in points], dtype=float)
    gp = np.array([p[1] for p in points], dtype=float)
    gain_db = np.interp(np.log10(np.maximum(freqs, fp[0])), np.log10(fp), gp)
    spectrum *= 10.0 ** (gain_db / 20.0)
    spectrum[0] = 0.0
    return _unit(np.fft.irfft(spectrum, n))


def _power_law_noise(rng: np.random.Generator, n: int, sr: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectral density proportional to ``f ** -exponent``."""
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    spectrum[1:] *= freqs[1:] ** (-exponent / 2.0)
    spectrum[0] = 0.0
    return _unit(np.fft.irfft(spectrum, n))


def _smooth_random(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """A slowly varying random curve (about unit variance) with ``rate_hz`` control points per second."""
    count = int(np.ceil(n / sr * rate_hz)) + 2
    control = rng.standard_normal(count)
    t = np.arange(n) / sr * rate_hz
    # cosine interpolation between control points: smooth and without overshoot
    i = np.floor(t).astype(int)
    w = 0.5 - 0.5 * np.cos(np.pi * (t - i))
    return control[i] * (1.0 - w) + control[i + 1] * w


def _harmonics(rng: np.random.Generator, n: int, sr: int, f0: float, amplitudes: Sequence[float],
               wander: float = 0.0, wander_rate: float = 0.3) -> np.ndarray:
    """Sum of ``amplitudes[k] * sin((k+1) * phase)`` with a fundamental drifting by ``wander`` (relative)."""
    inst = np.full(n, f0, dtype=float)
    if wander:
        inst *= 1.0 + wander * _smooth_random(rng, n, sr, wander_rate)
    phase = 2.0 * np.pi * np.cumsum(inst) / sr
    out = np.zeros(n)
    for k, amp in enumerate(amplitudes, start=1):
        if amp and k * f0 < 0.45 * sr:
            out += amp * np.sin(k * phase + rng.uniform(0.0, 2.0 * np.pi))
    return out


def _tone(rng: np.random.Generator, n: int, sr: int, freq: float, wander: float = 0.0) -> np.ndarray:
    return _harmonics(rng, n, sr, freq, [1.0], wander=wander)


def _decaying_kernel(rng: np.random.Generator, sr: int, decay_s: float,
                     resonances: Sequence[float] = (), tail_s: float | None = None,
                     lowpass: float = 0.0) -> np.ndarray:
    """An impact's impulse response: decaying broadband noise plus damped resonant modes."""
    length = int((tail_s if tail_s is not None else 6.0 * decay_s) * sr)
    t = np.arange(length) / sr
    kernel = rng.standard_normal(length) * np.exp(-t / decay_s)
    if lowpass:
        kernel = scipy.signal.lfilter([1.0 - lowpass], [1.0, -lowpass], kernel)
    for freq in resonances:
        mode_decay = decay_s * rng.uniform(1.0, 3.0)
        kernel += 2.0 * np.sin(2.0 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t / mode_decay)
    return kernel


def _excitation(rng: np.random.Generator, n: int, times: np.ndarray, amp_sigma_db: float) -> np.ndarray:
    """Impulses at sample positions ``times`` with log-normally spread amplitudes."""
    e = np.zeros(n)
    times = times[(times >= 0) & (times < n)].astype(int)
    np.add.at(e, times, 10.0 ** (rng.normal(0.0, amp_sigma_db, len(times)) / 20.0))
    return e


def _poisson_times(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    count = rng.poisson(rate_hz * n / sr)
    return np.sort(rng.uniform(0, n, count))


def _periodic_times(rng: np.random.Generator, n: int, sr: int, rate_hz: float, jitter: float) -> np.ndarray:
    """Event times at ``rate_hz`` (slowly drifting) with relative timing jitter."""
    rate = rate_hz * (1.0 + 0.03 * _smooth_random(rng, n, sr, 0.2))
    cycles = np.cumsum(rate) / sr
    ticks = np.searchsorted(cycles, np.arange(1, int(cycles[-1]) + 1))
    return ticks + rng.normal(0.0, jitter * sr / rate_hz, len(ticks))


def _impacts(rng: np.random.Generator, n: int, sr: int, times: np.ndarray, kernel: np.ndarray,
             amp_sigma_db: float = 4.0) -> np.ndarray:
    return scipy.signal.fftconvolve(_excitation(rng, n, times, amp_sigma_db), kernel)[:n]


def _resonator(freq: float, bandwidth: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Second-order resonator with unit gain at DC (a formant filter)."""
    r = np.exp(-np.pi * bandwidth / sr)
    a = np.array([1.0, -2.0 * r * np.cos(2.0 * np.pi * freq / sr), r * r])
    return np.array([a.sum()]), a


def _bandpass_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float, slope_db: float = 40.0):
    return _shaped_noise(rng, n, sr, [(lo / 4, -slope_db), (lo, 0.0), (hi, 0.0), (min(hi * 4, sr / 2), -slope_db)])


def _reverb(rng: np.random.Generator, x: np.ndarray, sr: int, rt60: float, wet: float) -> np.ndarray:
    """Add a diffuse room tail (exponentially decaying noise impulse response)."""
    t = np.arange(int(rt60 * sr)) / sr
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    tail = scipy.signal.fftconvolve(x, ir)[: len(x)]
    return x + wet * _unit(tail) * np.sqrt(np.mean(x ** 2))


# ---------------------------------------------------------------------------------------------
# Speech-like sources (babble, intercom chatter)

# (F1, F2, F3) in Hz of some vowels of an adult male voice
_VOWELS = np.array([
    (730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
    (660, 1720, 2410), (490, 1350, 1690), (440, 1020, 2240), (390, 1990, 2550), (640, 1190, 2390),
])
_FORMANT_BANDWIDTHS = (80.0, 100.0, 150.0)


def _talker(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """One voice-like source: glottal pulses of varying pitch through per-syllable formant filters.

    Phrases of syllables (0.12-0.3 s each, with pauses between phrases) are gated
    by syllabic on/off envelopes; the pitch declines over each phrase and wanders;
    some syllables start with a fricative noise burst.
    """
    female = rng.random() < 0.5
    f0_base = rng.uniform(180, 240) if female else rng.uniform(90, 135)
    formant_scale = rng.uniform(1.1, 1.2) if female else rng.uniform(0.95, 1.05)

    # syllable segmentation: (start, stop) sample ranges, phrase-wise
    # the first syllable starts within 0.5 s, and inside the signal when that is shorter
    syllables, phrase_ids, t, phrase = [], [], int(rng.uniform(0, min(0.5, n / sr)) * sr), 0
    while t < n:
        for _ in range(rng.integers(3, 12)):
            length = int(rng.uniform(0.12, 0.30) * sr)
            syllables.append((t, min(t + length, n)))
            phrase_ids.append(phrase)
            t += length
            if t >= n:
                break
        t += int(rng.uniform(0.15, 0.7) * sr)
        phrase += 1

    # pitch contour: declination within a phrase, slow wander, per-syllable accents
    f0 = np.full(n, f0_base) * (1.0 + 0.08 * _smooth_random(rng, n, sr, 3.0))
    envelope = np.zeros(n)
    fricative_gate = np.zeros(n)
    phrase_start = {}
    for (a, b), p in zip(syllables, phrase_ids):
        phrase_start.setdefault(p, a)
        f0[a:b] *= (1.0 + rng.uniform(-0.08, 0.12)) * (1.0 - 0.1 * min((a - phrase_start[p]) / sr / 2.0, 1.0))
        seg = b - a
        attack, release = min(int(0.02 * sr), seg // 3), min(int(0.05 * sr), seg // 3)
        env = np.ones(seg) * rng.uniform(0.4, 1.0)
        env[:attack] *= np.sin(0.5 * np.pi * np.arange(attack) / attack) ** 2
        env[seg - release:] *= np.cos(0.5 * np.pi * np.arange(release) / release) ** 2
        envelope[a:b] = env
        if rng.random() < 0.4:
            burst = min(int(rng.uniform(0.04, 0.09) * sr), seg)
            fricative_gate[a:a + burst] = np.hanning(burst) * rng.uniform(0.3, 0.8)
            envelope[a:a + burst] *= np.linspace(0.0, 1.0, burst)  # voicing starts after the consonant

    phase = np.cumsum(f0) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0)  # 1 at each glottal closure
    glottal = scipy.signal.lfilter([1.0], [1.0, -2 * 0.96, 0.96 ** 2], pulses)  # ~ -12 dB/octave source
    glottal += 0.02 * rng.standard_normal(n) * np.std(glottal)  # aspiration

    voiced = np.zeros(n)
    states = [np.zeros(2) for _ in _FORMANT_BANDWIDTHS]
    for a, b in syllables:
        formants = _VOWELS[rng.integers(len(_VOWELS))] * formant_scale
        seg = glottal[a:b]
        for j, (freq, bw) in enumerate(zip(formants, _FORMANT_BANDWIDTHS)):
            num, den = _resonator(freq, bw, sr)
            seg, states[j] = scipy.signal.lfilter(num, den, seg, zi=states[j])
        voiced[a:b] = seg
    voiced = np.diff(voiced, prepend=0.0)  # lip radiation, +6 dB/octave
    voice = _unit(voiced * envelope) + 1.5 * _bandpass_noise(rng, n, sr, 2500, 6500) * fricative_gate
    return _unit(voice)


# ---------------------------------------------------------------------------------------------
# Recipes, one per NOISEX-92 name: (rng, n, sample_rate) -> float64 signal


def _white(rng, n, sr):
    return rng.standard_normal(n)


def _pink(rng, n, sr):
    return _power_law_noise(rng, n, sr, 1.0)


def _babble(rng, n, sr):
    """Canteen babble: eight overlapping talkers at different levels in a reverberant room."""
    mix = sum(_db(rng.uniform(-4, 4)) * _talker(rng, n, sr) for _ in range(8))
    return _reverb(rng, mix, sr, rt60=0.6, wet=0.5)


def _factory(rng, n, sr, *, rotation_hz, impact_rate, hum_db, rumble_db, impact_db, tonal_db):
    """Production hall: mains hum at 50 Hz and harmonics, rotating machinery, hammer impacts, rumble."""
    hum = _harmonics(rng, n, sr, 50.0, [1.0, 0.7, 0.35, 0.25, 0.12, 0.08])  # 50, 100, 150 ... Hz
    machinery = _harmonics(rng, n, sr, rotation_hz, 1.0 / np.arange(1, 25) ** 0.7, wander=0.002)
    machinery *= 1.0 + 0.3 * _smooth_random(rng, n, sr, 0.5)
    rumble = _shaped_noise(rng, n, sr, [(20, 0), (150, 0), (800, -8), (3000, -18), (8000, -30)])
    hammer = _decaying_kernel(rng, sr, 0.02, resonances=rng.uniform(800, 4000, 3), tail_s=0.25)
    clank = _decaying_kernel(rng, sr, 0.006, resonances=rng.uniform(2000, 6000, 2), tail_s=0.08)
    impacts = (_impacts(rng, n, sr, _poisson_times(rng, n, sr, impact_rate), hammer, 5.0)
               + 0.7 * _impacts(rng, n, sr, _poisson_times(rng, n, sr, impact_rate * 2.5), clank, 5.0))
    return (_db(hum_db) * _unit(hum) + _db(tonal_db) * _unit(machinery) + _db(rumble_db) * rumble
            + _db(impact_db) * _unit(impacts))


def _factory1(rng, n, sr):
    return _factory(rng, n, sr, rotation_hz=29.3, impact_rate=1.5, hum_db=-6, rumble_db=0, impact_db=-2,
                    tonal_db=-6)


def _factory2(rng, n, sr):
    """Car production hall: more low-frequency rumble, fewer but heavier impacts."""
    return _factory(rng, n, sr, rotation_hz=37.1, impact_rate=0.7, hum_db=-8, rumble_db=2, impact_db=0,
                    tonal_db=-9)


def _destroyer_engine(rng, n, sr):
    """Engine room: diesel firing harmonics, gas-turbine whine and gear mesh over loud broadband noise."""
    shaft = 1000.0 / 60.0 / 2.0  # 4-stroke cycle at 1000 rpm
    orders = np.arange(1, 60)
    amps = np.where(orders % 8 == 0, 1.0, 0.25) / orders ** 0.5  # 16 cylinders: 8 firings per cycle
    firing = _harmonics(rng, n, sr, shaft, amps, wander=0.003)
    turbine = _tone(rng, n, sr, 3150.0, wander=0.002) + 0.5 * _tone(rng, n, sr, 6300.0, wander=0.002)
    gears = _harmonics(rng, n, sr, 612.0, [1.0, 0.5, 0.3], wander=0.003)
    broadband = _shaped_noise(rng, n, sr, [(20, -6), (200, 3), (1000, 0), (4000, -10), (8000, -22)])
    return broadband + _db(-6) * _unit(firing) + _db(-14) * _unit(turbine) + _db(-12) * _unit(gears)


def _destroyer_ops(rng, n, sr):
    """Operations room: ventilation, 60/400 Hz electrical hum, equipment fans, intercom chatter, beeps."""
    ventilation = _shaped_noise(rng, n, sr, [(20, -10), (100, 0), (500, -2), (2000, -12), (8000, -30)])
    hum = _harmonics(rng, n, sr, 60.0, [1.0, 0.5, 0.4, 0.2]) + 0.6 * _harmonics(rng, n, sr, 400.0, [1.0, 0.4])
    chatter_gate = np.clip(_smooth_random(rng, n, sr, 0.3) + 0.3, 0.0, 1.0)
    chatter = _talker(rng, n, sr) * chatter_gate
    chatter = np.diff(scipy.signal.lfilter([1.0], [1.0, -0.9], chatter), prepend=0.0)  # thin intercom loudspeaker
    beeps = np.zeros(n)
    for start in _poisson_times(rng, n, sr, 0.15).astype(int):
        length = min(int(0.12 * sr), n - start)
        beeps[start:start + length] = np.sin(2 * np.pi * rng.choice([1000.0, 1500.0, 2000.0]) *
                                             np.arange(length) / sr)
    return (ventilation + _db(-12) * _unit(hum) + _db(-10) * _unit(chatter) + _db(-18) * beeps)


def _jet_cockpit(rng, n, sr, *, airflow_points, tone_hz, tone_db, rumble_db):
    """Jet cockpit: broadband airflow / engine noise plus compressor tones, slow buffeting."""
    airflow = _shaped_noise(rng, n, sr, airflow_points)
    airflow *= 1.0 + 0.1 * _smooth_random(rng, n, sr, 2.0)
    tones = _harmonics(rng, n, sr, tone_hz, [1.0, 0.6, 0.3], wander=0.004)
    rumble = _shaped_noise(rng, n, sr, [(20, 0), (60, 0), (200, -20), (1000, -50)])
    return _unit(airflow) + _db(tone_db) * _unit(tones) + _db(rumble_db) * rumble


def _f16(rng, n, sr):
    return _jet_cockpit(rng, n, sr, airflow_points=[(20, -8), (80, 0), (600, 0), (2500, -6), (6000, -18),
                                                     (8000, -26)], tone_hz=1460.0, tone_db=-12, rumble_db=-8)


def _buccaneer1(rng, n, sr):
    """190 knots at 1000 ft: engine tones stand out over moderate airflow noise."""
    return _jet_cockpit(rng, n, sr, airflow_points=[(20, -6), (100, 0), (400, -2), (1500, -10), (5000, -24),
                                                     (8000, -32)], tone_hz=1180.0, tone_db=-6, rumble_db=-4)


def _buccaneer2(rng, n, sr):
    """450 knots at 300 ft: louder, brighter airflow noise."""
    return _jet_cockpit(rng, n, sr, airflow_points=[(20, -10), (100, -2), (800, 0), (3000, -4), (6000, -12),
                                                     (8000, -18)], tone_hz=1320.0, tone_db=-14, rumble_db=-6)


def _hfchannel(rng, n, sr):
    """HF radio: 300-3000 Hz receiver hiss with fading, static crashes and a heterodyne whistle."""
    hiss = _bandpass_noise(rng, n, sr, 300, 3000, slope_db=50)
    fading = np.abs(_smooth_random(rng, n, sr, 1.5) + 1j * _smooth_random(rng, n, sr, 1.5)) + 0.3
    crash_kernel = _decaying_kernel(rng, sr, 0.004, tail_s=0.03)
    crashes = _impacts(rng, n, sr, _poisson_times(rng, n, sr, 3.0), crash_kernel, 6.0)
    whistle = _tone(rng, n, sr, rng.uniform(800, 1400), wander=0.01)
    return hiss * fading + _db(-6) * _unit(crashes) + _db(-20) * whistle


def _tracked_vehicle(rng, n, sr, *, rpm, cylinders, track_hz, clatter_db, engine_db):
    """Tracked vehicle: engine firing harmonics, track-link clatter, running-gear rumble."""
    cycle = rpm / 60.0 / 2.0  # 4-stroke: one combustion cycle per two revolutions
    orders = np.arange(1, 80)
    amps = np.where(orders % cylinders == 0, 1.0, 0.2) / orders ** 0.4
    engine = _harmonics(rng, n, sr, cycle, amps, wander=0.01, wander_rate=0.2)
    link = _decaying_kernel(rng, sr, 0.004, resonances=rng.uniform(700, 2500, 3), tail_s=0.03)
    clatter = _impacts(rng, n, sr, _periodic_times(rng, n, sr, track_hz, 0.06), link, 3.0)
    rumble = _shaped_noise(rng, n, sr, [(20, 0), (100, 0), (500, -10), (2000, -22), (8000, -40)])
    return rumble + _db(engine_db) * _unit(engine) + _db(clatter_db) * _unit(clatter)


def _leopard(rng, n, sr):
    """Leopard 2 at speed: 12-cylinder diesel near 2000 rpm, track links at ~70 Hz."""
    return _tracked_vehicle(rng, n, sr, rpm=2000.0, cylinders=12, track_hz=70.0, clatter_db=-3, engine_db=-2)


def _m109(rng, n, sr):
    """M109 at ~30 km/h: 8-cylinder diesel near 2300 rpm, track links at ~55 Hz."""
    return _tracked_vehicle(rng, n, sr, rpm=2300.0, cylinders=8, track_hz=55.0, clatter_db=-1, engine_db=-4)


def _machinegun(rng, n, sr):
    """Bursts of shots (~12 rounds/s) with sharp attacks, muzzle boom and echo, over quiet background."""
    times = []
    t = rng.uniform(0.1, 0.8) * sr
    while t < n:
        shots = rng.integers(3, 20)
        rate = rng.uniform(10.0, 14.0)
        times.extend(t + np.arange(shots) * sr / rate + rng.normal(0, 0.002 * sr, shots))
        t += shots * sr / rate + rng.uniform(0.8, 3.0) * sr
    crack = _decaying_kernel(rng, sr, 0.008, tail_s=0.06)
    boom = _decaying_kernel(rng, sr, 0.05, resonances=[rng.uniform(60, 110)], tail_s=0.35, lowpass=0.97)
    echo = _decaying_kernel(rng, sr, 0.12, tail_s=0.6, lowpass=0.9)
    shots = _excitation(rng, n, np.array(times), 2.0)
    convolve = scipy.signal.fftconvolve
    gunfire = (convolve(shots, _unit(crack))[:n] + 0.8 * convolve(shots, _unit(boom))[:n]
               + 0.15 * convolve(shots, _unit(echo))[:n])
    background = _power_law_noise(rng, n, sr, 1.0)
    return _unit(gunfire) + _db(-35) * background


def _volvo(rng, n, sr):
    """Car interior at 120 km/h: dominant low-frequency road rumble, weak engine orders, faint wind."""
    rumble = _shaped_noise(rng, n, sr, [(20, 0), (60, -2), (200, -16), (1000, -36), (4000, -52), (8000, -62)])
    engine = _harmonics(rng, n, sr, 3000.0 / 60.0, [0.2, 1.0, 0.1, 0.4], wander=0.005)  # 4 cylinders: order 2
    wind = _shaped_noise(rng, n, sr, [(20, -20), (500, 0), (2000, -6), (8000, -20)])
    return rumble + _db(-14) * _unit(engine) + _db(-30) * wind


_RECIPES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "white": _white, "pink": _pink, "babble": _babble, "factory1": _factory1, "factory2": _factory2,
    "destroyerengine": _destroyer_engine, "destroyerops": _destroyer_ops, "f16": _f16,
    "buccaneer1": _buccaneer1, "buccaneer2": _buccaneer2, "hfchannel": _hfchannel, "leopard": _leopard,
    "m109": _m109, "machinegun": _machinegun, "volvo": _volvo,
}
