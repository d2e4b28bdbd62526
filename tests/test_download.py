"""download_file against a local HTTP server: resume, restart, retries, checksums, disk errors."""

from __future__ import annotations

import errno
import hashlib
import json
import threading
from http.server import ThreadingHTTPServer

import pytest

from asdlib.corpora import download
from asdlib.corpora.download import (
    ChecksumError,
    DownloadError,
    DownloadSettings,
    completion_marker,
    download_file,
    part_path,
    validator_path,
)
from http_server import FileServer, _handler

FAST = DownloadSettings(retries=3, backoff_s=0.0, timeout_s=5.0, chunk_bytes=4096, progress=False)


@pytest.fixture
def payload(http_server):
    """A 100 kB file on the server: (url, bytes, md5)."""
    data = bytes((i * 7919) % 251 for i in range(100_000))
    (http_server.directory / "blob.zip").write_bytes(data)
    return f"{http_server.url}/blob.zip", data, hashlib.md5(data).hexdigest()


@pytest.fixture
def etag_server(tmp_path_factory):
    """The server of tests/http_server.py plus a strong ETag per file and ``If-Range``: a request whose
    If-Range is not the current ETag gets the whole file (200). ``server.sent`` lists (Range, If-Range)."""
    state = FileServer(tmp_path_factory.mktemp("served"))
    state.sent = []

    class Handler(_handler(state)):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            path = state.directory / self.path.lstrip("/")
            self.etag = f'"{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"' if path.is_file() else None
            state.sent.append((self.headers.get("Range"), self.headers.get("If-Range")))
            if self.headers.get("If-Range") not in (None, self.etag):
                del self.headers["Range"]
            super().do_GET()

        def end_headers(self) -> None:
            if self.etag:
                self.send_header("ETag", self.etag)
            super().end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _etag(data):
    return f'"{hashlib.sha256(data).hexdigest()[:16]}"'


def _no_leftovers(dest):
    return not part_path(dest).exists() and not completion_marker(dest).exists() and not dest.exists()


def test_full_download_verifies_and_records(tmp_path, http_server, payload):
    url, data, md5 = payload
    dest = tmp_path / "out" / "blob.zip"
    result = download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert dest.read_bytes() == data and result.fetched and result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert not part_path(dest).exists()
    record = json.loads(completion_marker(dest).read_text())
    assert record["md5"] == md5 and record["size"] == len(data) and record["url"] == url
    assert http_server.requests == [("/blob.zip", None)]


def test_second_run_makes_no_request(tmp_path, http_server, payload):
    url, data, md5 = payload
    dest = tmp_path / "blob.zip"
    download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    http_server.requests.clear()
    again = download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert not again.fetched and again.md5 == md5
    assert http_server.requests == []


def test_resume_after_truncation_uses_range(tmp_path, http_server, payload):
    url, data, md5 = payload
    dest = tmp_path / "blob.zip"
    part_path(dest).write_bytes(data[:30_000])  # left by an interrupted run
    result = download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert dest.read_bytes() == data and result.md5 == md5
    assert http_server.requests == [("/blob.zip", "bytes=30000-")]


def test_server_ignoring_range_restarts_from_zero(tmp_path, http_server, payload):
    url, data, md5 = payload
    http_server.mode = "ignore_range"
    dest = tmp_path / "blob.zip"
    part_path(dest).write_bytes(b"\xff" * 30_000)  # appending to this would break the checksum
    download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert dest.read_bytes() == data
    assert http_server.requests == [("/blob.zip", "bytes=30000-")]


def test_dropped_connection_is_retried_with_resume(tmp_path, http_server, payload):
    url, data, md5 = payload
    http_server.mode = "drop_once"
    dest = tmp_path / "blob.zip"
    download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert dest.read_bytes() == data
    ranges = [r for _, r in http_server.requests]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1] == f"bytes={len(data) // 2}-"


def test_resume_sends_if_range_with_the_etag_of_the_first_response(tmp_path, etag_server):
    data = bytes(range(256)) * 400
    (etag_server.directory / "list.csv").write_bytes(data)
    etag_server.mode = "drop_once"
    dest = tmp_path / "list.csv"
    download_file(f"{etag_server.url}/list.csv", dest, settings=FAST)  # no checksum to catch a splice
    assert dest.read_bytes() == data
    assert etag_server.sent == [(None, None), (f"bytes={len(data) // 2}-", _etag(data))]
    assert not validator_path(part_path(dest)).exists()


def test_file_changed_between_runs_restarts_instead_of_splicing(tmp_path, etag_server):
    old, new = bytes(range(256)) * 400, bytes(reversed(range(256))) * 400
    served = etag_server.directory / "list.csv"
    served.write_bytes(old)
    etag_server.mode = "drop_once"
    dest = tmp_path / "list.csv"
    once = DownloadSettings(retries=0, backoff_s=0.0, timeout_s=5.0, progress=False)
    with pytest.raises(DownloadError, match="partial data kept"):
        download_file(f"{etag_server.url}/list.csv", dest, settings=once)
    served.write_bytes(new)  # upstream changed while the part waited
    result = download_file(f"{etag_server.url}/list.csv", dest, settings=FAST)
    assert dest.read_bytes() == new and result.sha256 == hashlib.sha256(new).hexdigest()
    assert etag_server.sent[-1] == (f"bytes={len(old) // 2}-", _etag(old))  # answered 200: whole new file


def test_part_without_validator_or_checksum_starts_from_zero(tmp_path, http_server, payload):
    url, data, _ = payload
    dest = tmp_path / "blob.zip"
    part_path(dest).write_bytes(b"\x00" * 30_000)  # from an unknown version of the file
    download_file(url, dest, settings=FAST)
    assert dest.read_bytes() == data
    assert http_server.requests == [("/blob.zip", None)]


def test_dropped_connection_without_known_size_is_detected(tmp_path, http_server, payload):
    url, data, md5 = payload
    http_server.mode = "drop_once"
    dest = tmp_path / "blob.zip"
    download_file(url, dest, md5=md5, settings=FAST)  # size from Content-Length only
    assert dest.read_bytes() == data and len(http_server.requests) == 2


def test_corrupt_part_from_earlier_run_gets_one_clean_retry(tmp_path, http_server, payload):
    url, data, md5 = payload
    dest = tmp_path / "blob.zip"
    part_path(dest).write_bytes(b"\x00" * 50_000)  # wrong bytes, resumable length
    download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert dest.read_bytes() == data
    assert [r for _, r in http_server.requests] == ["bytes=50000-", None]


def test_wrong_checksum_leaves_nothing(tmp_path, http_server, payload):
    url, data, md5 = payload
    http_server.mode = "wrong_bytes"
    dest = tmp_path / "blob.zip"
    expected = rf"{url}: downloaded data does not match \(md5 [0-9a-f]+ != expected {md5}"
    with pytest.raises(ChecksumError, match=expected):
        download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert _no_leftovers(dest)


def test_wrong_checksum_keeps_previous_good_copy(tmp_path, http_server, payload):
    url, data, md5 = payload
    dest = tmp_path / "blob.zip"
    old = b"previous good release" * 10
    dest.write_bytes(old)
    download.write_json(completion_marker(dest), {"size": len(old), "md5": hashlib.md5(old).hexdigest(),
                                                  "sha256": hashlib.sha256(old).hexdigest()})
    marker_before = completion_marker(dest).read_bytes()
    http_server.mode = "wrong_bytes"
    with pytest.raises(ChecksumError):
        download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert dest.read_bytes() == old and completion_marker(dest).read_bytes() == marker_before
    assert not part_path(dest).exists()


def test_existing_file_without_marker_is_verified_not_downloaded(tmp_path, http_server, payload):
    url, data, md5 = payload
    dest = tmp_path / "blob.zip"
    dest.write_bytes(data)  # fetched by hand
    result = download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert not result.fetched and completion_marker(dest).exists()
    assert http_server.requests == []


def test_server_size_differs_from_expected(tmp_path, http_server, payload):
    url, data, md5 = payload
    dest = tmp_path / "blob.zip"
    with pytest.raises(ChecksumError, match=f"server reports {len(data)} bytes, expected {len(data) + 1}"):
        download_file(url, dest, md5=md5, size=len(data) + 1, settings=FAST)
    assert _no_leftovers(dest)


class _FillingFile:
    """A writable file that runs out of space after ``budget`` bytes."""

    def __init__(self, real, budget):
        self.real, self.budget = real, budget

    def write(self, chunk):
        if self.budget < len(chunk):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget -= len(chunk)
        return self.real.write(chunk)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def test_disk_full_gives_clear_error_and_no_complete_file(tmp_path, http_server, payload, monkeypatch):
    url, data, md5 = payload
    dest = tmp_path / "blob.zip"
    real_open = open

    def filling_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return _FillingFile(fh, 20_000) if "w" in mode or "a" in mode else fh

    monkeypatch.setattr(download, "open", filling_open, raising=False)
    with pytest.raises(DownloadError, match=r"blob\.zip\.part: disk full"):
        download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert not dest.exists() and not completion_marker(dest).exists()
    assert len(http_server.requests) == 1  # not retried: the disk, not the network, failed


def test_permission_denied_names_the_path(tmp_path, http_server, payload, monkeypatch):
    url, data, md5 = payload
    dest = tmp_path / "blob.zip"

    def denied(path, mode="r", *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(download, "open", denied, raising=False)
    with pytest.raises(DownloadError, match=r"blob\.zip\.part: permission denied"):
        download_file(url, dest, md5=md5, size=len(data), settings=FAST)
    assert not dest.exists()


def test_retries_are_bounded(tmp_path, http_server, payload):
    url, data, md5 = payload
    http_server.mode = "error_500"
    settings = DownloadSettings(retries=2, backoff_s=0.0, timeout_s=5.0, progress=False)
    with pytest.raises(DownloadError, match="giving up after 3 attempts.*HTTP 500"):
        download_file(url, tmp_path / "blob.zip", md5=md5, settings=settings)
    assert len(http_server.requests) == 3


def test_backoff_grows_exponentially(tmp_path, http_server, payload, monkeypatch):
    url, _, md5 = payload
    http_server.mode = "error_500"
    sleeps = []
    monkeypatch.setattr(download.time, "sleep", sleeps.append)
    settings = DownloadSettings(retries=4, backoff_s=1.0, backoff_max_s=5.0, progress=False)
    with pytest.raises(DownloadError):
        download_file(url, tmp_path / "blob.zip", md5=md5, settings=settings)
    assert sleeps == [1.0, 2.0, 4.0, 5.0]


def test_not_found_fails_at_once(tmp_path, http_server):
    with pytest.raises(DownloadError, match="missing.zip: HTTP 404"):
        download_file(f"{http_server.url}/missing.zip", tmp_path / "missing.zip", settings=FAST)
    assert len(http_server.requests) == 1
    assert not (tmp_path / "missing.zip").exists()


def test_a_file_mirror_lacking_the_file_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(download.time, "sleep", lambda s: pytest.fail("retried a missing file"))
    url = (tmp_path / "mirror" / "missing.zip").as_uri()
    with pytest.raises(DownloadError, match=rf"^{url}: not found \(No such file or directory\)$"):
        download_file(url, tmp_path / "missing.zip", settings=FAST)
    assert not (tmp_path / "missing.zip").exists()


def test_file_url_mirror(tmp_path, payload, http_server):
    _, data, md5 = payload
    source = http_server.directory / "blob.zip"
    dest = tmp_path / "copy.zip"
    download_file(source.as_uri(), dest, md5=md5, size=len(data), settings=FAST)
    assert dest.read_bytes() == data


def test_bad_checksum_argument_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="md5 checksum must be 32 hex digits"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", md5="xyz", settings=FAST)


def test_a_refused_connection_is_an_os_error_a_stage_prints_in_one_line(tmp_path, monkeypatch, capsys):
    from stages import common

    monkeypatch.setattr(common, "configure_logging", lambda: None)  # keep pytest's logging
    monkeypatch.setattr(common, "keep_freed_memory", lambda: False)  # and this process's environment
    refused = DownloadSettings(retries=0, backoff_s=0.0, timeout_s=5.0, progress=False)
    with pytest.raises(SystemExit) as stop:
        common.run(lambda: download_file("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", settings=refused))
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: http://127.0.0.1:9/x.zip: giving up after 1 attempt (cannot connect: ")
    assert err.count("\n") == 1 and "partial data" not in err  # nothing was received, so nothing is kept
    assert issubclass(ChecksumError, OSError)


def test_corpus_stage_download_failure_is_one_line_and_leaves_no_temp_folder(http_server, tmp_path, monkeypatch,
                                                                              capsys):
    from stages import common, corpus

    monkeypatch.setattr(common, "configure_logging", lambda: None)
    monkeypatch.setattr(common, "keep_freed_memory", lambda: False)
    monkeypatch.chdir(tmp_path)  # the stage reads params.yaml and writes data/ where it runs
    params = {"corpus": {"source": "mimii", "download_dir": "dl", "mirror": http_server.url,
                         "machine_types": ["fan"], "mimii_levels": ["-6dB"]}, "parallel": {}}
    (tmp_path / "params.yaml").write_text(json.dumps(params))  # JSON is YAML
    with pytest.raises(SystemExit) as stop:
        common.run(corpus.main)
    assert stop.value.code == 1
    assert capsys.readouterr().err == f"error: {http_server.url}/-6_dB_fan.zip: HTTP 404 Not Found\n"
    assert not (tmp_path / "data" / ".corpus.tmp").exists() and not (tmp_path / "data" / "corpus").exists()


# --- real internet (deselected by default: pytest -m internet) ---------------------------

@pytest.mark.internet
def test_real_dcase2020_ground_truth_parses(tmp_path):
    from asdlib.corpora.archives import corpus_archives, fetch_archive
    from asdlib.corpora.dcase2020 import read_ground_truth

    entry = next(e for e in corpus_archives("dcase2020") if e.part == "ground_truth")
    path = fetch_archive(entry, tmp_path, lock=tmp_path / "checksums.lock.json")
    truth = read_ground_truth(path)
    assert len(truth) == 7103  # evaluation test clips of DCASE 2020 Task 2
    assert {k.split("/")[0] for k in truth} == {"fan", "pump", "slider", "valve", "ToyCar", "ToyConveyor"}


@pytest.mark.internet
def test_real_zenodo_archive_resumes_with_range(tmp_path):
    import urllib.request

    from asdlib.corpora.archives import corpus_archives

    entry = next(e for e in corpus_archives("dcase2020") if e.name == "dev_data_fan.zip")
    request = urllib.request.Request(entry.url, headers={"Range": f"bytes={entry.size - 10}-"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 206 and len(response.read()) == 10
