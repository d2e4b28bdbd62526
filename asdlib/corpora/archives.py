"""The archive list (``archives.json``), safe extraction, and fetch-then-extract.

``archives.json`` (shipped with the package; ``manifest=`` replaces it) maps a
corpus name to a list of entries::

    {"name": "dev_data_fan.zip", "url": "https://zenodo.org/record/3678171/files/dev_data_fan.zip",
     "size": 1354774772, "md5": "649b...", "sha256": null,
     "machine_type": "fan", "part": "dev", "extract_to": "dev_data"}

``size``/``md5``/``sha256`` may be null when unknown; ``extract_to`` null means the
file is kept as downloaded (``<target>/<name>``) instead of being extracted into
``<target>/<extract_to>``. Keys starting with ``_`` are comments.

Extraction refuses the whole archive before writing anything if any member would
land outside the destination (absolute paths, ``..``, drive letters) or is a
link or special file; members are written into a hidden temporary folder inside
the destination and moved into place only when all of them were extracted.
Problems with the list raise :class:`ArchiveError`; problems with a downloaded
archive (corrupt, unsafe, disk errors) raise its subclass :class:`ExtractionError`.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from tqdm import tqdm

from asdlib.corpora.download import (
    DownloadSettings,
    completion_marker,
    download_file,
    read_lock,
    record_lock,
)
from asdlib.fileio import write_json

DEFAULT_MANIFEST = Path(__file__).with_name("archives.json")
_ENTRY_KEYS = {"name", "url", "size", "md5", "sha256", "machine_type", "part", "extract_to"}


class ArchiveError(ValueError):
    """An archive list or an archive is unusable; the message names the file and member."""


class ExtractionError(ArchiveError):
    """A downloaded archive cannot be extracted (corrupt, unsafe member, disk error): a failed
    download or extraction rather than bad input; the message names the archive or folder."""


@dataclass(frozen=True)
class ArchiveEntry:
    """One downloadable file of a corpus."""

    name: str
    url: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    machine_type: str | None = None
    part: str | None = None
    extract_to: str | None = None


def load_archive_list(manifest: Path | None = None) -> dict[str, list[ArchiveEntry]]:
    """Read and check an archive list (the packaged ``archives.json`` when ``None``)."""
    path = Path(manifest) if manifest is not None else DEFAULT_MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArchiveError(f"{path}: archive list not found") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{path}: not a readable JSON archive list ({exc})") from exc
    if not isinstance(data, dict):
        raise ArchiveError(f"{path}: expected an object mapping corpus names to lists")
    corpora = {}
    for corpus, entries in data.items():
        if corpus.startswith("_"):
            continue
        if not isinstance(entries, list):
            raise ArchiveError(f"{path}: {corpus}: expected a list of archives")
        corpora[corpus] = [_entry(e, f"{path}: {corpus}[{i}]") for i, e in enumerate(entries)]
        names = [e.name for e in corpora[corpus]]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ArchiveError(f"{path}: {corpus}: duplicate archive names {dup[:5]}")
    return corpora


def corpus_archives(corpus: str, *, manifest: Path | None = None, mirror: str | None = None) -> list[ArchiveEntry]:
    """The entries of ``corpus``, with URLs moved to ``mirror`` when given."""
    corpora = load_archive_list(manifest)
    if corpus not in corpora:
        where = manifest or DEFAULT_MANIFEST
        raise ArchiveError(f"{where}: no corpus {corpus!r} (has: {', '.join(sorted(corpora))})")
    entries = corpora[corpus]
    return [with_mirror(e, mirror) for e in entries] if mirror else entries


def select_archives(corpus: str, parts: Sequence[str], machine_types: Sequence[str], *,
                    manifest: Path | None = None, mirror: str | None = None,
                    whole_parts: Sequence[str] = ()) -> list[ArchiveEntry]:
    """The entries of ``corpus`` for the chosen parts and machine types, in list order,
    then every entry of ``whole_parts`` (parts not split by machine type, e.g. ground truth).

    Every (part, type) pair must have an archive: a missing one is an error naming the
    archive list, so a custom list that lacks a file fails before any download.
    """
    entries = corpus_archives(corpus, manifest=manifest, mirror=mirror)
    chosen = [e for e in entries if e.part in parts and e.machine_type in machine_types]
    missing = [f"{part}/{machine_type}" for part in parts for machine_type in machine_types
               if not any(e.part == part and e.machine_type == machine_type for e in chosen)]
    if missing:
        raise ArchiveError(f"{manifest or DEFAULT_MANIFEST}: no {corpus} archive listed for {', '.join(missing)}")
    return chosen + [e for e in entries if e.part in whole_parts]


def with_mirror(entry: ArchiveEntry, mirror: str) -> ArchiveEntry:
    """Replace everything before the file name of the URL by ``mirror``."""
    file_name = entry.url.rstrip("/").rsplit("/", 1)[-1]
    return replace(entry, url=f"{mirror.rstrip('/')}/{file_name}")


def fetch_archive(
    entry: ArchiveEntry,
    target_dir: Path,
    *,
    settings: DownloadSettings | None = None,
    keep_archive: bool = True,
    lock: Path | None = None,
) -> Path:
    """Download (and extract) one entry under ``target_dir``; return where its data lies.

    Archives go to ``<target>/archives/<name>`` and are extracted into
    ``<target>/<extract_to>`` with a marker in ``<target>/.extracted/``; plain files
    go to ``<target>/<name>``. A finished entry costs a few ``stat`` calls and no
    network. Entries without a published checksum are pinned in ``lock`` (sha256
    recorded on first download, enforced afterwards) when a lock file is given.

    The marker records the size, md5 and sha256 of the archive extracted. When the entry
    (another archive list or mirror) or its pinned sha256 expects other values, the new
    archive is downloaded and extracted in place of the folders the old marker lists that
    no other extraction shares (see :func:`safe_extract`). A marker from before these were
    recorded cannot be compared, so the archive is verified again: kept without
    re-extraction when the archive still in ``archives/`` passes verification without a
    download and has the size the marker recorded (it is then the file that was extracted,
    as only the download just before an extraction writes it); otherwise downloaded and
    extracted again. With ``keep_archive`` false the archive and its completion record are
    deleted, also when an earlier run extracted it.
    """
    target_dir = Path(target_dir)
    if entry.extract_to is None:
        return _download(entry, target_dir / entry.name, settings, lock).path
    dest = target_dir / entry.extract_to
    marker = target_dir / ".extracted" / f"{entry.name}.json"
    archive = target_dir / "archives" / entry.name
    record = extraction_record(marker, dest)
    same = _same_archive(record, entry, lock) if record is not None else False
    if not same:
        result = _download(entry, archive, settings, lock)
        identity = {"extract_to": entry.extract_to, "md5": result.md5, "sha256": result.sha256}
        if same is None and not result.fetched and result.size == record.get("size"):
            write_json(marker, {**record, **identity})
        else:
            replace = _own_folders(record, marker, dest, entry.extract_to) if record is not None else []
            safe_extract(archive, dest, marker=marker, record=identity, replace=replace)
    if not keep_archive:
        archive.unlink(missing_ok=True)
        completion_marker(archive).unlink(missing_ok=True)
    return dest


def extraction_record(marker: Path, dest: Path) -> dict | None:
    """The record of ``marker`` when it lists folders of ``dest`` that all still exist, else ``None``."""
    try:
        record = json.loads(Path(marker).read_text(encoding="utf-8"))
        folders = record["folders"]
        complete = all((Path(dest) / f).is_dir() for f in folders)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if complete else None


def safe_extract(archive: Path, dest: Path, *, marker: Path | None = None, record: Mapping | None = None,
                 replace: Sequence[str] = ()) -> list[str]:
    """Extract a zip or tar archive into ``dest`` safely; return the folders it filled.

    Raises :class:`ExtractionError` (writing nothing) for unsafe members, and for
    corrupt archives or disk errors (leaving ``dest`` without a half-moved tree).
    ``replace`` names folders under ``dest`` (left by an older archive) that are removed
    once every member was extracted, just before the new tree is moved in, so files the
    new archive lacks do not linger. ``marker`` is removed before ``dest`` changes and
    written (with the fields of ``record`` added) when the tree is in place.
    """
    archive, dest = Path(archive), Path(dest)
    members = _members(archive)
    folders = sorted({"/".join(parts[:-1]) or "." for parts, _, is_dir in members if not is_dir})
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for stale in dest.glob(f".extract-{archive.name}-*"):  # left by an interrupted run
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".extract-{archive.name}-"))
    except OSError as exc:
        raise ExtractionError(f"{dest}: cannot create extraction folder ({exc})") from exc
    try:
        _write_members(archive, members, tmp)
        if marker is not None:
            Path(marker).unlink(missing_ok=True)
        _remove_folders(dest, replace)
        _merge_move(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if marker is not None:
        write_json(marker, {**(record or {}), "archive": archive.name, "size": archive.stat().st_size,
                            "members": len(members), "folders": folders})
    return folders


# --- internals -------------------------------------------------------------------------

def _entry(raw: object, where: str) -> ArchiveEntry:
    if not isinstance(raw, dict):
        raise ArchiveError(f"{where}: expected an object")
    unknown = sorted(k for k in set(raw) - _ENTRY_KEYS if not k.startswith("_"))
    if unknown:
        raise ArchiveError(f"{where}: unknown keys {unknown} (allowed: {sorted(_ENTRY_KEYS)})")
    for key in ("name", "url"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ArchiveError(f"{where}: {key} must be a non-empty string")
    if "/" in raw["name"] or raw["name"].startswith("."):
        raise ArchiveError(f"{where}: name {raw['name']!r} must be a plain file name")
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ArchiveError(f"{where}: size must be a positive integer or null, got {size!r}")
    for key, length in (("md5", 32), ("sha256", 64)):
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) and re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", value)):
            raise ArchiveError(f"{where}: {key} must be {length} hex digits or null, got {value!r}")
    extract_to = raw.get("extract_to")
    if extract_to is not None and (not isinstance(extract_to, str) or ".." in Path(extract_to).parts
                                   or Path(extract_to).is_absolute()):
        raise ArchiveError(f"{where}: extract_to must be a relative folder inside the target, got {extract_to!r}")
    return ArchiveEntry(**{k: raw.get(k) for k in _ENTRY_KEYS})


def _pin(entry: ArchiveEntry, lock: Path | None) -> dict | None:
    """The lock file's record of an entry without a published checksum (``None`` when there is none)."""
    if lock is None or entry.md5 is not None or entry.sha256 is not None:
        return None
    return read_lock(lock).get(entry.name)


def _download(entry: ArchiveEntry, dest: Path, settings: DownloadSettings | None, lock: Path | None):
    unverified = entry.md5 is None and entry.sha256 is None
    pinned = _pin(entry, lock)
    sha256 = pinned["sha256"] if pinned is not None else entry.sha256
    result = download_file(entry.url, dest, md5=entry.md5, sha256=sha256, size=entry.size, settings=settings)
    if unverified and lock is not None and pinned is None:
        record_lock(lock, entry.name, result, entry.url)
    return result


def _same_archive(record: Mapping, entry: ArchiveEntry, lock: Path | None) -> bool | None:
    """Whether the archive an extraction marker records is the one ``entry`` (or its pinned
    sha256) expects; ``None`` for markers written before checksums were recorded."""
    if not {"md5", "sha256"} <= set(record):
        return None
    pinned = _pin(entry, lock)
    expected = {"size": entry.size, "md5": entry.md5,
                "sha256": pinned["sha256"] if pinned is not None else entry.sha256}
    return all(value is None or record.get(key) == (value.lower() if isinstance(value, str) else value)
               for key, value in expected.items())


def _own_folders(record: Mapping, marker: Path, dest: Path, extract_to: str) -> list[str]:
    """The folders of an earlier extraction into ``dest`` that can be removed without touching other data.

    Kept: ``dest`` itself ('.'), anything outside ``dest`` or reached through a link, and folders
    holding a folder another marker lists for the same ``extract_to`` (markers without one count as
    sharing it), as removing them would delete another archive's files.
    """
    others = []
    for path in marker.parent.glob("*.json"):
        if path == marker:
            continue
        try:
            other = json.loads(path.read_text(encoding="utf-8"))
            if other.get("extract_to", extract_to) == extract_to:
                others += [PurePosixPath(f).parts for f in other["folders"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # an unreadable marker: its archive is extracted again when fetched
    root = dest.resolve()
    own = []
    for folder in record["folders"]:
        parts = PurePosixPath(folder).parts
        path = dest.joinpath(*parts)
        if (not parts or ".." in parts or PurePosixPath(folder).is_absolute() or path.is_symlink()
                or root not in path.resolve().parents):
            continue
        if not any(other[:len(parts)] == parts for other in others):
            own.append("/".join(parts))
    return own


def _remove_folders(dest: Path, folders: Sequence[str]) -> None:
    """Delete ``folders`` under ``dest`` (those already gone are fine)."""
    for folder in folders:
        try:
            shutil.rmtree(dest / folder)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ExtractionError(f"{dest / folder}: cannot remove the data of the older archive ({exc})") from exc


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"[A-Za-z]:", normalised):
        raise ExtractionError(f"{archive}: refusing absolute member path {name!r}")
    parts = tuple(p for p in normalised.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ExtractionError(f"{archive}: refusing member {name!r} that points outside the target ('..')")
    return parts


def _check_tar_end(tf: tarfile.TarFile) -> None:
    """Raise ``tarfile.ReadError`` unless the members end at the end-of-archive marker (two
    zero blocks, then zero padding) and the whole stream decompresses (its checksum too):
    ``tarfile`` reads a damaged header after the first member, or a cut at a member boundary,
    as the end of a shorter archive, which would be extracted as if complete."""
    tf.fileobj.seek(tf.offset)
    zeros = 0
    while chunk := tf.fileobj.read(1 << 20):
        if chunk.count(0) != len(chunk):
            raise tarfile.ReadError("data after the last readable member (a damaged member header)")
        zeros += len(chunk)
    if zeros < 2 * tarfile.BLOCKSIZE:
        raise tarfile.ReadError("no end-of-archive marker after the last member (truncated)")


def _members(archive: Path) -> list[tuple[tuple[str, ...], object, bool]]:
    """Checked members as (path parts, archive member, is_dir); raises before any write."""
    checked = []
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise ExtractionError(f"{archive}: corrupt zip archive ({exc})") from exc
        for info in infos:
            parts = _safe_parts(info.filename, archive)
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                raise ExtractionError(f"{archive}: refusing symbolic link member {info.filename!r}")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise ExtractionError(f"{archive}: refusing special file member {info.filename!r}")
            if parts:
                checked.append((parts, info, info.is_dir()))
    elif tarfile.is_tarfile(archive):
        try:
            with tarfile.open(archive) as tf:
                infos = tf.getmembers()
                _check_tar_end(tf)
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise ExtractionError(f"{archive}: corrupt tar archive ({exc})") from exc
        for info in infos:
            parts = _safe_parts(info.name, archive)
            if info.issym() or info.islnk():
                raise ExtractionError(f"{archive}: refusing link member {info.name!r} -> {info.linkname!r}")
            if not (info.isreg() or info.isdir()):
                raise ExtractionError(f"{archive}: refusing special file member {info.name!r}")
            if parts:
                checked.append((parts, info, info.isdir()))
    else:
        raise ExtractionError(f"{archive}: not a zip or tar archive")
    return checked


def _write_members(archive: Path, members: list, tmp: Path) -> None:
    total = sum(getattr(m, "file_size", getattr(m, "size", 0)) for _, m, is_dir in members if not is_dir)
    is_zip = zipfile.is_zipfile(archive)
    opener = zipfile.ZipFile(archive) if is_zip else tarfile.open(archive)
    try:
        with opener as container, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                       desc=f"extract {archive.name}", disable=None, leave=False) as bar:
            for parts, member, is_dir in members:
                target = tmp.joinpath(*parts)
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = container.open(member) if is_zip else container.extractfile(member)
                with source as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                bar.update(target.stat().st_size)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ExtractionError(f"{archive}: corrupt archive ({exc}); delete it and download again") from exc
    except NotImplementedError as exc:
        raise ExtractionError(f"{archive}: cannot extract: the archive uses a compression method this Python "
                              f"lacks ({exc})") from exc
    except OSError as exc:
        raise ExtractionError(f"{getattr(exc, 'filename', None) or tmp}: cannot extract {archive.name} "
                              f"({exc.strerror or exc})") from exc


def _merge_move(src: Path, dst: Path) -> None:
    """Move the tree ``src`` into ``dst``, merging folders and replacing files."""
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        try:
            if entry.is_dir() and target.is_dir() and not target.is_symlink():
                _merge_move(entry, target)
            elif entry.is_dir() != target.is_dir() and target.exists():
                raise ExtractionError(f"{target}: exists as a {'folder' if target.is_dir() else 'file'}, "
                                      "the archive has the other; move it away and run again")
            else:
                os.replace(entry, target)
        except OSError as exc:
            raise ExtractionError(f"{target}: cannot move extracted data into place ({exc})") from exc
