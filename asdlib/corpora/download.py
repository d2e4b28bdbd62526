"""Resumable, verified HTTP downloads using only the standard library.

:func:`download_file` streams into a hidden ``.<name>.part`` file beside the
destination while hashing (md5 and sha256), resumes with a ``Range`` request
when the server answers 206 (and starts over when it answers 200), retries
dropped connections and timeouts with exponential backoff, and renames the part
into place only after size and checksums match. A previous good copy at the
destination is never touched before that rename, and a failed download never
leaves a file where a complete one is expected.

A resume names the version of the file the part holds: the ``ETag`` (or else
``Last-Modified``) of the response that started it is kept beside the part
(``.<name>.part.json``) and sent as ``If-Range``, so a server whose file changed
answers 200 and the download starts over instead of splicing two versions. A part
without such a validator is resumed only when a checksum will check the result;
otherwise it is downloaded again from byte zero.

Completion is recorded in ``<dest dir>/.complete/<name>.json`` (size, md5,
sha256, url), so a second call with the same expectations does no network and
no disk work beyond a ``stat``. Files without published checksums are pinned by
a lock file (:func:`read_lock` / :func:`record_lock`): the sha256 seen on first
download is written there and enforced on later downloads.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from asdlib.fileio import write_json

USER_AGENT = "asdlib-corpora/0.1 (+https://github.com/; research download)"
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
_HASH_BLOCK = 1 << 20


class DownloadError(OSError):
    """A download failed for good; the message names the URL or file and the cause.

    An ``OSError`` (network and disk failures are I/O errors), so the stages' and the
    command line's handlers of expected errors print it as one line.
    """


class ChecksumError(DownloadError):
    """Downloaded bytes do not match the expected size or checksum."""


@dataclass(frozen=True)
class DownloadSettings:
    """How hard to try: retries with exponential backoff, timeouts, chunk size, progress bar."""

    retries: int = 5
    backoff_s: float = 2.0
    backoff_max_s: float = 60.0
    timeout_s: float = 60.0
    chunk_bytes: int = 1 << 20
    progress: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_s and backoff_max_s must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be > 0, got {self.chunk_bytes}")


@dataclass(frozen=True)
class DownloadResult:
    """A complete, verified file; ``fetched`` is False when nothing had to be downloaded."""

    path: Path
    size: int
    md5: str
    sha256: str
    fetched: bool


class _Transient(Exception):
    """A failure worth retrying (dropped connection, timeout, 5xx)."""


class _Restart(Exception):
    """The partial file cannot be resumed; start again from byte zero."""


def completion_marker(dest: Path) -> Path:
    """Where the completion record of ``dest`` lives."""
    dest = Path(dest)
    return dest.parent / ".complete" / f"{dest.name}.json"


def part_path(dest: Path) -> Path:
    """The temporary file a download of ``dest`` streams into (kept for resuming)."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}.part"


def validator_path(part: Path) -> Path:
    """Where the ``ETag`` / ``Last-Modified`` of the response a part file came from is kept."""
    part = Path(part)
    return part.with_name(f"{part.name}.json")


def download_file(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    settings: DownloadSettings | None = None,
) -> DownloadResult:
    """Download ``url`` to ``dest`` unless a verified copy is already recorded there.

    A file already at ``dest`` without a completion record is hashed and kept if it
    matches (so archives fetched by hand are reused). Raises :class:`ChecksumError`
    on a size or checksum mismatch and :class:`DownloadError` for everything else
    (HTTP errors, retries exhausted, disk full, permission denied), always naming
    the URL or path.
    """
    settings = settings or DownloadSettings()
    dest = Path(dest)
    expected = {"md5": _norm_hex(md5, 32, "md5"), "sha256": _norm_hex(sha256, 64, "sha256")}
    recorded = _recorded(dest, expected, size)
    if recorded is not None:
        return recorded
    _ensure_dir(dest.parent)
    if dest.is_file() and (expected["md5"] or expected["sha256"]):
        digests = file_digests(dest)
        if _matches(digests, expected, size):
            return _finish(dest, url, digests, fetched=False)

    part = part_path(dest)
    resumed_from_disk = part.exists()
    checked = expected["md5"] is not None or expected["sha256"] is not None
    attempt = 0
    while True:
        try:
            digests = _fetch_into(url, part, size, settings, dest.name, checked)
            break
        except _Transient as exc:
            attempt += 1
            if attempt > settings.retries:
                kept = f"; partial data kept in {part} for the next run" if part.exists() else ""
                tries = "1 attempt" if settings.retries == 0 else f"{settings.retries + 1} attempts"
                raise DownloadError(f"{url}: giving up after {tries} ({exc}){kept}") from exc
            time.sleep(min(settings.backoff_max_s, settings.backoff_s * 2 ** (attempt - 1)))
    if not _matches(digests, expected, size):
        _discard_part(part)
        if resumed_from_disk:
            # The part left by an earlier run may have been corrupt: one clean try from zero.
            return download_file(url, dest, md5=md5, sha256=sha256, size=size, settings=settings)
        raise ChecksumError(_mismatch_message(url, dest, digests, expected, size))
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise _disk_error(dest, exc) from exc
    validator_path(part).unlink(missing_ok=True)
    return _finish(dest, url, digests, fetched=True)


def file_digests(path: Path) -> dict:
    """``{"size", "md5", "sha256"}`` of a file on disk."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            md5.update(block)
            sha.update(block)
            size += len(block)
    return {"size": size, "md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def read_lock(path: Path) -> dict[str, dict]:
    """The pinned checksums of a lock file (``{}`` when it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DownloadError(f"{path}: unreadable checksum lock file ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "sha256" in v for v in data.values()):
        raise DownloadError(f"{path}: checksum lock file must map names to {{\"sha256\": ...}}")
    for name, record in data.items():
        if not (isinstance(record["sha256"], str) and re.fullmatch(r"[0-9a-fA-F]{64}", record["sha256"])):
            raise DownloadError(f"{path}: {name}: sha256 must be 64 hex digits, got {record['sha256']!r} "
                                "(fix or delete the entry to pin the next download)")
    return data


def record_lock(path: Path, name: str, result: DownloadResult, url: str) -> None:
    """Pin ``name`` to the sha256 and size of ``result`` in the lock file (atomic rewrite)."""
    data = read_lock(path)
    data[name] = {"sha256": result.sha256, "size": result.size, "url": url}
    write_json(path, data)


# --- internals -------------------------------------------------------------------------

def _fetch_into(url: str, part: Path, size: int | None, settings: DownloadSettings, name: str,
                checked: bool) -> dict:
    """Stream ``url`` into ``part`` (resuming when possible); return its digests.

    ``checked``: a checksum will verify the result, so a part without a validator may be resumed.
    """
    while True:
        try:
            return _fetch_once(url, part, size, settings, name, checked)
        except _Restart:
            _discard_part(part)


def _fetch_once(url: str, part: Path, size: int | None, settings: DownloadSettings, name: str,
                checked: bool) -> dict:
    offset = part.stat().st_size if part.exists() else 0
    validator = _read_validator(part, url) if offset else None
    if offset and validator is None and not checked:
        raise _Restart()  # nothing would notice if the part came from another version of the file
    if size is not None and offset > size:
        raise _Restart()
    if size is not None and offset == size and offset > 0:
        return file_digests(part)
    _check_free_space(part, (size - offset) if size is not None else None)
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    if offset and validator is not None:
        headers["If-Range"] = validator
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=settings.timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            total = _range_total(exc.headers.get("Content-Range"))
            if total == offset:
                return file_digests(part)
            raise _Restart() from exc
        if exc.code in _TRANSIENT_HTTP:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if isinstance(getattr(exc, "reason", None), FileNotFoundError):  # a file:// mirror lacks it
            raise DownloadError(f"{url}: not found ({exc.reason.strerror})") from exc
        raise _Transient(f"cannot connect: {getattr(exc, 'reason', exc)}") from exc
    with response:
        status = response.status or 200  # file:// URLs carry no status
        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise _Restart()
        elif status == 200:
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            _discard_part(part)  # the old bytes and their validator go before the new validator is kept
            _save_validator(part, url, response.headers)
        else:
            raise DownloadError(f"{url}: unexpected HTTP status {status}")
        if size is not None and total is not None and total != size:
            _discard_part(part)
            raise ChecksumError(f"{url}: server reports {total} bytes, expected {size} "
                                "(wrong file or outdated archive list)")
        expected_total = total if total is not None else size
        md5, sha = hashlib.md5(), hashlib.sha256()
        if offset:
            _hash_prefix(part, md5, sha)
        with _open_part(part, "ab" if offset else "wb") as fh, tqdm(
            total=expected_total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=name, disable=None if settings.progress else True, leave=False,
        ) as bar:
            received = offset
            while True:
                try:
                    chunk = response.read(settings.chunk_bytes)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"connection lost after {received} bytes: {exc}") from exc
                if not chunk:
                    break
                _write_chunk(fh, chunk, part)
                md5.update(chunk)
                sha.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            _flush(fh, part)
    if expected_total is not None and received < expected_total:
        raise _Transient(f"connection closed after {received} of {expected_total} bytes")
    return {"size": received, "md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def _read_validator(part: Path, url: str) -> str | None:
    """The ``If-Range`` value naming the version of ``url`` that ``part`` holds, if one was kept."""
    try:
        record = json.loads(validator_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("url") != url or not isinstance(record.get("validator"), str):
        return None
    return record["validator"]


def _save_validator(part: Path, url: str, headers: Message) -> None:
    """Keep the strong ``ETag`` (else ``Last-Modified``) of a response that starts ``part`` from zero."""
    etag = headers.get("ETag")
    validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    if validator:
        try:
            write_json(validator_path(part), {"url": url, "validator": validator})
        except OSError as exc:
            raise _disk_error(validator_path(part), exc) from exc


def _discard_part(part: Path) -> None:
    """Delete a part file and its validator."""
    part.unlink(missing_ok=True)
    validator_path(part).unlink(missing_ok=True)


def _open_part(part: Path, mode: str) -> BinaryIO:
    try:
        return open(part, mode)
    except OSError as exc:
        raise _disk_error(part, exc) from exc


def _write_chunk(fh: BinaryIO, chunk: bytes, part: Path) -> None:
    try:
        fh.write(chunk)
    except OSError as exc:
        raise _disk_error(part, exc) from exc


def _flush(fh: BinaryIO, part: Path) -> None:
    try:
        fh.flush()
        os.fsync(fh.fileno())
    except OSError as exc:
        raise _disk_error(part, exc) from exc


def _disk_error(path: Path, exc: OSError) -> DownloadError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"{path}: disk full while writing ({exc.strerror}); free space and run "
                             "again (a partial download resumes where it stopped)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DownloadError(f"{path}: permission denied ({exc.strerror}); choose a writable folder")
    return DownloadError(f"{path}: cannot write ({exc})")


def _ensure_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_error(folder, exc) from exc


def _check_free_space(part: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(part.parent).free
    if free < needed:
        raise DownloadError(f"{part.parent}: not enough free disk space: {needed / 1e9:.2f} GB needed, "
                            f"{free / 1e9:.2f} GB free")


def _hash_prefix(part: Path, *hashers) -> None:
    with open(part, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            for h in hashers:
                h.update(block)


def _content_range(value: str | None) -> tuple[int, int | None]:
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (value or "").strip())
    if not m:
        raise _Restart()
    return int(m.group(1)), (int(m.group(3)) if m.group(3) != "*" else None)


def _range_total(value: str | None) -> int | None:
    m = re.fullmatch(r"bytes \*/(\d+)", (value or "").strip())
    return int(m.group(1)) if m else None


def _norm_hex(value: str | None, length: int, kind: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not re.fullmatch(rf"[0-9a-f]{{{length}}}", value):
        raise ValueError(f"{kind} checksum must be {length} hex digits, got {value!r}")
    return value


def _matches(digests: dict, expected: dict, size: int | None) -> bool:
    if size is not None and digests["size"] != size:
        return False
    return all(digests[k] == v for k, v in expected.items() if v is not None)


def _mismatch_message(url: str, dest: Path, digests: dict, expected: dict, size: int | None) -> str:
    parts = []
    if size is not None and digests["size"] != size:
        parts.append(f"size {digests['size']} != expected {size}")
    parts += [f"{k} {digests[k]} != expected {v}" for k, v in expected.items()
              if v is not None and digests[k] != v]
    return (f"{url}: downloaded data does not match ({'; '.join(parts)}); nothing was written to "
            f"{dest}. The server or mirror may serve a different file, or the data was corrupted.")


def _recorded(dest: Path, expected: dict, size: int | None) -> DownloadResult | None:
    """The verified result recorded by an earlier run, if it still applies (stat only)."""
    marker = completion_marker(dest)
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        on_disk = dest.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not {"size", "md5", "sha256"} <= set(record):
        return None
    if record["size"] != on_disk:
        return None
    if not _matches(record, expected, size):
        return None
    return DownloadResult(dest, on_disk, record["md5"], record["sha256"], fetched=False)


def _finish(dest: Path, url: str, digests: dict, *, fetched: bool) -> DownloadResult:
    try:
        write_json(completion_marker(dest), {**digests, "url": url, "name": dest.name})
    except OSError as exc:
        raise _disk_error(completion_marker(dest), exc) from exc
    return DownloadResult(dest, digests["size"], digests["md5"], digests["sha256"], fetched=fetched)
