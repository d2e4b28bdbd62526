"""What a corpus must hold beyond its layout (asdlib.corpus_checks), and where it is checked:
the corpus stage's content identity, the manifest stage, and `asd prepare`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fake_corpora import make_dcase_tree, write_tiny_wav

from asdlib.cli import main as asd
from asdlib.corpora.dcase_layout import scan_dcase_layout
from asdlib.corpus_checks import CorpusError, check_corpus, content_identity


def corpus(root: Path) -> Path:
    """A flat folder corpus: fan id_00 and id_02, two training, normal and anomalous test clips
    each, 0.1 s (1600 samples) mono at 16 kHz."""
    make_dcase_tree(root, "fan", "dev", [0, 2], n_per_id=2)
    return root


def manifest(root: Path) -> pd.DataFrame:
    return scan_dcase_layout(root, dataset="folder")


def test_a_corpus_the_pipeline_takes_has_no_problems(tmp_path):
    problems = check_corpus(manifest(corpus(tmp_path)))
    assert problems.unusable == [] and problems.pipeline == []


def test_files_that_are_not_audio_are_named_with_the_reason(tmp_path):
    root = corpus(tmp_path)
    (root / "fan" / "test" / "anomaly_id_00_00000000.wav").write_bytes(b"RIFF garbage")
    (root / "fan" / "train" / "normal_id_02_00000001.wav").write_bytes(b"")
    problems = check_corpus(manifest(root))
    assert problems.unusable == [
        "files that are not readable audio (replace or remove them) (2): "
        f"{root}/fan/test/anomaly_id_00_00000000.wav (Format not recognised.), "
        f"{root}/fan/train/normal_id_02_00000001.wav (Format not recognised.)"]
    with pytest.raises(CorpusError, match=f"^{root}: corpus problems: files that are not readable audio"):
        problems.raise_if_any(str(root), pipeline=False)


def test_a_multichannel_file_without_the_channel_is_unusable_a_mono_one_is_read_as_it_is(tmp_path):
    root = corpus(tmp_path)
    write_tiny_wav(root / "fan" / "train" / "normal_id_00_00000000.wav", channels=2)
    df = manifest(root).assign(channel=1)
    assert check_corpus(df).unusable == []
    problems = check_corpus(df.assign(channel=2))
    assert problems.unusable == [
        "files without the channel asked for (corpus.channel in params.yaml, --channel for asd) (1): "
        f"{root}/fan/train/normal_id_00_00000000.wav (channel 2, has 2)"]


def test_another_sample_rate_is_refused_unless_resampling_and_lengths_compare_at_16k(tmp_path):
    root = corpus(tmp_path)
    write_tiny_wav(root / "fan" / "train" / "normal_id_00_00000000.wav", sample_rate=44100)  # 0.1 s
    df = manifest(root)
    assert check_corpus(df).pipeline == [
        "files at a sample rate other than 16000 Hz (to convert them: corpus.resample in params.yaml, "
        f"--resample for asd) (1): {root}/fan/train/normal_id_00_00000000.wav (44100 Hz)"]
    assert check_corpus(df, resample=True).pipeline == []  # 4410 samples at 44.1 kHz are 1600 at 16 kHz


def test_clips_of_several_lengths_are_named_unless_the_manifest_fixes_one(tmp_path):
    root = corpus(tmp_path)
    write_tiny_wav(root / "fan" / "test" / "normal_id_02_00000001.wav", seconds=0.075)
    df = manifest(root)
    assert check_corpus(df).pipeline == [
        "clips of another length than the 1600 samples (0.1 s) of the other 11 (the SNR estimator and "
        "STgram-MFN need one length: corpus.clip_seconds in params.yaml crops or zero-pads every clip "
        f"to it) (1): {root}/fan/test/normal_id_02_00000001.wav (1200 samples)"]
    assert check_corpus(df.assign(num_samples=1600)).pipeline == []


def test_a_machine_id_without_training_clips_is_named_with_one_of_its_files(tmp_path):
    root = corpus(tmp_path)
    make_dcase_tree(root, "fan", "eval_test", [9], n_per_id=1)  # test-only (unlabelled) ID
    for name in ("normal_id_02_00000000.wav", "normal_id_02_00000001.wav"):
        (root / "fan" / "train" / name).unlink()
    problems = check_corpus(manifest(root))
    assert problems.unusable == [] and len(problems.pipeline) == 1
    assert problems.pipeline[0].startswith("machine IDs with test or eval clips but no training clips (")
    assert problems.pipeline[0].endswith(f"(2): fan id_02 ({root}/fan/test/anomaly_id_02_00000000.wav), "
                                         f"fan id_09 ({root}/fan/test/id_09_00000000.wav)")


def test_a_recorded_level_needs_training_clips_of_its_own(tmp_path):
    df = manifest(corpus(tmp_path))
    levels = pd.concat([df.assign(condition="-6dB"), df.assign(condition="6dB")], ignore_index=True)
    levels = levels[~((levels["condition"] == "6dB") & (levels["machine_id"] == "id_00")
                      & (levels["split"] == "train"))]
    (line,) = check_corpus(levels).pipeline
    assert line.endswith(f"(1): fan id_00 6dB ({tmp_path}/fan/test/anomaly_id_00_00000000.wav)")


def test_a_machine_id_with_one_label_in_a_labelled_split_is_named(tmp_path):
    root = corpus(tmp_path)
    for name in ("anomaly_id_02_00000000.wav", "anomaly_id_02_00000001.wav"):
        (root / "fan" / "test" / name).unlink()
    make_dcase_tree(root, "fan", "eval_test", [0], n_per_id=1)  # unlabelled eval clips: not checked
    df = manifest(root)
    assert check_corpus(df).pipeline == [
        "machine IDs whose clips of a split are all normal or all anomalous (their AUC is undefined: add "
        "clips of the other label or remove the ID's clips of that split) (1): "
        f"fan id_02 test: normal only ({root}/fan/test/normal_id_02_00000000.wav)"]
    labelled = df.assign(label=df["label"].where(df["split"] != "eval", "anomaly"))
    assert "fan id_00 eval: anomaly only" in check_corpus(labelled).pipeline[0]


def test_relative_paths_are_read_from_the_path_base(tmp_path, monkeypatch):
    root = corpus(tmp_path / "c")
    df = scan_dcase_layout(root, dataset="folder", path_base=tmp_path)
    monkeypatch.chdir(root)  # elsewhere: the relative paths only resolve from the base
    assert check_corpus(df, path_base=tmp_path).unusable == []
    assert "(12): c/fan/test/" in check_corpus(df).unusable[0]


def test_content_identity_follows_the_files_not_their_root(tmp_path):
    root = corpus(tmp_path / "a")
    files = sorted(root.rglob("*.wav"))
    identity = content_identity(root, files, workers=1)
    assert identity["files"] == 12 and len(identity["sha256"]) == 64
    assert content_identity(root, files[::-1], workers=3) == identity
    copy = Path(shutil.copytree(root, tmp_path / "b"))
    assert content_identity(copy, sorted(copy.rglob("*.wav")), workers=2) == identity
    write_tiny_wav(files[0], seed=1)  # same length, other samples
    changed = content_identity(root, files, workers=1)
    assert changed["files"] == 12 and changed["sha256"] != identity["sha256"]
    moved = copy / "fan" / "train" / "normal_id_00_00000009.wav"
    (copy / "fan" / "train" / "normal_id_00_00000000.wav").rename(moved)
    renamed = sorted(copy.rglob("*.wav"))
    assert content_identity(copy, renamed, workers=1)["sha256"] != identity["sha256"]


# --- the stages ------------------------------------------------------------------------------

@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A working folder whose params.yaml reads the folder corpus ``corpus/`` inside it."""
    from stages import common

    monkeypatch.setattr(common, "configure_logging", lambda: None)  # keep pytest's logging
    monkeypatch.setattr(common, "keep_freed_memory", lambda: False)  # and this process's environment
    monkeypatch.chdir(tmp_path)  # stages read params.yaml and write data/ where they run
    corpus(tmp_path / "corpus")
    write_params(tmp_path, {})
    return tmp_path


def write_params(folder: Path, corpus_settings: dict) -> None:
    params = {"corpus": {"source": "folder", "folder": "corpus", "machine_types": ["fan"], **corpus_settings},
              "parallel": {"n_jobs": 2}}
    (folder / "params.yaml").write_text(json.dumps(params))  # JSON is YAML


def run_stage(name: str) -> None:
    import importlib

    from stages import common

    common.run(importlib.import_module(f"stages.{name}").main)


def test_corpus_json_of_a_folder_is_relative_and_changes_with_the_audio(workspace):
    run_stage("corpus")
    first = (workspace / "data" / "corpus" / "corpus.json").read_bytes()
    info = json.loads(first)
    assert info["root"] == "corpus" and info["source"] == "folder" and info["content"]["files"] == 12
    run_stage("corpus")
    assert (workspace / "data" / "corpus" / "corpus.json").read_bytes() == first  # unchanged files
    write_tiny_wav(workspace / "corpus" / "fan" / "test" / "anomaly_id_02_00000001.wav", seed=5)
    run_stage("corpus")
    changed = json.loads((workspace / "data" / "corpus" / "corpus.json").read_bytes())
    assert changed["content"]["files"] == 12 and changed["content"]["sha256"] != info["content"]["sha256"]


def test_a_corpus_linked_into_two_checkouts_gives_them_the_same_corpus_json_and_manifest(tmp_path, monkeypatch):
    """docs/sharing.md: colleagues whose copies lie at other paths link them in at one
    relative path; the link is not followed, so nothing downstream differs."""
    from stages import common

    monkeypatch.setattr(common, "configure_logging", lambda: None)
    monkeypatch.setattr(common, "keep_freed_memory", lambda: False)
    outputs = []
    for name in ("alice", "bob"):
        copy = corpus(tmp_path / f"{name}_disk" / "dcase")
        checkout = tmp_path / name / "checkout"
        (checkout / "downloads").mkdir(parents=True)
        (checkout / "downloads" / "dcase").symlink_to(copy, target_is_directory=True)
        monkeypatch.chdir(checkout)
        write_params(checkout, {"folder": "downloads/dcase"})
        run_stage("corpus")
        run_stage("manifest")
        outputs.append([(checkout / "data" / f).read_bytes() for f in ("corpus/corpus.json", "manifest.csv")])
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0][0])["root"] == "downloads/dcase"


def test_manifest_stage_refuses_clips_of_several_lengths_until_clip_seconds_is_set(workspace, capsys):
    write_tiny_wav(workspace / "corpus" / "fan" / "test" / "normal_id_02_00000001.wav", seconds=0.075)
    run_stage("corpus")
    with pytest.raises(SystemExit) as stop:
        run_stage("manifest")
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: corpus: corpus problems: clips of another length than the 1600 samples")
    assert "corpus.clip_seconds" in err and "corpus/fan/test/normal_id_02_00000001.wav (1200 samples)" in err
    assert err.count("\n") == 1 and not (workspace / "data" / "manifest.csv").exists()
    write_params(workspace, {"clip_seconds": 0.1})
    run_stage("manifest")
    assert set(pd.read_csv(workspace / "data" / "manifest.csv")["num_samples"]) == {1600}


# --- asd prepare -----------------------------------------------------------------------------

def test_prepare_refuses_files_that_are_not_audio(tmp_path, capsys):
    root = corpus(tmp_path / "c")
    (root / "fan" / "train" / "normal_id_00_00000001.wav").write_bytes(b"RIFF garbage")
    assert asd(["prepare", "folder", str(root), str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert err == (f"asd: error: {root}: corpus problems: files that are not readable audio (replace or remove "
                   f"them) (1): {root}/fan/train/normal_id_00_00000001.wav (Format not recognised.)\n")
    assert not (tmp_path / "m.csv").exists()


def test_prepare_warns_of_what_only_the_pipeline_refuses_and_writes_the_manifest(tmp_path, capsys):
    root = corpus(tmp_path / "c")
    write_tiny_wav(root / "fan" / "train" / "normal_id_00_00000001.wav", sample_rate=44100, seconds=0.2)
    for name in ("anomaly_id_02_00000000.wav", "anomaly_id_02_00000001.wav"):
        (root / "fan" / "test" / name).unlink()
    make_dcase_tree(root, "fan", "eval_test", [9], n_per_id=1)
    assert asd(["prepare", "folder", str(root), str(tmp_path / "m.csv"), "--path-base", str(tmp_path)]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert [w.split(":", 2)[2].split(" (")[0].strip() for w in warnings] == [
        "the pipeline would refuse these: files at a sample rate other than 16000 Hz",
        "the pipeline would refuse these: clips of another length than the 1600 samples",
        "the pipeline would refuse these: machine IDs with test or eval clips but no training clips",
        "the pipeline would refuse these: machine IDs whose clips of a split are all normal or all anomalous"]
    assert "c/fan/train/normal_id_00_00000001.wav (44100 Hz)" in warnings[0]
    assert "c/fan/train/normal_id_00_00000001.wav (3200 samples)" in warnings[1]
    assert "fan id_09 (c/fan/test/id_09_00000000.wav)" in warnings[2]
    assert "fan id_02 test: normal only (c/fan/test/normal_id_02_00000000.wav)" in warnings[3]
    assert len(pd.read_csv(tmp_path / "m.csv")) == 12
