"""The built-in synthetic corpus: layout, format, determinism, physics and settings."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import spectrogram, welch

from asdlib.config import ConfigError, parse
from asdlib.corpora import synthetic_rotating, synthetic_slider, synthetic_valve
from asdlib.corpora.dcase_layout import scan_dcase_layout
from asdlib.corpora.synthetic import (
    MACHINE_TYPES,
    SyntheticSettings,
    clip_fault,
    clip_signal,
    clip_specs,
    fault_of_test_clip,
    generate_synthetic,
    machine_profile,
)
from asdlib.corpora.synthetic_common import Fault
from asdlib.corpora.synthetic_faults import FAULT_KINDS
from asdlib.features import DCASE_BASELINE_LOGMEL, LogMel

TRAIN_NAME = re.compile(r"^normal_id_(\d\d)_(\d{8})\.wav$")
TEST_NAME = re.compile(r"^(normal|anomaly)_id_(\d\d)_(\d{8})\.wav$")

TINY = SyntheticSettings(
    machine_types=["fan", "valve"], ids_per_type=2, train_clips_per_id=2,
    test_normal_per_id=1, test_anomaly_per_id=2, clip_seconds=0.5,
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("synthetic")
    return root, generate_synthetic(root, TINY, n_jobs=1)


def test_layout_names_and_counts_are_dcase(tiny_corpus):
    root, written = tiny_corpus
    expected = 2 * 2 * (2 + 1 + 2)
    assert written == expected
    files = sorted(root.rglob("*.wav"))
    assert len(files) == expected
    counts: Counter = Counter()
    for path in files:
        section, machine_type, split = path.relative_to(root).parts[:3]
        assert section == "dev_data" and machine_type in TINY.machine_types
        if split == "train":
            match = TRAIN_NAME.match(path.name)
            assert match, path.name
            label, machine_id, number = "normal", match.group(1), match.group(2)
        else:
            assert split == "test"
            match = TEST_NAME.match(path.name)
            assert match, path.name
            label, machine_id, number = match.groups()
        assert machine_id in {"00", "02"}
        counts[(machine_type, split, label, machine_id)] += 1
        assert int(number) < 2
    for machine_type in TINY.machine_types:
        for machine_id in ("00", "02"):
            assert counts[(machine_type, "train", "normal", machine_id)] == 2
            assert counts[(machine_type, "test", "normal", machine_id)] == 1
            assert counts[(machine_type, "test", "anomaly", machine_id)] == 2


def test_files_are_16k_mono_pcm16_of_the_clip_length(tiny_corpus):
    root, _ = tiny_corpus
    for path in root.rglob("*.wav"):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert info.frames == TINY.num_samples


def test_strict_dcase_scanner_reads_the_corpus(tiny_corpus):
    root, written = tiny_corpus
    manifest = scan_dcase_layout(root, dataset="synthetic")
    assert len(manifest) == written
    assert set(manifest["machine_id"]) == {"id_00", "id_02"}
    assert Counter(manifest["label"]) == {"normal": 12, "anomaly": 8}


def test_written_file_equals_clip_signal_quantised(tiny_corpus):
    root, _ = tiny_corpus
    spec = clip_specs(TINY)[3]
    on_disk, _ = sf.read(str(root / spec.relative_path), dtype="float32")
    in_memory = clip_signal(spec.machine_type, spec.machine_index, spec.split, spec.label, spec.index, TINY)
    np.testing.assert_allclose(on_disk, in_memory, atol=1.0 / 32768 + 1e-7)


def test_serial_and_parallel_generation_give_identical_bytes(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    assert generate_synthetic(tmp_path, TINY, n_jobs=2) == len(clip_specs(TINY))
    assert _files(tmp_path) == _files(root)


def test_regenerating_in_place_overwrites_but_stray_files_are_refused(tmp_path):
    settings = SyntheticSettings(machine_types=["pump"], ids_per_type=1, train_clips_per_id=1,
                                 test_normal_per_id=1, test_anomaly_per_id=1, clip_seconds=0.25)
    generate_synthetic(tmp_path, settings)
    first = _files(tmp_path)
    assert generate_synthetic(tmp_path, settings) == 3
    assert _files(tmp_path) == first
    stray = tmp_path / "dev_data" / "pump" / "train" / "normal_id_04_00000000.wav"
    stray.write_bytes(b"old")
    with pytest.raises(ValueError, match="normal_id_04_00000000.wav"):
        generate_synthetic(tmp_path, settings)


def test_a_clip_does_not_depend_on_the_rest_of_the_corpus():
    small = SyntheticSettings(machine_types=["slider"], ids_per_type=2, train_clips_per_id=3, clip_seconds=0.5)
    large = SyntheticSettings(ids_per_type=6, train_clips_per_id=9, clip_seconds=0.5)
    a = clip_signal("slider", 1, "train", "normal", 2, small)
    b = clip_signal("slider", 1, "train", "normal", 2, large)
    assert np.array_equal(a, b)
    assert machine_profile("fan", 1, SyntheticSettings(ids_per_type=2)).shaft_hz == \
        machine_profile("fan", 1, SyntheticSettings(ids_per_type=8)).shaft_hz


def test_seeds_and_clip_keys_change_the_sound():
    base = SyntheticSettings(clip_seconds=0.5)
    other = SyntheticSettings(seed=base.seed + 1, clip_seconds=0.5)
    x = clip_signal("pump", 0, "train", "normal", 0, base)
    assert np.array_equal(x, clip_signal("pump", 0, "train", "normal", 0, base))
    for different in (clip_signal("pump", 0, "train", "normal", 0, other),
                      clip_signal("pump", 0, "train", "normal", 1, base),
                      clip_signal("pump", 0, "test", "normal", 0, base),
                      clip_signal("pump", 1, "train", "normal", 0, base)):
        assert not np.allclose(x, different)


def _log_spectrum(x: np.ndarray) -> np.ndarray:
    _, power = welch(x, fs=16000, nperseg=1024)
    return 10 * np.log10(power + 1e-14)


def _mel_shapes(clips: list[np.ndarray]) -> list[np.ndarray]:
    """Time-averaged log-mel spectra (the detectors' front end) minus their mean level."""
    with torch.no_grad():
        spectra = LogMel(DCASE_BASELINE_LOGMEL)(torch.from_numpy(np.stack(clips))).numpy().mean(axis=2)
    return list(spectra - spectra.mean(axis=1, keepdims=True))


def test_machine_ids_of_a_type_sound_different():
    """Every clip's log-mel shape is nearest to its own ID's centroid (leave-one-out):
    an ID classifier has something to learn."""
    settings = SyntheticSettings(ids_per_type=4, clip_seconds=2.0)
    for machine_type in MACHINE_TYPES:
        shapes = {m: _mel_shapes([clip_signal(machine_type, m, "train", "normal", i, settings) for i in range(4)])
                  for m in range(4)}
        for m, own in shapes.items():
            for i, shape in enumerate(own):
                centroids = {o: np.mean([s for j, s in enumerate(c) if (o, j) != (m, i)], axis=0)
                             for o, c in shapes.items()}
                nearest = min(centroids, key=lambda o: np.mean(np.abs(shape - centroids[o])))
                assert nearest == m, (machine_type, m, i)


def test_fan_ids_turn_at_different_speeds_and_show_their_blade_pass_tone():
    settings = SyntheticSettings(ids_per_type=4, clip_seconds=2.0)
    profiles = [machine_profile("fan", m, settings) for m in range(4)]
    speeds = sorted(p.shaft_hz for p in profiles)
    assert all(15.0 <= s <= 30.0 for s in speeds)
    assert min(b / a for a, b in zip(speeds, speeds[1:])) > 1.05
    for m, p in enumerate(profiles):
        freqs, power = welch(clip_signal("fan", m, "train", "normal", 0, settings), fs=16000, nperseg=8192)
        blade_pass = p.shaft_hz * p.passes
        near = np.abs(freqs - blade_pass) <= 0.03 * blade_pass
        around = np.abs(freqs - blade_pass) <= 0.3 * blade_pass
        assert 10 * np.log10(power[near].max() / np.median(power[around])) > 10.0, m


_MODELS = {"fan": synthetic_rotating, "pump": synthetic_rotating, "slider": synthetic_slider,
           "valve": synthetic_valve}
_SHAFT_ORDER = {"imbalance": 1, "misalignment": 2}


def _render_fixed(machine_type: str, machine_index: int, fault: Fault | None, seed: int) -> np.ndarray:
    """Two seconds of one ID at one fixed operating point; ``seed`` varies only the noise."""
    model = _MODELS[machine_type]
    profile = machine_profile(machine_type, machine_index, SyntheticSettings())
    condition = model.draw_condition(profile, np.random.default_rng(1))
    return model.render(profile, condition, fault, 32000, 16000, np.random.default_rng(seed))


def _band_levels(x: np.ndarray) -> np.ndarray:
    """Band levels in 64 bands of 125 Hz (dB) over 64 ms frames: their mean over time,
    and their 10th and 90th percentiles (quiet and loud moments, e.g. a valve closed
    and open)."""
    _, _, frames = spectrogram(x, fs=16000, nperseg=1024, noverlap=512)
    bands = 10 * np.log10(frames[1:513].reshape(64, 8, -1).sum(axis=1) + 1e-14)
    return np.stack([bands.mean(axis=1), *np.percentile(bands, [10, 90], axis=1)])


@pytest.mark.parametrize("machine_type", MACHINE_TYPES)
@pytest.mark.parametrize("machine_index", [0, 3])
def test_every_fault_kind_changes_the_spectrum(machine_type, machine_index):
    """With the operating point held fixed, a full-severity fault moves the band levels
    (RMS over bands) of the mean, the quiet or the loud moments at least twice as far as
    a new noise realisation does. Imbalance, misalignment and timing have their own tests."""
    def distance(fault: Fault | None, seed: int) -> np.ndarray:
        levels = _band_levels(_render_fixed(machine_type, machine_index, fault, seed))
        return np.sqrt(np.mean((levels - reference) ** 2, axis=1))

    reference = np.mean([_band_levels(_render_fixed(machine_type, machine_index, None, seed))
                         for seed in (2, 3, 4)], axis=0)
    noise = np.max([distance(None, seed) for seed in (5, 6)], axis=0)
    for kind in FAULT_KINDS[machine_type]:
        if kind in ("timing", *_SHAFT_ORDER):
            continue
        ratio = distance(Fault(kind, 1.0), 5) / noise
        assert ratio.max() > 2.0, (kind, ratio)


@pytest.mark.parametrize("machine_type", ["fan", "pump"])
@pytest.mark.parametrize("kind", sorted(_SHAFT_ORDER))
def test_imbalance_and_misalignment_raise_their_shaft_order(machine_type, kind):
    """Imbalance raises the 1x shaft tone, misalignment the 2x tone, by several dB."""
    order = _SHAFT_ORDER[kind]
    for machine_index in range(4):
        profile = machine_profile(machine_type, machine_index, SyntheticSettings())
        condition = _MODELS[machine_type].draw_condition(profile, np.random.default_rng(1))
        tone = order * profile.shaft_hz * condition.speed_factor

        def level(fault: Fault | None) -> float:
            freqs, power = welch(_render_fixed(machine_type, machine_index, fault, 5), fs=16000, nperseg=8192)
            return 10 * np.log10(power[np.abs(freqs - tone) <= max(4.0, 0.02 * tone)].sum())

        assert level(Fault(kind, 1.0)) > level(None) + 3.0, (machine_index, tone)


def test_valve_timing_fault_moves_an_actuation():
    settings = SyntheticSettings(machine_types=["valve"])
    profile = machine_profile("valve", 0, settings)
    condition = synthetic_valve.ValveCondition(1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    rng = np.random.default_rng(0)
    opens, closes = synthetic_valve._schedule(profile, condition, None, 3.0, rng)
    moved_opens, moved_closes = synthetic_valve._schedule(profile, condition, Fault("timing", 1.0), 3.0,
                                                          np.random.default_rng(0))
    def mismatch(times: np.ndarray, moved: np.ndarray) -> float:
        inside = times[(times > 0.5) & (times < 2.5)]
        return float(np.max([np.min(np.abs(moved - t)) for t in inside]))
    assert max(mismatch(opens, moved_opens), mismatch(closes, moved_closes)) > 0.01
    again_opens, _ = synthetic_valve._schedule(profile, condition, None, 3.0, np.random.default_rng(0))
    assert mismatch(opens, again_opens) == 0.0


def test_anomalies_score_higher_than_normals_on_a_simple_spectral_distance():
    settings = SyntheticSettings(clip_seconds=1.0, severity_min=0.7)
    for machine_type in ("fan", "pump", "slider"):
        reference = np.mean([_log_spectrum(clip_signal(machine_type, 1, "train", "normal", i, settings))
                             for i in range(6)], axis=0)
        def distance(label: str, i: int) -> float:
            x = clip_signal(machine_type, 1, "test", label, i, settings)
            return float(np.mean((_log_spectrum(x) - reference) ** 2))
        normal = np.mean([distance("normal", i) for i in range(6)])
        anomaly = np.mean([distance("anomaly", i) for i in range(6)])
        assert anomaly > normal, machine_type


def test_clips_are_finite_unclipped_and_not_silent():
    settings = SyntheticSettings(clip_seconds=0.5, severity_min=1.0, severity_max=1.0)
    for machine_type in MACHINE_TYPES:
        for label, index in (("normal", 0), ("anomaly", 0), ("anomaly", 1), ("anomaly", 2)):
            x = clip_signal(machine_type, 0, "test", label, index, settings)
            assert x.dtype == np.float32 and x.shape == (8000,)
            assert np.all(np.isfinite(x))
            assert np.max(np.abs(x)) <= 0.98 + 1e-6
            assert np.sum(np.abs(x) > 0.97) <= 2
            assert 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))) > -60.0


def test_clip_fault_describes_anomalies_only():
    settings = SyntheticSettings(severity_min=0.2, severity_max=0.6)
    assert clip_fault("fan", 0, "test", "normal", 0, settings) is None
    faults = [clip_fault("pump", 1, "test", "anomaly", i, settings) for i in range(40)]
    assert {f.kind for f in faults} == set(FAULT_KINDS["pump"])
    assert all(0.2 <= f.severity <= 0.6 for f in faults)
    only = SyntheticSettings(fault_kinds=["leak", "bearing"], machine_types=["valve", "fan"])
    assert {clip_fault("valve", 0, "test", "anomaly", i, only).kind for i in range(10)} == {"leak"}
    assert {clip_fault("fan", 0, "test", "anomaly", i, only).kind for i in range(10)} == {"bearing"}
    with pytest.raises(ValueError, match="training split"):
        clip_signal("fan", 0, "train", "anomaly", 0, settings)
    with pytest.raises(ValueError, match="machine_index"):
        clip_signal("fan", 4, "train", "normal", 0, settings)


def test_fault_of_test_clip_reads_the_written_names(tmp_path):
    generate_synthetic(tmp_path, TINY)
    anomalies = sorted((tmp_path / "dev_data" / "valve" / "test").glob("anomaly_*.wav"))
    assert len(anomalies) == 4
    for path in anomalies:
        number, index = TEST_NAME.match(path.name).group(2, 3)
        expected = clip_fault("valve", int(number) // 2, "test", "anomaly", int(index), TINY)
        assert fault_of_test_clip("valve", path, TINY) == expected
        assert fault_of_test_clip("valve", f"valve.dev.test.{path.stem}", TINY) == expected  # a clip id
    assert fault_of_test_clip("fan", "normal_id_02_00000000.wav", TINY) is None
    with pytest.raises(ValueError, match="section_00_0001.wav: not a synthetic test clip name"):
        fault_of_test_clip("fan", "section_00_0001.wav", TINY)
    with pytest.raises(ValueError, match="anomaly_id_01_00000000: the synthetic corpus numbers"):
        fault_of_test_clip("fan", "anomaly_id_01_00000000", TINY)


@pytest.mark.parametrize("changes, field", [
    ({"machine_types": ["fan", "drill"]}, "machine_types"),
    ({"machine_types": []}, "machine_types"),
    ({"ids_per_type": 0}, "ids_per_type"),
    ({"ids_per_type": 51}, "ids_per_type"),
    ({"train_clips_per_id": 0}, "train_clips_per_id"),
    ({"test_normal_per_id": -1}, "test_normal_per_id"),
    ({"test_anomaly_per_id": 0}, "test_anomaly_per_id"),
    ({"clip_seconds": 0.1}, "clip_seconds"),
    ({"sample_rate": 8000}, "sample_rate"),
    ({"severity_min": 0.8, "severity_max": 0.5}, "severity_min"),
    ({"fault_kinds": ["rust"]}, "fault_kinds"),
    ({"fault_kinds": ["leak"], "machine_types": ["fan"]}, "fault_kinds"),
    ({"seed": -1}, "seed"),
])
def test_settings_are_validated(changes, field):
    with pytest.raises(ValueError, match=field):
        SyntheticSettings(**changes)


def test_settings_parse_from_a_mapping():
    settings = parse(SyntheticSettings, {"machine_types": ["fan"], "clip_seconds": 1, "seed": 3})
    assert settings.machine_types == ["fan"] and settings.clip_seconds == 1.0
    with pytest.raises(ConfigError, match="synthetic.clip_second"):
        parse(SyntheticSettings, {"clip_second": 1.0}, "synthetic")
