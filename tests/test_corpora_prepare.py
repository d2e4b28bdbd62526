"""Corpus preparation: the strict DCASE layout scanner and each corpus's prepare_* function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdlib.audio import read_audio
from asdlib.corpora.audioset_music import (
    match_music_files,
    prepare_audioset_music,
    read_segments,
    select_music_segments,
)
from asdlib.corpora.dcase2020 import prepare_dcase2020, read_ground_truth
from asdlib.corpora.dcase_layout import CorpusLayoutError, scan_dcase_layout
from asdlib.corpora.mimii import prepare_mimii
from asdlib.corpora.noisex92 import prepare_noisex92, resample_ratio
from asdlib.manifest import read_manifest, write_manifest
from fake_corpora import (
    dcase_ground_truth,
    make_dcase_corpus,
    make_dcase_tree,
    make_mimii_tree,
    make_noisex_files,
    write_audioset_ontology,
    write_audioset_segments,
    write_tiny_wav,
)


# --- scan_dcase_layout ------------------------------------------------------------------

def test_scan_full_layout_splits_labels_ids(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan", "ToyCar"], n_per_id=2)
    df = scan_dcase_layout(root)
    assert len(df) == 2 * (2 * 6 + 2 * 2 + 2 * 4)  # types x (dev 2 ids x 6, eval train 2x2, eval test 2x4)
    counts = df.groupby(["machine_type", "split", "label"]).size().to_dict()
    assert counts[("fan", "train", "normal")] == 8
    assert counts[("fan", "test", "normal")] == 4
    assert counts[("fan", "test", "anomaly")] == 4
    assert counts[("fan", "eval", "unknown")] == 8
    assert set(df["machine_id"]) == {"id_00", "id_01", "id_02", "id_03"}
    assert set(df.loc[df.split == "eval", "machine_id"]) == {"id_01", "id_03"}
    assert (df["channel"] == 0).all() and set(df["dataset"]) == {"dcase2020"}
    assert "fan.dev.train.normal_id_00_00000000" in set(df["clip_id"])
    assert "fan.eval.test.id_01_00000003" in set(df["clip_id"])
    assert not df["clip_id"].str.contains("/").any()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["path"])


def test_scan_is_deterministic_and_round_trips(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["pump"])
    a, b = scan_dcase_layout(root), scan_dcase_layout(root)
    assert a.equals(b)
    write_manifest(a, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv")["clip_id"].tolist() == a["clip_id"].tolist()


def test_scan_paths_relative_to_base_only_when_inside(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan"], with_eval=False)
    df = scan_dcase_layout(root, path_base=tmp_path)
    assert all(not Path(p).is_absolute() and (tmp_path / p).is_file() for p in df["path"])
    assert df["path"].str.startswith("c/dev_data/fan/").all()
    outside = scan_dcase_layout(root, path_base=tmp_path / "elsewhere")
    assert all(Path(p).is_absolute() for p in outside["path"])


def test_scan_applies_ground_truth(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan"], n_per_id=2)
    truth = dcase_ground_truth(["fan"], (1, 3), n_per_id=2)
    df = scan_dcase_layout(root, ground_truth=truth)
    ev = df[df.split == "eval"]
    assert (ev["label"] != "unknown").all()
    assert ev.set_index("clip_id").loc["fan.eval.test.id_01_00000000", "label"] == "normal"
    assert ev.set_index("clip_id").loc["fan.eval.test.id_01_00000003", "label"] == "anomaly"
    assert (ev["label"] == "anomaly").sum() == 4


def test_scan_ground_truth_must_cover_every_eval_clip_and_file(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan"])
    truth = dcase_ground_truth(["fan"], (1, 3))
    missing_entry = dict(truth)
    del missing_entry["fan/id_03_00000001.wav"]
    with pytest.raises(CorpusLayoutError, match="missing from the ground truth.*fan/id_03_00000001.wav"):
        scan_dcase_layout(root, ground_truth=missing_entry)
    extra = {**truth, "fan/id_05_00000000.wav": "normal", "pump/id_01_00000000.wav": "normal"}
    with pytest.raises(CorpusLayoutError, match="without a file.*fan/id_05_00000000.wav") as err:
        scan_dcase_layout(root, ground_truth=extra)
    assert "pump" not in str(err.value)  # entries of types not scanned are ignored
    dev_only = make_dcase_corpus(tmp_path / "d", ["fan"], with_eval=False)
    assert len(scan_dcase_layout(dev_only, ground_truth=truth)) == 12  # no eval clips: nothing to label
    with pytest.raises(CorpusLayoutError, match="other than normal/anomaly"):
        scan_dcase_layout(root, ground_truth={**truth, "fan/id_01_00000000.wav": "broken"})


def test_scan_flat_root_with_type_folders(tmp_path):
    make_dcase_tree(tmp_path, "valve", "dev", [0], n_per_id=2)
    make_dcase_tree(tmp_path, "valve", "eval_test", [1], n_per_id=1)
    df = scan_dcase_layout(tmp_path, dataset="folder")
    assert df.groupby("split").size().to_dict() == {"eval": 2, "test": 4, "train": 2}
    assert set(df["dataset"]) == {"folder"}
    assert "valve.eval.test.id_01_00000000" in set(df["clip_id"])


def test_scan_selects_machine_types(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan", "pump"], with_eval=False)
    df = scan_dcase_layout(root, machine_types=["pump"])
    assert set(df["machine_type"]) == {"pump"}


def test_scan_missing_requested_type_lists_it_and_root(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan"], with_eval=False)
    with pytest.raises(CorpusLayoutError) as err:
        scan_dcase_layout(root, machine_types=["fan", "slider", "ToyCar"])
    message = str(err.value)
    assert "requested machine types not found" in message
    assert "slider" in message and "ToyCar" in message and str(root) in message


def test_scan_unexpected_files_are_listed_at_most_five(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan"], with_eval=False)
    test_dir = root / "dev_data" / "fan" / "test"
    for k in range(7):
        write_tiny_wav(test_dir / f"weird_{k}.wav")
    (root / "dev_data" / "fan" / "train" / "notes.txt").write_text("x")
    (root / "dev_data" / "fan" / "test" / ".DS_Store").write_text("ignored")
    (root / "dev_data" / "fan" / "extra").mkdir()
    with pytest.raises(CorpusLayoutError) as err:
        scan_dcase_layout(root)
    message = str(err.value)
    assert "unexpected entries (9)" in message and "(and 4 more)" in message
    assert message.count("weird_") <= 5
    assert ".DS_Store" not in message


def test_scan_eval_names_in_dev_test_are_unexpected(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan"], with_eval=False)
    write_tiny_wav(root / "dev_data" / "fan" / "test" / "id_00_00000099.wav")
    write_tiny_wav(root / "dev_data" / "fan" / "train" / "anomaly_id_00_00000099.wav")
    with pytest.raises(CorpusLayoutError, match="unexpected entries \\(2\\)"):
        scan_dcase_layout(root)


def test_scan_type_without_train_or_test(tmp_path):
    make_dcase_tree(tmp_path / "a" / "dev_data", "fan", "eval_test", [0], n_per_id=1)
    with pytest.raises(CorpusLayoutError, match="without train clips.*fan"):
        scan_dcase_layout(tmp_path / "a")
    make_dcase_tree(tmp_path / "b" / "eval_data", "pump", "eval_train", [1], n_per_id=1)
    with pytest.raises(CorpusLayoutError, match="without test clips.*pump"):
        scan_dcase_layout(tmp_path / "b")


def test_scan_empty_or_missing_root(tmp_path):
    with pytest.raises(CorpusLayoutError, match="not found"):
        scan_dcase_layout(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusLayoutError, match="no machine type folders"):
        scan_dcase_layout(tmp_path / "empty")


# --- dcase2020 ----------------------------------------------------------------------------

def test_prepare_dcase2020_labels_eval_from_ground_truth_file(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan", "pump"], n_per_id=2)
    df = prepare_dcase2020(root, path_base=tmp_path)
    ev = df[df.split == "eval"]
    assert len(ev) == 16 and set(ev["label"]) == {"normal", "anomaly"}
    assert (df["num_samples"] == 160000).all()
    clip = df[df.clip_id == "pump.eval.test.id_03_00000002"].iloc[0]
    assert clip["label"] == "anomaly" and not Path(clip["path"]).is_absolute()
    x = read_audio(tmp_path / clip["path"], num_samples=int(clip["num_samples"]))
    assert x.shape == (160000,) and not x[1600:].any()  # 0.1 s clip zero-padded on read


def test_prepare_dcase2020_without_ground_truth_keeps_unknown(tmp_path):
    root = make_dcase_corpus(tmp_path / "c", ["fan"], with_ground_truth=False)
    df = prepare_dcase2020(root)
    assert set(df.loc[df.split == "eval", "label"]) == {"unknown"}


def test_read_ground_truth_format_and_errors(tmp_path):
    good = tmp_path / "gt.csv"
    good.write_text("fan\nid_01_00000000.wav,normal_id_01_00000000.wav,0\n"
                    "id_01_00000001.wav,anomaly_id_01_00000000.wav,1\nToyCar,,\nid_05_00000000.wav,x,0\n")
    assert read_ground_truth(good) == {"fan/id_01_00000000.wav": "normal", "fan/id_01_00000001.wav": "anomaly",
                                       "ToyCar/id_05_00000000.wav": "normal"}
    saved = tmp_path / "saved.csv"  # by a spreadsheet: a byte-order mark before the first type name
    saved.write_bytes(b"\xef\xbb\xbf" + good.read_bytes())
    assert read_ground_truth(saved) == read_ground_truth(good)
    bad = tmp_path / "bad.csv"
    bad.write_text("fan\nid_01_00000000.wav,x,maybe\n")
    with pytest.raises(CorpusLayoutError, match=r"bad.csv:2: expected"):
        read_ground_truth(bad)
    orphan = tmp_path / "orphan.csv"
    orphan.write_text("id_01_00000000.wav,x,0\n")
    with pytest.raises(CorpusLayoutError, match="before any machine type"):
        read_ground_truth(orphan)


# --- mimii --------------------------------------------------------------------------------

def _mimii(root, snrs=("-6", "6"), types=("fan", "valve"), n_normal=6, n_abnormal=2):
    for snr in snrs:
        for t in types:
            make_mimii_tree(root / f"{snr}_dB", t, ids=(0, 2), n_normal=n_normal, n_abnormal=n_abnormal,
                            seconds=0.05)
    return root


def test_mimii_split_counts_labels_and_snr(tmp_path):
    root = _mimii(tmp_path / "m")
    df = prepare_mimii(root, channel=3)
    assert len(df) == 2 * 2 * 2 * 8
    for _, group in df.groupby(["condition", "machine_type", "machine_id"]):
        test = group[group.split == "test"]
        assert (test.label == "anomaly").sum() == 2 and (test.label == "normal").sum() == 2
        assert (group[group.split == "train"].label == "normal").sum() == 4
    assert set(df["condition"]) == {"-6dB", "6dB"} and set(df["snr_db"]) == {-6.0, 6.0}
    assert (df["channel"] == 3).all() and set(df["dataset"]) == {"mimii"}
    assert "valve.-6dB.id_02.anomaly.00000001" not in set(df["clip_id"])
    assert "valve.-6dB.id_02.abnormal.00000001" in set(df["clip_id"])
    assert read_audio(df["path"].iloc[0], channel=7).shape == (800,)


def test_mimii_split_is_deterministic_and_seeded(tmp_path):
    root = _mimii(tmp_path / "m", n_normal=12, n_abnormal=3)
    a, b = prepare_mimii(root), prepare_mimii(root)
    assert a.equals(b)
    only_fan = prepare_mimii(root, machine_types=["fan"], snr_levels=["6dB"])
    merged = only_fan.merge(a, on="clip_id", suffixes=("", "_all"))
    assert len(merged) == len(only_fan) and (merged.split == merged.split_all).all()
    other = prepare_mimii(root, seed=1)
    assert not (other.set_index("clip_id").split == a.set_index("clip_id").split).all()


def test_mimii_layout_errors(tmp_path):
    root = _mimii(tmp_path / "m", snrs=("0",), types=("pump",))
    write_tiny_wav(root / "0_dB" / "pump" / "id_00" / "normal" / "bad_name.wav")
    (root / "0_dB" / "pump" / "id_00" / "broken").mkdir()
    with pytest.raises(CorpusLayoutError) as err:
        prepare_mimii(root, machine_types=["pump", "slider"], snr_levels=["0dB", "6dB"])
    message = str(err.value)
    for expected in ("bad_name.wav", "id_00/broken", "0dB/slider", "-6_dB, 0_dB, 6_dB) (1): 6dB"):
        assert expected in message
    (root / "0_dB" / "valve").mkdir()  # an empty type folder (say, an archive not yet extracted)
    with pytest.raises(CorpusLayoutError, match=r"machine type folders without machine IDs \(1\): 0dB/valve$"):
        prepare_mimii(root, machine_types=["pump", "valve"], snr_levels=["0dB"])
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\), got -1"):
        prepare_mimii(root, seed=-1)
    stereo = make_mimii_tree(tmp_path / "s" / "0_dB", "pump", ids=(0,), n_normal=3, n_abnormal=1, seconds=0.05,
                             channels=2).parent
    with pytest.raises(CorpusLayoutError, match=r"IDs whose recordings have no channel 2 \(1\): 0dB/pump/id_00 "
                                                r"\(2 channels\)$"):
        prepare_mimii(stereo, channel=2)
    assert len(prepare_mimii(stereo, channel=1)) == 4
    lopsided = _mimii(tmp_path / "l", snrs=("6",), types=("fan",), n_normal=2, n_abnormal=2)
    with pytest.raises(CorpusLayoutError, match="without train clips"):
        prepare_mimii(lopsided)


# --- noisex92 -----------------------------------------------------------------------------

def test_noisex_ratio_is_exact():
    assert resample_ratio(19980) == (800, 999)
    assert resample_ratio(16000) == (1, 1)


@pytest.mark.parametrize("fmt", ["mat", "wav"])
def test_noisex_resamples_to_16k(tmp_path, fmt):
    make_noisex_files(tmp_path / "src", ["white", "volvo"], seconds=0.999, fmt=fmt)
    table = prepare_noisex92(tmp_path / "src", tmp_path / "out")
    assert list(table["name"]) == ["white", "volvo"]  # NOISEX order
    for row in table.itertuples():
        info = sf.info(row.path)
        assert info.samplerate == 16000 and info.channels == 1
        assert info.frames == 15984  # 0.999 s: 19960 samples * 800 / 999, rounded up
        assert row.duration_s == pytest.approx(0.999)
        assert row.source_rate == 19980


def test_noisex_preserves_a_tone(tmp_path):
    from scipy.io import savemat

    (tmp_path / "src").mkdir()
    t = np.arange(19980) / 19980
    savemat(str(tmp_path / "src" / "pink.mat"), {"pink": np.round(16000 * np.sin(2 * np.pi * 1000 * t))[:, None]})
    table = prepare_noisex92(tmp_path / "src", tmp_path / "out", names=["pink"])
    y, rate = sf.read(table["path"][0])
    spectrum = np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(len(y) - 2000)))
    peak_hz = np.argmax(spectrum) * rate / (len(y) - 2000)
    assert abs(peak_hz - 1000) < 2 and abs(np.max(np.abs(y[1000:-1000])) - 16000 / 32768) < 0.01


def test_noisex_missing_recordings(tmp_path):
    make_noisex_files(tmp_path / "src", ["white"], seconds=0.1)
    with pytest.raises(CorpusLayoutError, match="recordings not found.*babble"):
        prepare_noisex92(tmp_path / "src", tmp_path / "out", names=["white", "babble"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusLayoutError, match="no NOISEX-92 recordings"):
        prepare_noisex92(tmp_path / "empty", tmp_path / "out")


# --- audioset_music -----------------------------------------------------------------------

SEGMENTS = [
    ("--PJHxphWEs", 30.0, 40.0, ["/m/09x0r", "/m/04rlf"]),
    ("-0RWZT-miFs", 420.0, 430.0, ["/m/04rlf"]),
    ("Yabcdefghij", 0.0, 10.0, ["/m/04rlf", "/m/0jbk"]),
    ("0123456789a", 15.5, 25.5, ["/m/09x0r"]),
    ("missingclip", 5.0, 15.0, ["/m/04rlf"]),
]


def _lists(folder):
    write_audioset_segments(folder / "balanced_train_segments.csv", SEGMENTS[:3])
    write_audioset_segments(folder / "eval_segments.csv", SEGMENTS[3:] + SEGMENTS[:1])  # one duplicate
    write_audioset_ontology(folder / "ontology.json")
    return folder


def test_audioset_selects_music_label(tmp_path):
    assert read_segments(_lists(tmp_path) / "balanced_train_segments.csv")["labels"][0] == "/m/09x0r,/m/04rlf"
    selected = select_music_segments(tmp_path)
    assert list(selected["ytid"]) == ["--PJHxphWEs", "-0RWZT-miFs", "Yabcdefghij", "missingclip"]
    assert "0123456789a" not in set(selected["ytid"])


def test_audioset_manifest_from_held_files(tmp_path):
    lists = _lists(tmp_path / "lists")
    audio = tmp_path / "audio"
    write_tiny_wav(audio / "--PJHxphWEs_30.wav")
    write_tiny_wav(audio / "sub" / "-0RWZT-miFs_420000.wav")  # start in milliseconds
    write_tiny_wav(audio / "YYabcdefghij_0.000_10.000.wav")  # Y prefix, start and end
    write_tiny_wav(audio / "0123456789a_15.5.wav")  # not music: ignored
    (audio / "notes.txt").write_text("not audio")
    match = match_music_files(audio, select_music_segments(lists), path_base=tmp_path)
    assert (match.selected, match.found, match.missing, match.ignored_files) == (4, 3, 1, 1)
    assert match.missing_examples == ["missingclip@5s"]
    df = match.manifest
    assert set(df["clip_id"]) == {"music.--PJHxphWEs_30000", "music.-0RWZT-miFs_420000", "music.Yabcdefghij_0"}
    assert set(df["machine_type"]) == {"music"} and set(df["machine_id"]) == {"id_00"}
    assert set(df["split"]) == {"train"} and set(df["label"]) == {"normal"}
    assert set(df["dataset"]) == {"audioset_music"}
    assert prepare_audioset_music(audio, lists_dir=lists).equals(
        match_music_files(audio, select_music_segments(lists)).manifest)


def test_audioset_unparseable_names_are_errors(tmp_path):
    lists = _lists(tmp_path / "lists")
    write_tiny_wav(tmp_path / "audio" / "song.wav")
    with pytest.raises(CorpusLayoutError, match=r"not named <ytid>_<start>.*song\.wav"):
        prepare_audioset_music(tmp_path / "audio", lists_dir=lists)
