"""Archive list, safe extraction, and fetch-then-extract with markers."""

from __future__ import annotations

import io
import json
import random
import re
import stat
import tarfile
import zipfile
from dataclasses import replace

import pytest

from asdlib.corpora.archives import (
    ArchiveEntry,
    ArchiveError,
    ExtractionError,
    corpus_archives,
    fetch_archive,
    load_archive_list,
    safe_extract,
    with_mirror,
)
from asdlib.corpora.dcase2020 import dcase2020_entries
from asdlib.corpora.download import ChecksumError, DownloadError, DownloadSettings, completion_marker, read_lock
from asdlib.corpora.mimii import download_mimii, mimii_entries
from fake_corpora import archive_list_for, make_dcase_archive, make_mimii_archive, write_archive_list

FAST = DownloadSettings(retries=2, backoff_s=0.0, timeout_s=5.0, progress=False)
RECORDS = {"dev": "3678171", "eval_train": "3727685", "eval_test": "3841772", "ground_truth": "3951620"}


# --- the packaged archive list ----------------------------------------------------------

def test_packaged_list_has_all_dcase_and_mimii_archives():
    corpora = load_archive_list()
    dcase = [e for e in corpora["dcase2020"] if e.part != "ground_truth"]
    assert len(dcase) == 18 and all(re.fullmatch(r"[0-9a-f]{32}", e.md5) for e in dcase)
    for e in corpora["dcase2020"]:
        assert e.url == f"https://zenodo.org/record/{RECORDS[e.part]}/files/{e.name}"
    types = {"fan", "pump", "slider", "valve", "ToyCar", "ToyConveyor"}
    for part, prefix in (("dev", "dev_data"), ("eval_train", "eval_data_train"), ("eval_test", "eval_data_test")):
        assert {e.name for e in dcase if e.part == part} == {f"{prefix}_{t}.zip" for t in types}
    assert sum(e.size is not None for e in dcase) == 12  # evaluation test sizes are not published
    by_name = {e.name: e for e in dcase}
    assert by_name["dev_data_fan.zip"].md5 == "649bdfc06263ae7a838963f43b6641e6"
    assert by_name["dev_data_fan.zip"].size == 1354774772
    assert by_name["eval_data_test_ToyConveyor.zip"].md5 == "ccfcc9847c7d3404d7ee9d6d9e0b2ba2"
    mimii = corpora["mimii"]
    types = ("fan", "pump", "slider", "valve")
    assert {e.name for e in mimii} == {f"{s}_dB_{t}.zip" for s in (-6, 0, 6) for t in types}
    assert all(e.url == f"https://zenodo.org/record/3384388/files/{e.name}" for e in mimii)
    assert {e.name: e.md5 for e in mimii}["-6_dB_fan.zip"] == "f02ae808a58d84b6815b7ec38ff30879"
    assert len(corpora["noisex92"]) == 15


def test_mirror_replaces_everything_before_the_file_name():
    entry = corpus_archives("dcase2020", mirror="http://mirror.example/dcase/")[0]
    assert entry.url == f"http://mirror.example/dcase/{entry.name}"
    onto = ArchiveEntry(name="ontology.json", url="https://raw.example/a/b/ontology.json")
    assert with_mirror(onto, "file:///data").url == "file:///data/ontology.json"


@pytest.mark.parametrize("bad, message", [
    ({"name": "a.zip", "url": "u", "md5": "zz"}, "md5 must be 32 hex digits"),
    ({"name": "a.zip", "url": "u", "colour": "red"}, "unknown keys"),
    ({"name": "a/b.zip", "url": "u"}, "plain file name"),
    ({"name": "a.zip", "url": "u", "size": -3}, "size must be a positive integer"),
    ({"name": "a.zip", "url": "u", "extract_to": "../up"}, "extract_to must be a relative folder"),
])
def test_bad_archive_list_entries(tmp_path, bad, message):
    path = tmp_path / "list.json"
    path.write_text(json.dumps({"x": [bad]}))
    with pytest.raises(ArchiveError, match=message):
        load_archive_list(path)


def test_a_list_lacking_a_chosen_archive_is_refused_before_any_download(tmp_path):
    def entry(name, machine_type, part):
        return {"name": name, "url": f"http://x.example/{name}", "machine_type": machine_type, "part": part}

    path = tmp_path / "list.json"
    path.write_text(json.dumps({"dcase2020": [entry("dev_data_fan.zip", "fan", "dev")],
                                "mimii": [entry("0_dB_fan.zip", "fan", "0dB")]}))
    assert [e.name for e in dcase2020_entries(machine_types=["fan"], parts=["dev"], manifest=path)] == [
        "dev_data_fan.zip"]
    with pytest.raises(ArchiveError, match=r"list.json: no dcase2020 archive listed for dev/pump, eval_train/fan"):
        dcase2020_entries(machine_types=["fan", "pump"], parts=["dev", "eval_train"], manifest=path)
    assert [e.name for e in mimii_entries(machine_types=["fan"], snr_levels=["0dB"], manifest=path)] == [
        "0_dB_fan.zip"]
    with pytest.raises(ArchiveError, match="list.json: no mimii archive listed for 6dB/fan$"):
        mimii_entries(machine_types=["fan"], snr_levels=["0dB", "6dB"], manifest=path)


def test_unknown_corpus_and_missing_list(tmp_path):
    with pytest.raises(ArchiveError, match="no corpus 'nope'"):
        corpus_archives("nope")
    with pytest.raises(ArchiveError, match="archive list not found"):
        load_archive_list(tmp_path / "absent.json")


# --- safe extraction --------------------------------------------------------------------

def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def _files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_extracts_and_merges_into_existing_tree(tmp_path):
    dest = tmp_path / "eval_data"
    train = make_dcase_archive(tmp_path / "a", "fan", "eval_train", [1], n_per_id=1)
    test = make_dcase_archive(tmp_path / "a", "fan", "eval_test", [1], n_per_id=1)
    assert safe_extract(train, dest) == ["fan/train"]
    assert safe_extract(test, dest) == ["fan/test"]
    assert _files_under(dest) == ["fan/test/id_01_00000000.wav", "fan/test/id_01_00000001.wav",
                                  "fan/train/normal_id_01_00000000.wav"]


@pytest.mark.parametrize("member", ["../evil.txt", "fan/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt",
                                    "fan\\..\\..\\evil.txt"])
def test_zip_path_traversal_is_refused_and_nothing_written(tmp_path, member):
    archive = _zip(tmp_path / "bad.zip", [("fan/train/ok.wav", b"x", 0o100644), (member, b"evil", 0o100644)])
    dest = tmp_path / "out" / "dest"
    with pytest.raises(ArchiveError, match="refusing"):
        safe_extract(archive, dest)
    assert not dest.exists() or _files_under(dest) == []
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_symlink_is_refused(tmp_path):
    archive = _zip(tmp_path / "link.zip", [("fan/ok.wav", b"x", 0o100644),
                                           ("fan/link", b"/etc/passwd", stat.S_IFLNK | 0o777)])
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match="symbolic link member 'fan/link'"):
        safe_extract(archive, dest)
    assert not dest.exists() or _files_under(dest) == []


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_are_refused(tmp_path, kind):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("fan/ok.wav")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("fan/escape")
        link.type = kind
        link.linkname = "../../outside"
        tf.addfile(link)
    with pytest.raises(ArchiveError, match="refusing link member 'fan/escape'"):
        safe_extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists() or _files_under(tmp_path / "dest") == []


def test_tar_extraction_and_traversal(tmp_path):
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        info = tarfile.TarInfo("white.wav")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    assert safe_extract(good, tmp_path / "d") == ["."]
    assert (tmp_path / "d" / "white.wav").read_bytes() == b"abc"
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        info = tarfile.TarInfo("../up.wav")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError, match=r"\.\."):
        safe_extract(bad, tmp_path / "e")
    assert not (tmp_path / "up.wav").exists()


def test_corrupt_member_leaves_no_partial_tree(tmp_path):
    archive = make_dcase_archive(tmp_path, "fan", "dev", [0], n_per_id=1)
    raw = bytearray(archive.read_bytes())
    raw[200] ^= 0xFF  # inside the first member's data: CRC mismatch on read
    archive.write_bytes(bytes(raw))
    dest = tmp_path / "dev_data"
    with pytest.raises(ArchiveError, match="corrupt"):
        safe_extract(archive, dest)
    assert _files_under(dest) == [] and list(dest.iterdir()) == []


def _tar(path, mode: str, n: int = 30) -> bytes:
    """A tar of ``n`` random-content members (so damage cannot fall in zero padding); its bytes."""
    rng = random.Random(0)
    with tarfile.open(path, mode) as tf:
        for k in range(n):
            data = rng.randbytes(3000)
            info = tarfile.TarInfo(f"fan/train/normal_id_00_{k:08d}.wav")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path.read_bytes()


@pytest.mark.parametrize("name, mode, damage, message", [
    ("cut.tar", "w", lambda raw: raw[:raw.index(b"fan/train/normal_id_00_00000005")],  # at a member's start
     "no end-of-archive marker"),
    ("header.tar", "w", lambda raw: raw.replace(b"normal_id_00_00000005", b"\xff" * 21), "after the last readable"),
    ("cut.tar.gz", "w:gz", lambda raw: raw[:len(raw) // 2], "Compressed file ended"),
    ("flipped.tar.gz", "w:gz", lambda raw: raw[:len(raw) // 2] + bytes(b ^ 0xA5 for b in raw[len(raw) // 2:][:64])
     + raw[len(raw) // 2 + 64:], "CRC check failed"),
])
def test_damaged_tar_is_refused_not_extracted_in_part(tmp_path, name, mode, damage, message):
    archive = tmp_path / name
    archive.write_bytes(damage(_tar(archive, mode)))
    with pytest.raises(ExtractionError, match=rf"{re.escape(str(archive))}: corrupt tar archive \(.*{message}"):
        safe_extract(archive, tmp_path / "dev_data")
    assert _files_under(tmp_path / "dev_data") == []


def test_damaged_compressed_data_names_the_archive(tmp_path):
    archive = tmp_path / "deflated.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fan/train/normal_id_00_00000000.wav", b"hello world " * 50_000)
    raw = bytearray(archive.read_bytes())
    start = 30 + len("fan/train/normal_id_00_00000000.wav") + 5  # inside the deflate stream
    raw[start:start + 20] = bytes(b ^ 0xFF for b in raw[start:start + 20])
    archive.write_bytes(bytes(raw))
    dest = tmp_path / "dev_data"
    with pytest.raises(ExtractionError, match=rf"{re.escape(str(archive))}: corrupt archive \(Error -3"):
        safe_extract(archive, dest)
    assert _files_under(dest) == []


def test_unsupported_compression_method_names_the_archive(tmp_path):
    archive = _zip(tmp_path / "method99.zip", [("fan/train/a.wav", b"x", 0o100644)])
    raw = bytearray(archive.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 10:central + 12] = (99).to_bytes(2, "little")  # compression method 99 (AES): no decoder
    archive.write_bytes(bytes(raw))
    with pytest.raises(ExtractionError, match=rf"{re.escape(str(archive))}: cannot extract: .*compression method"):
        safe_extract(archive, tmp_path / "dev_data")
    assert _files_under(tmp_path / "dev_data") == []


def test_not_an_archive(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"plain text")
    with pytest.raises(ArchiveError, match="not a zip or tar archive"):
        safe_extract(tmp_path / "x.zip", tmp_path / "d")


# --- fetch_archive: download + extract + markers ----------------------------------------

def _served_entry(http_server, archive):
    listing = archive_list_for("dcase2020", [archive], http_server.url)
    return ArchiveEntry(**listing["dcase2020"][0])


def test_fetch_extracts_and_second_run_is_a_no_op(tmp_path, http_server):
    archive = make_dcase_archive(http_server.directory, "fan", "dev", [0, 2], n_per_id=1)
    entry = _served_entry(http_server, archive)
    target = tmp_path / "corpus"
    assert fetch_archive(entry, target, settings=FAST) == target / "dev_data"
    assert len(_files_under(target / "dev_data" / "fan")) == 6
    assert (target / "archives" / archive.name).is_file() and (target / ".extracted" / f"{archive.name}.json").is_file()
    http_server.requests.clear()
    fetch_archive(entry, target, settings=FAST)
    assert http_server.requests == []


def test_fetch_without_keeping_archive_and_re_extract_when_data_vanished(tmp_path, http_server):
    archive = make_dcase_archive(http_server.directory, "pump", "dev", [0], n_per_id=1)
    entry = _served_entry(http_server, archive)
    target = tmp_path / "corpus"
    fetch_archive(entry, target, settings=FAST, keep_archive=False)
    assert not (target / "archives" / archive.name).exists()
    http_server.requests.clear()
    fetch_archive(entry, target, settings=FAST, keep_archive=False)
    assert http_server.requests == []  # extraction marker: nothing to do
    import shutil
    shutil.rmtree(target / "dev_data" / "pump" / "test")
    fetch_archive(entry, target, settings=FAST)
    assert len(http_server.requests) == 1 and (target / "dev_data" / "pump" / "test").is_dir()


def test_remove_archives_deletes_an_archive_extracted_by_an_earlier_run(tmp_path, http_server):
    archive = make_dcase_archive(http_server.directory, "fan", "dev", [0], n_per_id=1)
    entry = _served_entry(http_server, archive)
    target = tmp_path / "corpus"
    fetch_archive(entry, target, settings=FAST)
    kept = target / "archives" / archive.name
    assert kept.is_file() and completion_marker(kept).is_file()
    http_server.requests.clear()
    fetch_archive(entry, target, settings=FAST, keep_archive=False)
    assert not kept.exists() and not completion_marker(kept).exists()
    assert http_server.requests == [] and len(_files_under(target / "dev_data")) == 3


def _two_versions(http_server):
    """The same archive name in two versions (v2: fewer files), served under /v1 and /v2."""
    v1 = make_dcase_archive(http_server.directory / "v1", "fan", "dev", [0, 2], n_per_id=2)
    v2 = make_dcase_archive(http_server.directory / "v2", "fan", "dev", [0], n_per_id=1)
    return [ArchiveEntry(**archive_list_for("dcase2020", [path], f"{http_server.url}/{version}")["dcase2020"][0])
            for version, path in (("v1", v1), ("v2", v2))]


def test_changed_archive_list_replaces_the_stale_extraction(tmp_path, http_server):
    old, new = _two_versions(http_server)
    pump = make_dcase_archive(http_server.directory, "pump", "dev", [0], n_per_id=1)
    target = tmp_path / "corpus"
    fetch_archive(old, target, settings=FAST, keep_archive=False)
    fetch_archive(_served_entry(http_server, pump), target, settings=FAST)
    assert len(_files_under(target / "dev_data" / "fan")) == 12
    fetch_archive(new, target, settings=FAST, keep_archive=False)
    assert _files_under(target / "dev_data" / "fan") == [
        "test/anomaly_id_00_00000000.wav", "test/normal_id_00_00000000.wav", "train/normal_id_00_00000000.wav"]
    assert len(_files_under(target / "dev_data" / "pump")) == 3  # another archive's data is kept
    assert json.loads((target / ".extracted" / f"{new.name}.json").read_text())["md5"] == new.md5
    http_server.requests.clear()
    fetch_archive(new, target, settings=FAST)
    assert http_server.requests == []


def test_a_folder_shared_with_another_extraction_is_not_removed(tmp_path, http_server):
    old, new = _two_versions(http_server)
    extra = _zip(http_server.directory / "extra_fan.zip", [("fan/train/extra.wav", b"x", 0o100644)])
    extra_entry = replace(_served_entry(http_server, extra), extract_to="dev_data")
    target = tmp_path / "corpus"
    fetch_archive(old, target, settings=FAST)
    fetch_archive(extra_entry, target, settings=FAST)
    fetch_archive(new, target, settings=FAST)
    assert (target / "dev_data" / "fan" / "train" / "extra.wav").is_file()
    assert not (target / "dev_data" / "fan" / "test" / "normal_id_02_00000000.wav").exists()


def test_marker_without_checksums_is_verified_against_the_archive(tmp_path, http_server):
    archive = make_dcase_archive(http_server.directory, "fan", "dev", [0], n_per_id=1)
    entry = _served_entry(http_server, archive)
    target = tmp_path / "corpus"
    marker = target / ".extracted" / f"{archive.name}.json"
    fetch_archive(entry, target, settings=FAST)
    old_style = {k: v for k, v in json.loads(marker.read_text()).items() if k in ("archive", "size", "members",
                                                                                  "folders")}
    marker.write_text(json.dumps(old_style))
    own_file = target / "dev_data" / "fan" / "train" / "mine.txt"  # gone if the folder were re-extracted
    own_file.write_text("x")
    http_server.requests.clear()
    fetch_archive(entry, target, settings=FAST)  # the verified archive is the one extracted
    assert http_server.requests == [] and own_file.exists()
    assert json.loads(marker.read_text())["md5"] == entry.md5
    fetch_archive(entry, target, settings=FAST, keep_archive=False)
    marker.write_text(json.dumps(old_style))
    fetch_archive(entry, target, settings=FAST)  # archive gone: only a download can verify
    assert len(http_server.requests) == 1 and not own_file.exists()
    assert json.loads(marker.read_text())["md5"] == entry.md5


def test_bad_lock_file_entry_names_the_lock_file(tmp_path, http_server):
    (http_server.directory / "white.mat").write_bytes(b"x" * 100)
    entry = ArchiveEntry(name="white.mat", url=f"{http_server.url}/white.mat")
    lock = tmp_path / "noisex92.lock.json"
    lock.write_text(json.dumps({"white.mat": {"sha256": "sha256:ABCDEF"}}))
    with pytest.raises(DownloadError, match=rf"{re.escape(str(lock))}: white.mat: sha256 must be 64 hex digits"):
        fetch_archive(entry, tmp_path / "t", settings=FAST, lock=lock)
    assert http_server.requests == []


def test_lock_pins_sha256_of_unpublished_files(tmp_path, http_server):
    (http_server.directory / "eval_data_list.csv").write_text("fan\nid_01_00000000.wav,x,0\n")
    entry = ArchiveEntry(name="eval_data_list.csv", url=f"{http_server.url}/eval_data_list.csv")
    target, lock = tmp_path / "t", tmp_path / "t" / "checksums.lock.json"
    fetch_archive(entry, target, settings=FAST, lock=lock)
    pinned = read_lock(lock)["eval_data_list.csv"]
    assert len(pinned["sha256"]) == 64 and pinned["size"] == (target / "eval_data_list.csv").stat().st_size
    (http_server.directory / "eval_data_list.csv").write_text("fan\nid_01_00000000.wav,x,1\n")  # upstream changed
    (target / "eval_data_list.csv").unlink()
    with pytest.raises(ChecksumError, match="sha256"):
        fetch_archive(entry, target, settings=FAST, lock=lock)
    assert not (target / "eval_data_list.csv").exists()


def test_mimii_archives_without_a_checksum_are_pinned_on_first_download(tmp_path, http_server):
    archive = make_mimii_archive(http_server.directory, 0, "fan", n_normal=1, n_abnormal=1, channels=1)
    content = archive_list_for("mimii", [archive], http_server.url, extra={archive.name: {"md5": None, "size": None}})
    listed = write_archive_list(tmp_path / "list.json", content)
    target = tmp_path / "mimii"
    download_mimii(target, machine_types=["fan"], snr_levels=["0dB"], manifest=listed, settings=FAST,
                   keep_archives=False)
    assert len(read_lock(target / "checksums.lock.json")[archive.name]["sha256"]) == 64
    make_mimii_archive(http_server.directory, 0, "fan", n_normal=2, n_abnormal=1, channels=1)  # upstream changed
    import shutil
    shutil.rmtree(target / "0_dB")
    with pytest.raises(ChecksumError, match="sha256"):
        download_mimii(target, machine_types=["fan"], snr_levels=["0dB"], manifest=listed, settings=FAST)
