"""The built-in synthetic corpus: physically motivated machine sounds in DCASE 2020 Task 2 layout.

Four machine types (fan, pump, slider, valve), each with several machine IDs
that differ in speed or cycle, blade/vane count, structural resonances and
noise colour, so an ID classifier has something to learn. Normal clips vary
(speed drift, load, background level); anomalous clips carry one fault that fits
the machine type (bearing defects, imbalance, misalignment, looseness, blade
damage, rub, cavitation, stick-slip, rail damage, valve timing, leak, chatter,
sticking) at a severity drawn per clip between subtle and obvious. The sound
models live in ``synthetic_rotating``, ``synthetic_slider`` and
``synthetic_valve``; faults in ``synthetic_faults``.

Output, for IDs 00, 02, 04, ... (even numbers, as in the DCASE development set)::

    <out_dir>/dev_data/<type>/train/normal_id_XX_NNNNNNNN.wav
    <out_dir>/dev_data/<type>/test/normal_id_XX_NNNNNNNN.wav
    <out_dir>/dev_data/<type>/test/anomaly_id_XX_NNNNNNNN.wav

16-bit mono WAV at ``sample_rate``. Every clip has its own random stream derived
from (seed, type, ID, split, label, index) with ``numpy.random.SeedSequence``,
so the corpus is the same bytes whatever the number of workers, and one clip
can be made alone (:func:`clip_signal`). Levels are a fixed gain per ID (set
from a reference clip of that ID) plus a small per-clip load change: loudness is
part of the data, not normalised away per clip. A white sensor-noise floor at
-80 dBFS stands in for the recording chain, so 16-bit rounding never shapes the
quiet passages.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import scipy  # scipy.signal loads on first use: stages that only read corpus params skip it

from asdlib.audio import write_wav
from asdlib.corpora import synthetic_rotating, synthetic_slider, synthetic_valve
from asdlib.corpora.synthetic_common import Fault
from asdlib.corpora.synthetic_dsp import coloured_gain, db_to_amp, rms, shaped_noise
from asdlib.corpora.synthetic_faults import ALL_FAULT_KINDS, FAULT_KINDS, draw_fault
from asdlib.parallel import ParallelSettings, parallel_map

MACHINE_TYPES: tuple[str, ...] = ("fan", "pump", "slider", "valve")
Split = Literal["train", "test"]
Label = Literal["normal", "anomaly"]

_MODELS: dict[str, ModuleType] = {
    "fan": synthetic_rotating,
    "pump": synthetic_rotating,
    "slider": synthetic_slider,
    "valve": synthetic_valve,
}
# Output level of the machine part (dBFS, range over IDs) per type.
_LEVEL_DB = {"fan": (-29.0, -23.0), "pump": (-29.0, -23.0), "slider": (-37.0, -31.0),
             "valve": (-36.0, -30.0)}
_REFERENCE_SECONDS = 2.0
_PEAK_LIMIT = 0.98
_SENSOR_NOISE_DBFS = -80.0  # microphone and preamplifier self-noise, white
_MIN_CLIP_SECONDS = 0.25
_SPLIT_CODES = {"train": 0, "test": 1}
_LABEL_CODES = {"normal": 0, "anomaly": 1}
_PROFILE_KEY, _TYPE_KEY, _CLIP_KEY, _REFERENCE_KEY = 0, 1, 2, 3


@dataclass(frozen=True)
class SyntheticSettings:
    """What to generate.

    seed: root of every random stream (same seed, same bytes).
    ids_per_type: machine IDs per type, numbered 00, 02, 04, ... (at most 50).
    severity_min / severity_max: range (0 subtle .. 1 obvious) from which each
      anomalous clip's fault severity is drawn uniformly.
    fault_kinds: restrict anomalies to these fault kinds (empty: every kind that
      fits the machine type); each listed type needs at least one that fits.
    clip_seconds: length of every clip. Faults that sound at events of a slider's
      travel (rail defects where the carriage crosses a damaged spot, looseness at its
      starts and stops) need about a travel cycle (0.7-1.5 s) to be heard: at 0.5 s
      12 of 40 rail-defect clips had no such event, so they are labelled anomalous
      but sound normal. At 2 s (the default) every anomalous slider and valve clip of
      the default corpus has its fault's events (checked 2026-11-22).
    """

    seed: int = 20240
    machine_types: list[str] = field(default_factory=lambda: list(MACHINE_TYPES))
    ids_per_type: int = 4
    train_clips_per_id: int = 40
    test_normal_per_id: int = 12
    test_anomaly_per_id: int = 12
    clip_seconds: float = 2.0
    sample_rate: int = 16000
    severity_min: float = 0.0
    severity_max: float = 1.0
    fault_kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not self.machine_types:
            raise ValueError("machine_types must not be empty")
        for name in self.machine_types:
            if name not in MACHINE_TYPES:
                raise ValueError(f"machine_types: unknown machine type {name!r} "
                                 f"(known: {', '.join(MACHINE_TYPES)})")
        if len(set(self.machine_types)) != len(self.machine_types):
            raise ValueError(f"machine_types: duplicate entries in {self.machine_types}")
        if not 1 <= self.ids_per_type <= 50:
            raise ValueError(f"ids_per_type must be in 1..50 (two-digit even IDs), got {self.ids_per_type}")
        for name in ("train_clips_per_id", "test_normal_per_id", "test_anomaly_per_id"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.clip_seconds >= _MIN_CLIP_SECONDS:
            raise ValueError(f"clip_seconds must be >= {_MIN_CLIP_SECONDS}, got {self.clip_seconds}")
        if not 16000 <= self.sample_rate <= 48000:
            raise ValueError(f"sample_rate must be in 16000..48000 Hz, got {self.sample_rate}")
        if not 0.0 <= self.severity_min <= self.severity_max <= 1.0:
            raise ValueError(f"severity_min and severity_max must satisfy 0 <= min <= max <= 1, "
                             f"got {self.severity_min}, {self.severity_max}")
        for kind in self.fault_kinds:
            if kind not in ALL_FAULT_KINDS:
                raise ValueError(f"fault_kinds: unknown fault kind {kind!r} (known: {', '.join(ALL_FAULT_KINDS)})")
        if self.fault_kinds:
            for name in self.machine_types:
                if not set(self.fault_kinds) & set(FAULT_KINDS[name]):
                    raise ValueError(f"fault_kinds: none of {self.fault_kinds} fits machine type "
                                     f"{name!r} (it has {', '.join(FAULT_KINDS[name])})")

    @property
    def num_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


@dataclass(frozen=True)
class ClipSpec:
    """One clip of the corpus and where it goes."""

    machine_type: str
    machine_index: int  # 0, 1, 2, ... ; the ID number is twice this
    split: Split
    label: Label
    index: int

    @property
    def machine_id(self) -> str:
        return machine_id_name(self.machine_index)

    @property
    def relative_path(self) -> Path:
        name = f"{self.label}_{self.machine_id}_{self.index:08d}.wav"
        return Path("dev_data") / self.machine_type / self.split / name


_TEST_CLIP_NAME = re.compile(r"(normal|anomaly)_id_(\d{2})_(\d{8})(?:\.wav)?$")


def machine_id_name(machine_index: int) -> str:
    """``id_00``, ``id_02``, ... for machine index 0, 1, ..."""
    return f"id_{2 * machine_index:02d}"


def clip_specs(settings: SyntheticSettings) -> list[ClipSpec]:
    """Every clip of the corpus, in a fixed order (type, ID, split, label, index)."""
    specs = []
    for machine_type in settings.machine_types:
        for m in range(settings.ids_per_type):
            for split, label, count in (("train", "normal", settings.train_clips_per_id),
                                        ("test", "normal", settings.test_normal_per_id),
                                        ("test", "anomaly", settings.test_anomaly_per_id)):
                specs.extend(ClipSpec(machine_type, m, split, label, i) for i in range(count))
    return specs


@dataclass(frozen=True)
class _MachineId:
    """One machine ID: its sound-model profile and where it sits in the recording."""

    profile: Any  # the model's profile dataclass
    level_db: float  # output level (dBFS) of its reference clip
    reference_rms: float  # RMS of the model's output for the reference clip
    background_db: float  # room noise relative to the machine
    background_slope: float  # room noise colour, dB per octave
    fault_path_db: float  # how loudly faults reach the microphone (see Fault)

    @property
    def gain(self) -> float:
        """Fixed output gain that puts the reference clip at ``level_db``."""
        return db_to_amp(self.level_db) / self.reference_rms


def _type_code(machine_type: str) -> int:
    return zlib.crc32(machine_type.encode("utf-8"))


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@lru_cache(maxsize=512)
def _machine(seed: int, machine_type: str, machine_index: int, sample_rate: int) -> _MachineId:
    code = _type_code(machine_type)
    model = _MODELS[machine_type]
    id_rng = _rng(seed, _PROFILE_KEY, code, machine_index)
    profile = model.draw_profile(machine_type, machine_index, _rng(seed, _TYPE_KEY, code), id_rng)
    level_db = float(id_rng.uniform(*_LEVEL_DB[machine_type]))
    background_db = float(id_rng.uniform(-32.0, -8.0))
    background_slope = float(id_rng.uniform(-3.0, 0.0))
    fault_path_db = float(id_rng.uniform(-7.0, 7.0))
    ref_rng = _rng(seed, _REFERENCE_KEY, code, machine_index)
    reference = model.render(profile, model.draw_condition(profile, ref_rng), None,
                             int(_REFERENCE_SECONDS * sample_rate), sample_rate, ref_rng)
    return _MachineId(profile, level_db, max(rms(reference), 1e-12), background_db, background_slope,
                      fault_path_db)


def machine_profile(machine_type: str, machine_index: int, settings: SyntheticSettings) -> Any:
    """The sound-model profile of one machine ID (e.g. ``shaft_hz`` and ``passes`` of a
    fan or pump, ``cycle_s`` of a slider or valve)."""
    _check_machine(machine_type, machine_index, settings)
    return _machine(settings.seed, machine_type, machine_index, settings.sample_rate).profile


def _check_machine(machine_type: str, machine_index: int, settings: SyntheticSettings) -> None:
    if machine_type not in settings.machine_types:
        raise ValueError(f"machine type {machine_type!r} is not in settings.machine_types "
                         f"{settings.machine_types}")
    if not 0 <= machine_index < settings.ids_per_type:
        raise ValueError(f"machine_index {machine_index} outside 0..{settings.ids_per_type - 1}")


def _clip_rngs(spec: ClipSpec, settings: SyntheticSettings) -> list[np.random.Generator]:
    if spec.split not in _SPLIT_CODES or spec.label not in _LABEL_CODES:
        raise ValueError(f"unknown split/label {spec.split!r}/{spec.label!r}")
    if spec.split == "train" and spec.label == "anomaly":
        raise ValueError("the training split holds normal clips only")
    if spec.index < 0:
        raise ValueError(f"clip index must be >= 0, got {spec.index}")
    key = (_CLIP_KEY, _type_code(spec.machine_type), spec.machine_index,
           _SPLIT_CODES[spec.split], _LABEL_CODES[spec.label], spec.index)
    return [np.random.default_rng(s) for s in np.random.SeedSequence(settings.seed, spawn_key=key).spawn(4)]


def clip_fault(machine_type: str, machine_index: int, split: Split, label: Label, index: int,
               settings: SyntheticSettings) -> Fault | None:
    """The fault (kind and severity) of one clip; ``None`` for normal clips. Cheap:
    nothing is rendered."""
    spec = ClipSpec(machine_type, machine_index, split, label, index)
    _check_machine(machine_type, machine_index, settings)
    return _draw_fault(spec, settings, _clip_rngs(spec, settings)[1])


def fault_of_test_clip(machine_type: str, file_name: str, settings: SyntheticSettings) -> Fault | None:
    """The fault of the test clip ``file_name`` (``anomaly_id_02_00000005.wav``, as
    written by :func:`generate_synthetic`; a path or a clip id ending in it works too);
    ``None`` for a normal clip. What lets a detector's results be broken down by fault kind."""
    match = _TEST_CLIP_NAME.search(str(file_name))
    if match is None:
        raise ValueError(f"{file_name}: not a synthetic test clip name (normal|anomaly)_id_XX_NNNNNNNN")
    label, number, index = match.group(1), int(match.group(2)), int(match.group(3))
    if number % 2:
        raise ValueError(f"{file_name}: the synthetic corpus numbers its IDs 00, 02, 04, ...")
    return clip_fault(machine_type, number // 2, "test", label, index, settings)


def _draw_fault(spec: ClipSpec, settings: SyntheticSettings, rng: np.random.Generator) -> Fault | None:
    if spec.label != "anomaly":
        return None
    path_db = _machine(settings.seed, spec.machine_type, spec.machine_index, settings.sample_rate).fault_path_db
    return draw_fault(spec.machine_type, settings.fault_kinds,
                      (settings.severity_min, settings.severity_max), path_db, rng)


def clip_signal(machine_type: str, machine_index: int, split: Split, label: Label, index: int,
                settings: SyntheticSettings) -> np.ndarray:
    """One clip as float32 samples: what :func:`generate_synthetic` writes, before PCM-16
    quantisation. Peaks stay within 0.98; the rare clip that would exceed it (the
    loudest faults) is scaled down as a whole."""
    spec = ClipSpec(machine_type, machine_index, split, label, index)
    _check_machine(machine_type, machine_index, settings)
    return _render(spec, settings)


def _render(spec: ClipSpec, settings: SyntheticSettings) -> np.ndarray:
    sr, n = settings.sample_rate, settings.num_samples
    machine = _machine(settings.seed, spec.machine_type, spec.machine_index, sr)
    model = _MODELS[spec.machine_type]
    condition_rng, fault_rng, signal_rng, level_rng = _clip_rngs(spec, settings)
    condition = model.draw_condition(machine.profile, condition_rng)
    fault = _draw_fault(spec, settings, fault_rng)
    sound = model.render(machine.profile, condition, fault, n, sr, signal_rng)
    load_db = level_rng.uniform(-2.0, 2.0)
    background_db = machine.background_db + level_rng.uniform(-3.0, 3.0)
    background = shaped_noise(n, sr, coloured_gain(machine.background_slope, 40.0, 7000.0), level_rng)
    x = machine.gain * (db_to_amp(load_db) * sound
                        + machine.reference_rms * db_to_amp(background_db) * background)
    # the recording chain's own noise keeps quiet passages above the 16-bit rounding floor
    x += db_to_amp(_SENSOR_NOISE_DBFS) * level_rng.standard_normal(n)
    x = scipy.signal.sosfiltfilt(_dc_blocker(sr), x)
    peak = float(np.max(np.abs(x)))
    if peak > _PEAK_LIMIT:
        x *= _PEAK_LIMIT / peak
    return x.astype(np.float32)


@lru_cache(maxsize=4)
def _dc_blocker(sample_rate: int) -> np.ndarray:
    """Microphones do not pass DC or infrasound: 2nd-order high-pass at 20 Hz."""
    return scipy.signal.butter(2, 20.0, btype="highpass", fs=sample_rate, output="sos")


def generate_synthetic(out_dir: Path, settings: SyntheticSettings, n_jobs: int = 1) -> int:
    """Write the corpus under ``out_dir`` (see module docstring); return the number of files.

    Clips are rendered by ``n_jobs`` worker processes (-1: all cores) and written
    atomically by this process. WAV files under ``out_dir/dev_data`` that this
    settings would not write (left from other settings) are an error, so a
    stale corpus is never silently mixed in; files it would write are replaced.
    """
    out_dir = Path(out_dir)
    specs = clip_specs(settings)
    _refuse_stray_files(out_dir, specs)
    clips = parallel_map(partial(_render, settings=settings), specs,
                         ParallelSettings(backend="loky", n_jobs=n_jobs),
                         desc="synthetic corpus", total=len(specs))
    written = 0
    for spec, signal in zip(specs, clips):
        write_wav(out_dir / spec.relative_path, signal, settings.sample_rate)
        written += 1
    return written


def _refuse_stray_files(out_dir: Path, specs: list[ClipSpec]) -> None:
    root = out_dir / "dev_data"
    if not root.is_dir():
        return
    planned = {spec.relative_path for spec in specs}
    stray = sorted(p for p in root.rglob("*.wav") if p.relative_to(out_dir) not in planned)
    if stray:
        examples = ", ".join(str(p) for p in stray[:3])
        raise ValueError(f"{out_dir}: {len(stray)} WAV files that these settings would not write "
                         f"(e.g. {examples}); remove them or use an empty folder")
