"""What a corpus must hold beyond its layout, checked before hours of work are spent on it.

:func:`check_corpus` reads the header of every clip of a manifest (no samples: cheap) and
sorts what it finds in two:

- unusable: files no reader can use: not audio, empty, or without the manifest's channel;
- pipeline: what the pipeline's later stages refuse, so far only in training or evaluation:
  a sample rate other than 16 kHz (unless resampling), clips of several lengths where the
  manifest fixes none (the SNR estimator and STgram-MFN take clips of one length), a machine
  ID of a test or eval split without training clips (a detector knows the IDs it trained
  on), and an ID whose labelled clips in a split all have one label (its AUC is undefined;
  ``unknown``, the label of evaluation clips without a ground truth, is not checked).

:func:`content_identity` digests the files a corpus is read from, so that a description
holding it changes when any of them does.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Callable, NamedTuple, Sequence, TypeVar

import pandas as pd
import soundfile as sf

from asdlib.audio import SAMPLE_RATE
from asdlib.corpora.dcase_layout import MAX_EXAMPLES, absolute
from asdlib.manifest import read_length
from asdlib.parallel import usable_cores
from asdlib.progress import progress_bar
from asdlib.store import file_digest

T = TypeVar("T")
R = TypeVar("R")


class Header(NamedTuple):
    """What an audio file's header says: its length, rate and channel count."""

    frames: int
    sample_rate: int
    channels: int


class CorpusError(ValueError):
    """A corpus's clips break what the pipeline needs; the message names files and fixes."""


@dataclass(frozen=True)
class CorpusProblems:
    """One line per kind of problem (with up to five files): ``unusable`` ones no reader gets
    past, ``pipeline`` ones only the pipeline refuses."""

    unusable: list[str]
    pipeline: list[str]

    def raise_if_any(self, source: str, *, pipeline: bool = True) -> None:
        """Raise one :class:`CorpusError` naming ``source`` and every problem (the unusable
        ones only, when ``pipeline`` is false)."""
        lines = self.unusable + (self.pipeline if pipeline else [])
        if lines:
            raise CorpusError(f"{source}: corpus problems: " + "; ".join(lines))


def check_corpus(manifest: pd.DataFrame, *, resample: bool = False,
                 path_base: Path | None = None) -> CorpusProblems:
    """Check the clips of ``manifest`` (see the module docstring); relative paths are taken
    from ``path_base`` (default: the working folder). Files are named as the manifest has them."""
    base = absolute(path_base if path_base is not None else Path.cwd())
    names = manifest["path"].astype(str).tolist()
    headers = _thread_map(_read_header, [base / name for name in names], "clip headers", usable_cores())
    rows = manifest.to_dict("records")
    unusable = [line for line in (_unreadable(names, headers), _missing_channel(names, headers, rows)) if line]
    pipeline = [
        "" if resample else _off_rate(names, headers),
        _several_lengths(names, headers, rows),
        _untrained_ids(manifest),
        _one_label_ids(manifest),
    ]
    return CorpusProblems(unusable, [line for line in pipeline if line])


def _read_header(path: Path) -> Header | str:
    """The header of an audio file, or why it is no usable audio file."""
    try:
        info = sf.info(str(path))
    except RuntimeError as exc:  # libsndfile's errors, e.g. "Format not recognised."
        return getattr(exc, "error_string", str(exc))
    if info.frames == 0:
        return "0 samples"
    return Header(info.frames, info.samplerate, info.channels)


def _unreadable(names: list[str], headers: list[Header | str]) -> str:
    """Files whose header cannot be read, with libsndfile's reason."""
    return _kind("files that are not readable audio (replace or remove them)",
                 [f"{n} ({h})" for n, h in zip(names, headers) if isinstance(h, str)])


def _missing_channel(names: list[str], headers: list[Header | str], rows: list[dict]) -> str:
    """Multichannel files without the row's channel (a mono file is read whatever it asks)."""
    return _kind("files without the channel asked for (corpus.channel in params.yaml, --channel for asd)",
                 [f"{n} (channel {r['channel']}, has {h.channels})" for n, h, r in zip(names, headers, rows)
                  if isinstance(h, Header) and 1 < h.channels <= int(r["channel"])])


def _off_rate(names: list[str], headers: list[Header | str]) -> str:
    """Files at another rate than 16 kHz (the wording of :func:`asdlib.audio.read_audio`'s error)."""
    return _kind(f"files at a sample rate other than {SAMPLE_RATE} Hz "
                 "(to convert them: corpus.resample in params.yaml, --resample for asd)",
                 [f"{n} ({h.sample_rate} Hz)" for n, h in zip(names, headers)
                  if isinstance(h, Header) and h.sample_rate != SAMPLE_RATE])


def _several_lengths(names: list[str], headers: list[Header | str], rows: list[dict]) -> str:
    """Clips read at another length than most: each is read at its ``num_samples`` where the
    manifest gives one, else at its own length (at 16 kHz, once resampled)."""
    lengths = {i: read_length(rows[i]) or _resampled_length(h) for i, h in enumerate(headers)
               if isinstance(h, Header)}
    if not lengths:
        return ""
    common, count = Counter(lengths.values()).most_common(1)[0]
    return _kind(f"clips of another length than the {common} samples ({common / SAMPLE_RATE:g} s) of the "
                 f"other {count} (the SNR estimator and STgram-MFN need one length: corpus.clip_seconds "
                 "in params.yaml crops or zero-pads every clip to it)",
                 [f"{names[i]} ({n} samples)" for i, n in lengths.items() if n != common])


def _resampled_length(header: Header) -> int:
    """Samples of the file at 16 kHz (as :func:`asdlib.audio.resample_to` gives them)."""
    g = gcd(header.sample_rate, SAMPLE_RATE)
    return -(-header.frames * (SAMPLE_RATE // g) // (header.sample_rate // g))


def _untrained_ids(manifest: pd.DataFrame) -> str:
    """Machines of a test or eval split without normal training clips, one file of each named."""
    keys = _id_columns(manifest)
    trained = set(manifest.loc[_training(manifest), keys].itertuples(index=False, name=None))
    scored = manifest[manifest["split"] != "train"]
    return _kind("machine IDs with test or eval clips but no training clips (a detector knows the IDs "
                 "it trained on: add their training clips or remove their other clips; DCASE 2020 "
                 "evaluation IDs train on the subset additional, corpus.dcase2020_subsets)",
                 [f"{' '.join(key)} ({group['path'].iloc[0]})" for key, group in scored.groupby(keys, sort=True)
                  if key not in trained])


def _one_label_ids(manifest: pd.DataFrame) -> str:
    """Machines whose labelled clips of a test or eval split have one label only."""
    labelled = manifest[(manifest["split"] != "train") & (manifest["label"] != "unknown")]
    examples = []
    for key, group in labelled.groupby(_id_columns(manifest) + ["split"], sort=True):
        labels = set(group["label"])
        if len(labels) == 1:
            examples.append(f"{' '.join(key)}: {labels.pop()} only ({group['path'].iloc[0]})")
    return _kind("machine IDs whose clips of a split are all normal or all anomalous (their AUC is "
                 "undefined: add clips of the other label or remove the ID's clips of that split)", examples)


def _id_columns(manifest: pd.DataFrame) -> list[str]:
    """What identifies a machine a detector learns: type and ID, per recorded level for a
    corpus recorded noisy (each level is trained on its own)."""
    return ["machine_type", "machine_id"] + (["condition"] if "condition" in manifest.columns else [])


def _training(manifest: pd.DataFrame) -> pd.Series:
    """The rows detectors train on: normal clips of split train."""
    return (manifest["split"] == "train") & (manifest["label"] == "normal")


def _kind(what: str, examples: list[str]) -> str:
    """'what (count): a, b, c, d, e (and N more)', or '' when there are no examples."""
    if not examples:
        return ""
    more = f" (and {len(examples) - MAX_EXAMPLES} more)" if len(examples) > MAX_EXAMPLES else ""
    return f"{what} ({len(examples)}): {', '.join(examples[:MAX_EXAMPLES])}{more}"


def content_identity(root: Path, files: Sequence[Path], workers: int) -> dict[str, int | str]:
    """``{"files": count, "sha256": digest}`` of ``files`` (all under ``root``).

    The digest is the sha256 of their ``sha256sum`` lines ``<sha256>  <path relative to
    root>``, sorted by path: the same files at another root give the same identity, a changed,
    added, removed or renamed one another. Files are read by ``workers`` threads.
    """
    base = absolute(root)
    names = [absolute(f).relative_to(base).as_posix() for f in files]
    digests = _thread_map(file_digest, list(files), "corpus digest", workers)
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(zip(names, digests)))
    return {"files": len(names), "sha256": hashlib.sha256(lines.encode()).hexdigest()}


def _thread_map(fn: Callable[[T], R], items: Sequence[T], desc: str, workers: int) -> list[R]:
    """``fn`` of each item, in order, by ``workers`` threads, with a progress bar: for file reads,
    which wait on the disk with the interpreter released (no process start, nothing pickled)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(progress_bar(pool.map(fn, items), total=len(items), desc=desc, unit="file"))
