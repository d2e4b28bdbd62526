import hashlib
import logging

import numpy as np
import pandas as pd
import pytest

from asdlib.audio import AudioError, write_wav
from asdlib.manifest import from_rows, read_clip
from asdlib.mixing import (ClipReader, MixError, MixSettings, build_mixtures, choose_noise, mix_at_snr,
                           noise_segment, power, store_native)
from asdlib.noise_bank import NoiseBankError, synthesize_noise
from asdlib.parallel import ParallelSettings
from asdlib.store import ShardReader


def tone(n, f, sr=16000, amp=0.3):
    return (amp * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


@pytest.mark.parametrize("snr", [-10.0, -6.0, 0.0, 6.0, 15.0])
def test_achieved_snr_is_exact(snr):
    rng = np.random.default_rng(0)
    clean = tone(16000, 440) + 0.01 * rng.standard_normal(16000).astype(np.float32)
    noise = rng.standard_normal(16000).astype(np.float32) * 3
    mixture, achieved = mix_at_snr(clean, noise, snr)
    assert abs(achieved - snr) < 0.01
    measured = 10 * np.log10(power(clean) / power(mixture - clean))
    assert abs(measured - snr) < 0.01
    with pytest.raises(ValueError, match="silent clean"):
        mix_at_snr(np.zeros(10, np.float32), noise[:10], 0.0)


@pytest.mark.parametrize("name", ["pink", "machinegun", "factory1", "volvo"])
@pytest.mark.parametrize("snr", [-6.0, 0.0, 6.0])
def test_achieved_snr_is_exact_with_bank_noises(name, snr):
    clean = tone(8000, 330) + tone(8000, 990, amp=0.05)
    noise = noise_segment(synthesize_noise(name, 0.4, seed=1), 8000, 1234, 800)  # looped: 0.4 s < 0.5 s
    mixture, achieved = mix_at_snr(clean, noise, snr)
    assert mixture.dtype == np.float32
    assert abs(achieved - snr) < 0.01
    assert abs(10 * np.log10(power(clean) / power(mixture.astype(np.float64) - clean)) - achieved) < 1e-9


def test_looped_noise_is_continuous_at_the_seam():
    # a slow, smooth 'noise' whose end does not match its start: a plain wrap would jump
    t = np.arange(3000)
    noise = (np.sin(2 * np.pi * t / 1130.0) + 0.5 * np.cos(2 * np.pi * t / 517.0)).astype(np.float32)
    out = noise_segment(noise, 9000, 100, crossfade=400)
    assert np.all(np.isfinite(out))
    assert abs(float(noise[-1]) - float(noise[0])) > 0.5  # the raw seam would be a jump
    max_step = np.max(np.abs(np.diff(noise.astype(np.float64))))
    assert np.max(np.abs(np.diff(out.astype(np.float64)))) < 2.0 * max_step


def test_looped_noise_has_no_gap_and_keeps_level():
    noise = np.random.default_rng(1).standard_normal(3000).astype(np.float32)
    out = noise_segment(noise, 10000, 2500, crossfade=400)
    assert len(out) == 10000 and np.all(np.isfinite(out))
    window = 200
    rms = np.sqrt(np.convolve(out ** 2, np.ones(window) / window, mode="valid"))
    assert rms.min() > 0.5 * np.sqrt(power(noise))  # never a silent stretch
    assert np.array_equal(out[:100], noise[2500:2600])  # untouched before the crossfade
    assert np.array_equal(noise_segment(noise, 1000, 10, 400), noise[10:1010])


def test_looped_noise_from_an_offset_closer_to_the_end_than_the_crossfade():
    noise = np.random.default_rng(2).standard_normal(3000).astype(np.float32)
    out = noise_segment(noise, 10000, 2990, crossfade=400)  # 10 samples before the first wrap
    assert len(out) == 10000 and np.all(np.isfinite(out))
    # it starts 390 samples into the wrap's 400-sample crossfade, then plays the loop
    fade = np.sin(0.5 * np.pi * (np.arange(400) + 0.5) / 400).astype(np.float32)
    assert np.array_equal(out[:10], noise[2990:] * fade[::-1][390:] + noise[390:400] * fade[390:])
    assert np.array_equal(out[10:2210], noise[400:2600])


@pytest.mark.parametrize("offset", [0, 399, 12000, 15600, 15601, 15999])
def test_every_wrap_has_the_full_crossfade(offset):
    # smooth, with an end far from its start: a wrap with a short crossfade is a jump
    noise = np.sin(2 * np.pi * 7.3 * np.arange(16000) / 16000).astype(np.float32)
    out = noise_segment(noise, 40000, offset, crossfade=400)
    max_step = np.max(np.abs(np.diff(noise.astype(np.float64))))
    assert np.max(np.abs(np.diff(out.astype(np.float64)))) < 2.0 * max_step


def test_segment_ending_inside_a_wrap_keeps_the_plain_tail():
    noise = np.random.default_rng(3).standard_normal(3000).astype(np.float32)
    out = noise_segment(noise, 4800, 500, crossfade=400)  # ends 100 samples into the second wrap's fade
    assert np.array_equal(out[:2100], noise[500:2600])
    assert np.array_equal(out[-100:], noise[2600:2700])


def test_condition_names():
    with pytest.raises(ValueError, match="'6 dB'"):
        MixSettings(conditions=["clean", "6 dB"])
    with pytest.raises(ValueError, match="duplicates"):
        MixSettings(conditions=["clean", "clean"])


def test_noise_choice_is_a_function_of_identity():
    lengths = {"white": 50000, "pink": 60000, "babble": 70000}
    first = [choose_noise(f"c{i}", "0dB", 3, lengths, 16000) for i in range(50)]
    again = [choose_noise(f"c{i}", "0dB", 3, dict(reversed(list(lengths.items()))), 16000)
             for i in reversed(range(50))][::-1]
    assert first == again
    assert {name for name, _ in first} == set(lengths)
    assert all(0 <= offset <= lengths[name] - 16000 for name, offset in first)
    assert first != [choose_noise(f"c{i}", "0dB", 4, lengths, 16000) for i in range(50)]
    # pinned: a change of the draw (hash, modulus, name order) would silently move every mixture
    assert choose_noise("c0", "0dB", 3, {"white": 50000, "pink": 60000}, 16000) == ("white", 6383)


@pytest.fixture
def corpus(tmp_path):
    rows = []
    for t, f in (("fan", 200.0), ("pump", 300.0)):
        for i in range(5):
            path = tmp_path / "wav" / f"{t}_{i}.wav"
            write_wav(path, tone(8000, f + 10 * i))
            rows.append(dict(clip_id=f"{t}.train.{i}", path=str(path), dataset="t", machine_type=t,
                             machine_id="id_00", split="train" if i < 3 else "test",
                             label="normal" if i != 4 else "anomaly", channel=0))
    noise_dir = tmp_path / "noise"
    rng = np.random.default_rng(5)
    for name in ("white", "pink"):
        write_wav(noise_dir / f"{name}.wav", (0.2 * rng.standard_normal(20000)).astype(np.float32))
    return from_rows(rows), noise_dir


def mix(corpus, tmp_path, out, n_jobs=1, read=read_clip, settings=None):
    manifest, noise_dir = corpus
    settings = settings or MixSettings(conditions=["clean", "-6dB", "6dB"])
    return build_mixtures(manifest, noise_dir, tmp_path / out, tmp_path / f"work-{out}", settings,
                          ParallelSettings(backend="loky" if n_jobs > 1 else "sequential", n_jobs=n_jobs), read)


def digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.h5"))}


def test_build_mixtures_manifest_and_attrs(corpus, tmp_path):
    mixtures = mix(corpus, tmp_path, "a")
    assert len(mixtures) == 10 * 3
    row = mixtures[mixtures["clip_id"] == "fan.train.1@-6dB"].iloc[0]
    assert row["source_clip_id"] == "fan.train.1" and row["condition"] == "-6dB"
    assert abs(row["snr_db"] - (-6.0)) < 0.01 and row["noise_type"] in ("white", "pink")
    with ShardReader(row["store"]) as reader:
        audio, attrs = reader.read(row["key"]), reader.attrs(row["key"])
    clean = read_clip(corpus[0].set_index("clip_id").loc["fan.train.1"].to_dict() | {"clip_id": "x"})
    assert abs(10 * np.log10(power(clean) / power(audio - clean)) + 6.0) < 0.01
    assert attrs["noise_offset"] == row["noise_offset"]
    clean_row = mixtures[mixtures["clip_id"] == "fan.train.1@clean"].iloc[0]
    assert np.isnan(clean_row["snr_db"])
    assert sorted(p.name for p in (tmp_path / "a" / "fan").iterdir()) == ["-6dB.h5", "6dB.h5", "clean.h5"]


def test_mix_seed_draws_each_mixtures_noise(corpus, tmp_path):
    lengths = {"white": 20000, "pink": 20000}
    drawn = {}
    for seed in (11, 12):
        mixtures = mix(corpus, tmp_path, f"s{seed}", settings=MixSettings(conditions=["-6dB"], seed=seed))
        drawn[seed] = [(r.noise_type, r.noise_offset) for r in mixtures.itertuples()]
        assert drawn[seed] == [choose_noise(r.source_clip_id, r.condition, seed, lengths, 8000)
                               for r in mixtures.itertuples()]
    assert drawn[11] != drawn[12]


def test_deterministic_serial_and_parallel(corpus, tmp_path):
    mix(corpus, tmp_path, "a")
    mix(corpus, tmp_path, "b", n_jobs=2)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


class Crash(Exception):
    pass


class CrashAfter:
    """A clip reader that fails on the k-th call, as a killed run would stop."""

    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self, row):
        self.calls += 1
        if self.calls > self.k:
            raise Crash("killed")
        return read_clip(row)


def test_interrupted_run_resumes_to_identical_bytes(corpus, tmp_path):
    settings = MixSettings(conditions=["clean", "0dB"])
    import asdlib.mixing as mixing

    old = mixing.BATCH, mixing.PART_SIZE
    mixing.BATCH = mixing.PART_SIZE = 2
    try:
        mix(corpus, tmp_path, "full", settings=settings)
        with pytest.raises(Crash):
            mix(corpus, tmp_path, "res", read=CrashAfter(7), settings=settings)
        assert not list((tmp_path / "res").rglob("*.h5"))  # nothing half-written
        counter = CrashAfter(10 ** 6)
        mix(corpus, tmp_path, "res", read=counter, settings=settings)
    finally:
        mixing.BATCH, mixing.PART_SIZE = old
    assert counter.calls < 10  # finished parts were not recomputed
    assert digests(tmp_path / "full") == digests(tmp_path / "res")


def test_silent_clip_excluded_and_nan_clip_named(corpus, tmp_path, caplog):
    manifest, noise_dir = corpus
    write_wav(manifest.loc[0, "path"], np.zeros(8000, np.float32))
    with caplog.at_level(logging.WARNING):
        mixtures = mix(corpus, tmp_path, "s")
    assert manifest.loc[0, "clip_id"] in caplog.text and "silent" in caplog.text
    assert not mixtures["source_clip_id"].eq(manifest.loc[0, "clip_id"]).any()

    def nan_reader(row):
        x = read_clip(row)
        x[5] = np.nan
        return x

    with pytest.raises(AudioError, match=r"clip fan\.train\.0 .*fan_0\.wav.*NaN"):
        mix(corpus, tmp_path, "n", read=nan_reader)


def test_store_native_keeps_recorded_conditions(tmp_path):
    rows = []
    for level, snr in (("-6dB", -6.0), ("6dB", 6.0)):
        for i in range(3):
            path = tmp_path / f"{level}_{i}.wav"
            write_wav(path, tone(4000, 100 + i))
            rows.append(dict(clip_id=f"mimii.{level}.fan.{i}", path=str(path), dataset="mimii",
                             machine_type="fan", machine_id="id_00", split="train", label="normal",
                             channel=0, condition=level, snr_db=snr))
    manifest = from_rows(rows)
    out = store_native(manifest, tmp_path / "mix", tmp_path / "work", MixSettings(conditions=["-6dB", "6dB"]),
                       ParallelSettings(backend="sequential"), read_clip)
    assert sorted(set(out["condition"])) == ["-6dB", "6dB"]
    assert out.loc[out["clip_id"] == "mimii.-6dB.fan.0@-6dB", "snr_db"].iloc[0] == -6.0
    with ShardReader(tmp_path / "mix" / "fan" / "-6dB.h5") as reader:
        assert np.allclose(reader.read("mimii.-6dB.fan.0@-6dB"), read_clip(manifest.iloc[0]))
    with pytest.raises(ValueError, match=r"conditions \['0dB'\] are not in this corpus"):
        store_native(manifest, tmp_path / "m2", tmp_path / "w2", MixSettings(conditions=["0dB"]),
                     ParallelSettings(backend="sequential"), read_clip)


def test_resume_redoes_clips_read_another_way(corpus, tmp_path, monkeypatch):
    """A killed run's parts are reused only by a rerun reading the clips the same way: the same
    num_samples (clip_seconds), channel and reader settings (resample)."""
    import asdlib.mixing as mixing

    manifest, noise_dir = corpus
    reads = []

    def counting_read_clip(row, resample=False):
        reads.append(row["clip_id"])
        if crash_after is not None and len(reads) > crash_after:
            raise Crash("killed")
        return read_clip(row, resample=resample)

    monkeypatch.setattr(mixing, "read_clip", counting_read_clip)
    settings = MixSettings(conditions=["0dB"])

    def run(name, num_samples, reader):
        reads.clear()
        return mix((manifest.assign(num_samples=num_samples), noise_dir), tmp_path, name, read=reader,
                   settings=settings)

    for name, num_samples, resample, rereads in (("same", 8000, False, 2), ("length", 6000, False, 10),
                                                  ("resample", 8000, True, 10)):
        crash_after = 8  # the first batch of 8 clips is done and kept
        with pytest.raises(Crash):
            run(name, 8000, ClipReader())
        crash_after = None
        out = run(name, num_samples, ClipReader(resample=resample))
        assert len(reads) == rereads, name
        for store, key in zip(out["store"], out["key"]):
            with ShardReader(store) as reader:
                assert len(reader.read(key)) == num_samples


def test_rewritten_noise_bank_is_read_again(corpus, tmp_path):
    manifest, noise_dir = corpus
    settings = MixSettings(conditions=["0dB"])
    first = mix(corpus, tmp_path, "a", settings=settings)
    for name in ("white", "pink"):
        write_wav(noise_dir / f"{name}.wav", tone(20000, 1000.0 if name == "white" else 1500.0))
    second = mix(corpus, tmp_path, "b", settings=settings)
    key = "fan.train.0@0dB"
    with ShardReader(first.set_index("clip_id").loc[key, "store"]) as a, \
            ShardReader(second.set_index("clip_id").loc[key, "store"]) as b:
        clean = read_clip(manifest.iloc[0])
        noise_b = b.read(key) - clean
        assert not np.allclose(a.read(key), b.read(key))
        spectrum = np.abs(np.fft.rfft(noise_b))  # the new bank's tones, not the old white noise
        assert np.argmax(spectrum) * 16000 / len(noise_b) in (1000.0, 1500.0)


def test_silent_stretch_of_a_noise_is_named(corpus, tmp_path):
    manifest, _ = corpus
    noise_dir = tmp_path / "hum"
    noise = np.zeros(80000, np.float32)
    noise[-8000:] = tone(8000, 50.0)  # 4.5 s of digital silence, then 0.5 s of hum
    write_wav(noise_dir / "hum.wav", noise)
    with pytest.raises(MixError, match=r"clip \S+ at 0dB, noise hum .*silent over the 8000 samples from offset \d+"):
        mix((manifest, noise_dir), tmp_path, "h", settings=MixSettings(conditions=["0dB"]))


def test_all_silent_clips_and_unknown_noise_names_are_clear_errors(corpus, tmp_path):
    manifest, noise_dir = corpus
    with pytest.raises(NoiseBankError, match=r"noise_names lists \['babble'\], not in the noise bank .*"
                                             r"\(it has: pink, white\)"):
        mix(corpus, tmp_path, "u", settings=MixSettings(noise_names=["babble", "white"]))
    for path in manifest["path"]:
        write_wav(path, np.zeros(8000, np.float32))
    with pytest.raises(MixError, match="all 10 clips are silent"):
        mix(corpus, tmp_path, "s")


def test_manifest_frame_types(corpus, tmp_path):
    mixtures = mix(corpus, tmp_path, "a")
    assert isinstance(mixtures, pd.DataFrame)
    assert mixtures["clip_id"].is_unique
