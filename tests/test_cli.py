"""The `asd` command end to end against a local HTTP server, and its error handling."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asdlib.audio import write_wav
from asdlib.cli import main
from asdlib.manifest import read_manifest
from fake_corpora import (
    archive_list_for,
    dcase_ground_truth,
    make_dcase_archive,
    make_mimii_archive,
    make_noisex_files,
    write_archive_list,
    write_audioset_ontology,
    write_audioset_segments,
    write_dcase_ground_truth,
)

FAST = ["--retries", "2", "--timeout", "5"]


def _dcase_server_files(server, types=("fan",)):
    files = []
    for t in types:
        files.append(make_dcase_archive(server.directory, t, "dev", [0, 2], n_per_id=2))
        files.append(make_dcase_archive(server.directory, t, "eval_train", [1], n_per_id=2))
        files.append(make_dcase_archive(server.directory, t, "eval_test", [1], n_per_id=2))
    files.append(write_dcase_ground_truth(server.directory / "eval_data_list.csv",
                                          dcase_ground_truth(types, [1], n_per_id=2)))
    return files


def test_download_then_prepare_dcase2020(tmp_path, http_server, capsys):
    files = _dcase_server_files(http_server, ("fan", "ToyCar"))
    listing = write_archive_list(tmp_path / "list.json", archive_list_for("dcase2020", files, http_server.url))
    target = tmp_path / "dcase"
    argv = ["download", "dcase2020", str(target), "--types", "fan", "ToyCar", "--manifest", str(listing), *FAST]
    assert main(argv) == 0
    assert len(http_server.requests) == 7
    http_server.requests.clear()
    assert main(argv) == 0 and http_server.requests == []  # second run: no network

    out = tmp_path / "manifest.csv"
    assert main(["prepare", "dcase2020", str(target), str(out), "--path-base", str(tmp_path)]) == 0
    df = read_manifest(out)
    assert df.groupby("split").size().to_dict() == {"eval": 8, "test": 16, "train": 12}
    assert set(df.loc[df.split == "eval", "label"]) == {"normal", "anomaly"}
    assert df["path"].str.startswith("dcase/").all() and (df["num_samples"] == 160000).all()
    assert "dcase2020: 36 clips" in capsys.readouterr().out


def test_download_then_prepare_mimii(tmp_path, http_server):
    files = [make_mimii_archive(http_server.directory, snr, "fan", ids=(0,), n_normal=3, n_abnormal=1,
                                seconds=0.05) for snr in (-6, 6)]
    listing = write_archive_list(tmp_path / "list.json", archive_list_for("mimii", files, http_server.url))
    target = tmp_path / "mimii"
    assert main(["download", "mimii", str(target), "--types", "fan", "--snr", "-6", "6",
                 "--manifest", str(listing), "--remove-archives", *FAST]) == 0
    assert (target / "-6_dB" / "fan" / "id_00" / "abnormal" / "00000000.wav").is_file()
    assert not any(p.is_file() for p in (target / "archives").rglob("*"))
    out = tmp_path / "m.csv"
    assert main(["prepare", "mimii", str(target), str(out), "--snr", "-6", "--channel", "5"]) == 0
    df = read_manifest(out)
    assert len(df) == 4 and set(df["condition"]) == {"-6dB"} and (df["channel"] == 5).all()


def test_download_then_prepare_noisex92(tmp_path, http_server):
    files = make_noisex_files(http_server.directory, ["white", "babble"], seconds=0.2)
    listing = write_archive_list(tmp_path / "list.json", archive_list_for(
        "noisex92", files, http_server.url, extra={f.name: {"part": f.stem, "md5": None} for f in files}))
    target = tmp_path / "noisex"
    assert main(["download", "noisex92", str(target), "--names", "white", "babble",
                 "--manifest", str(listing), *FAST]) == 0
    assert (target / "noisex92.lock.json").is_file()
    table = tmp_path / "noise.csv"
    assert main(["prepare", "noisex92", str(target), str(table)]) == 0
    assert (target / "16k" / "white.wav").is_file() and "babble" in table.read_text()


def test_download_then_prepare_audioset_music(tmp_path, http_server):
    files = [write_audioset_ontology(http_server.directory / "ontology.json")]
    for name in ("balanced_train", "unbalanced_train", "eval"):
        files.append(write_audioset_segments(http_server.directory / f"{name}_segments.csv",
                                             [(f"{name[:4]}ytid123"[:11], 10.0, 20.0, ["/m/04rlf"])]))
    listing = write_archive_list(tmp_path / "list.json", archive_list_for(
        "audioset_music", files, http_server.url,
        extra={f.name: {"part": f.name.replace("_segments.csv", "").replace(".json", "")} for f in files}))
    lists = tmp_path / "lists"
    assert main(["download", "audioset_music", str(lists), "--manifest", str(listing), *FAST]) == 0
    from fake_corpora import write_tiny_wav
    write_tiny_wav(tmp_path / "audio" / "evalytid123_10.wav")
    out = tmp_path / "music.csv"
    assert main(["prepare", "audioset_music", str(tmp_path / "audio"), str(out), "--lists", str(lists)]) == 0
    assert read_manifest(out)["clip_id"].tolist() == ["music.evalytid123_10000"]


def test_mirror_rewrites_packaged_urls_and_checksum_failure_exits_1(tmp_path, http_server, capsys):
    make_dcase_archive(http_server.directory, "fan", "dev", [0], n_per_id=1)  # not the real bytes
    code = main(["download", "dcase2020", str(tmp_path / "t"), "--types", "fan", "--parts", "dev",
                 "--mirror", http_server.url + "/", *FAST])
    err = capsys.readouterr().err
    assert code == 1 and http_server.paths_requested() == ["/dev_data_fan.zip"]
    assert "expected 1354774772" in err and "Traceback" not in err
    assert not (tmp_path / "t" / "archives" / "dev_data_fan.zip").exists()


def test_corrupt_archive_exits_1_naming_it(tmp_path, http_server, capsys):
    """An archive that downloads fine but cannot be extracted is a failed extraction (1), not bad input (2)."""
    import zipfile

    archive = http_server.directory / "dev_data_fan.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fan/train/normal_id_00_00000000.wav", b"hello world " * 50_000)
    raw = bytearray(archive.read_bytes())
    raw[80:100] = bytes(b ^ 0xFF for b in raw[80:100])  # damage the deflate stream
    archive.write_bytes(bytes(raw))
    listing = write_archive_list(tmp_path / "list.json", archive_list_for("dcase2020", [archive], http_server.url))
    target = tmp_path / "t"
    code = main(["download", "dcase2020", str(target), "--types", "fan", "--parts", "dev",
                 "--manifest", str(listing), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and f"{target / 'archives' / 'dev_data_fan.zip'}: corrupt archive" in err
    assert "Traceback" not in err and not (target / ".extracted").exists()


def test_dry_run_lists_sizes_without_network(capsys, tmp_path):
    assert main(["download", "dcase2020", str(tmp_path), "--types", "fan", "--parts", "dev", "eval_train",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "https://zenodo.org/record/3678171/files/dev_data_fan.zip" in out
    assert "2 files, 2.05 GB known; about 2 min at 20 MB/s" in out
    assert main(["download", "mimii", str(tmp_path), "--types", "fan", "--snr", "6", "--dry-run"]) == 0
    assert "1 files, of unknown size (the archive list gives none)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["prepare", "dcase2020", "{tmp}/absent", "{tmp}/m.csv"], "corpus folder not found"),
    (["prepare", "folder", "{tmp}", "{tmp}/m.csv"], "no machine type folders"),
    (["download", "dcase2020", "{tmp}/t", "--types", "drill", "--dry-run"], "unknown machine type 'drill'"),
    (["download", "dcase2020", "{tmp}/t", "--snr", "6"], "option --snr does not apply"),
    (["download", "noisex92", "{tmp}/t", "--remove-archives"], "option --remove-archives does not apply"),
    (["prepare", "audioset_music", "{tmp}", "{tmp}/m.csv"], "needs --lists"),
    (["download", "mimii", "{tmp}/t", "--manifest", "{tmp}/none.json"], "archive list not found"),
    (["download", "noisex92", "{tmp}/t", "--timeout", "0"], "download --timeout 0: give a finite number of seconds"),
    (["download", "noisex92", "{tmp}/t", "--timeout", "nan", "--dry-run"], "download --timeout nan: give a"),
    (["download", "noisex92", "{tmp}/t", "--retries", "-1"], "download --retries -1: give 0 or more"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("asd: error: ")


def test_layout_error_lists_unexpected_files(tmp_path, capsys):
    (tmp_path / "c" / "fan" / "train").mkdir(parents=True)
    (tmp_path / "c" / "fan" / "test").mkdir()
    (tmp_path / "c" / "fan" / "train" / "clip.mp3").write_bytes(b"x")
    assert main(["prepare", "folder", str(tmp_path / "c"), str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "clip.mp3" in err and "without train clips" in err and not (tmp_path / "m.csv").exists()


def _clips(root: Path, machine_type: str) -> None:
    """One training and one test clip of ``machine_type`` under ``root``."""
    for name in ("train/normal_id_00_00000000.wav", "test/anomaly_id_00_00000000.wav"):
        (root / machine_type / name).parent.mkdir(parents=True, exist_ok=True)
        write_wav(root / machine_type / name, np.zeros(160))


def test_prepare_folder_reports_what_a_scan_would_skip(tmp_path, capsys):
    flat, manifest = tmp_path / "flat", tmp_path / "m.csv"
    for machine_type in ("pump", "valve"):
        _clips(flat, machine_type)
    for split in ("train", "test"):
        (flat / "valve" / split).rename(flat / "valve" / split.title())
    (flat / "notes.txt").write_text("hi")
    (flat / "eval_data_list.csv").write_text("")  # the ground truth may sit there
    assert main(["prepare", "folder", str(flat), str(manifest)]) == 2
    err = capsys.readouterr().err
    assert f"folders without train/ or test/ (names are case-sensitive) (1): {flat / 'valve'}" in err
    assert err.endswith(f"unexpected entries (1): {flat / 'notes.txt'}\n") and not manifest.exists()

    sectioned = tmp_path / "sectioned"
    _clips(sectioned / "dev_data", "pump")
    _clips(sectioned, "valve")
    (sectioned / "archives").mkdir()  # a download's other entries
    (sectioned / "checksums.lock.json").write_text("{}")
    assert main(["prepare", "folder", str(sectioned), str(manifest)]) == 2
    assert (f"machine type folders outside dev_data/ and eval_data/ (1): {sectioned / 'valve'}"
            in capsys.readouterr().err)
    shutil.rmtree(sectioned / "valve")
    (sectioned / "dev_data" / ".extract-dev_data_fan.zip-x1" / "fan" / "test").mkdir(parents=True)  # a kill
    assert main(["prepare", "dcase2020", str(sectioned), str(manifest)]) == 2
    assert (f"interrupted extractions (run the download again) (1): "
            f"{sectioned / 'dev_data' / '.extract-dev_data_fan.zip-x1'}" in capsys.readouterr().err)
    shutil.rmtree(sectioned / "dev_data" / ".extract-dev_data_fan.zip-x1")
    assert main(["prepare", "folder", str(sectioned), str(manifest)]) == 0
    (tmp_path / "out").mkdir()
    assert main(["prepare", "folder", str(sectioned), str(tmp_path / "out")]) == 2
    assert f"prepare: {tmp_path / 'out'} is a folder" in capsys.readouterr().err


def test_argparse_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["download", "librispeech", "/tmp/x"])
    assert exc.value.code == 2


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "asdlib.cli", "download", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--mirror BASE_URL" in result.stdout


def test_interrupt_says_what_is_left(monkeypatch, tmp_path, capsys):
    """Ctrl-C exits 130 with a line fitting the command: downloads resume, scoring starts over."""
    import asdlib.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_score", interrupted)
    monkeypatch.setattr(cli, "_download", interrupted)
    assert cli.main(["score", str(tmp_path), "--manifest", "m.csv", "--out", "x.csv"]) == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err
    assert cli.main(["download", "noisex92", str(tmp_path)]) == 130
    assert "interrupted; run the same command again to resume" in capsys.readouterr().err
