"""Noisy mixtures at chosen SNRs, stored in HDF5 shards per machine type and condition.

SNR is defined over the whole clip: 10*log10(P_signal / P_noise); the achieved
SNR of every mixture is measured on the stored float32 arrays and kept next to
the target (they agree to ~1e-5 dB). The noise type and segment of each mixture
are drawn from a hash of (seed, clip id, condition), so the choice does not
depend on processing order or worker count. A noise segment running past the
end of its noise wraps around with an equal-power crossfade of ``crossfade_ms``
(default 50 ms), never a silent gap or a jump. A noise with a silent stretch
that a mixture's segment falls into is an error naming the clip, the noise and
the offset (a silent segment gives no finite SNR).

Mixtures are stored as float32 without clipping: a loud mixture may exceed full
scale (nothing downstream needs PCM; ``asdlib.audio.write_wav`` refuses to clip
if one is ever exported). A silent clean clip (power 0: SNR undefined) is left
out of every condition with a logged warning naming it; NaN or infinite samples
are an error naming the clip and its file.

Only the calling process writes: workers return arrays, shards are built with
``asdlib.store.ShardBuilder`` (resumable part files under ``work_dir``, atomic
publication), so a killed run resumes and ends with the same bytes. The part
files are keyed by everything a clip's audio depends on (settings, noise bank,
each source's file, ``num_samples`` and ``channel``, the reader's fields), so a
rerun after any of them changed starts those shards afresh.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field, is_dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from asdlib.audio import SAMPLE_RATE, check_finite
from asdlib.config import to_dict
from asdlib.conditions import parse_condition
from asdlib.manifest import read_clip, read_length
from asdlib.noise_bank import NoiseBankError, noise_bank_identity, noise_bank_names, read_noise_bank
from asdlib.parallel import ParallelSettings, parallel_map
from asdlib.store import ShardBuilder, ShardReader, fingerprint

log = logging.getLogger(__name__)
ReadClip = Callable[[pd.Series], np.ndarray]
BATCH = 8  # clips per worker task
PART_SIZE = 32  # clips per resumable part file


@dataclass(frozen=True)
class MixSettings:
    """conditions: 'clean' and SNRs like '-6dB'. splits: manifest splits to mix.
    noise_names: noises of the bank to draw from (empty: all). crossfade_ms:
    overlap when a noise is looped."""

    conditions: list[str] = field(default_factory=lambda: ["clean", "-6dB", "0dB", "6dB"])
    splits: list[str] = field(default_factory=lambda: ["train", "test"])
    seed: int = 11
    noise_names: list[str] = field(default_factory=list)
    crossfade_ms: float = 50.0
    compression: int = 4

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError("conditions must list at least one condition")
        for condition in self.conditions:
            parse_condition(condition)
        if len(set(self.conditions)) != len(self.conditions):
            raise ValueError(f"conditions has duplicates: {self.conditions}")
        if not self.splits:
            raise ValueError("splits must list at least one split")
        if not 0 <= self.crossfade_ms <= 1000:
            raise ValueError(f"crossfade_ms must be in [0, 1000], got {self.crossfade_ms}")
        if not 0 <= self.compression <= 9:
            raise ValueError(f"compression must be in 0..9, got {self.compression}")


@dataclass(frozen=True)
class ClipReader:
    """Reads a manifest row's clip (``asdlib.manifest.read_clip``) in the workers.

    A frozen dataclass rather than a ``partial``: it pickles, and its fields (what the
    audio depends on beyond the row) enter the resume fingerprint of the shards.
    """

    resample: bool = False

    def __call__(self, row: Mapping) -> np.ndarray:
        return read_clip(row, resample=self.resample)


class MixError(ValueError):
    """A mixture cannot be made; the message names the clip, the condition and the noise."""


def power(x: np.ndarray) -> float:
    """Mean square in float64."""
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, float]:
    """``clean`` plus ``noise`` scaled to ``snr_db``; returns (mixture, achieved SNR in dB).

    The achieved SNR is measured on the float32 arrays returned: ``clean`` against
    ``mixture - clean``, the noise the mixture really contains after rounding.
    """
    clean = np.asarray(clean, dtype=np.float32)
    p_clean, p_noise = power(clean), power(noise)
    if p_clean == 0.0:
        raise ValueError("silent clean signal: SNR undefined")
    if p_noise == 0.0:
        raise ValueError("silent noise segment: cannot reach a finite SNR")
    gain = np.sqrt(p_clean / (p_noise * 10.0 ** (snr_db / 10.0)))
    mixture = (clean + (noise.astype(np.float64) * gain).astype(np.float32)).astype(np.float32)
    achieved = 10.0 * np.log10(p_clean / power(mixture.astype(np.float64) - clean))
    return mixture, float(achieved)


def noise_segment(noise: np.ndarray, n: int, offset: int, crossfade: int) -> np.ndarray:
    """``n`` samples of ``noise`` from ``offset``, looping with an equal-power crossfade.

    A segment that stays inside the noise is the noise itself. One that runs past
    the end plays ``noise[offset:L - crossfade]`` and then the loop cycle (period
    ``L - crossfade``: the last ``crossfade`` samples fading out over the first
    ``crossfade`` fading in, then the rest). An offset inside the last ``crossfade``
    samples starts inside the cycle's fade, so every wrap has the full crossfade.
    A segment ending before a wrap's fade is complete ends on the plain tail.
    """
    if offset + n <= len(noise):
        return noise[offset:offset + n]
    crossfade = min(crossfade, len(noise) // 2)
    period = len(noise) - crossfade
    fade = np.sin(0.5 * np.pi * (np.arange(crossfade) + 0.5) / max(crossfade, 1)).astype(np.float32)
    cycle = np.array(noise[:period], dtype=np.float32)
    cycle[:crossfade] = noise[period:].astype(np.float32) * fade[::-1] + noise[:crossfade] * fade
    out = np.empty(n, dtype=np.float32)
    lead = noise[offset:period]  # empty when the offset lies in the last crossfade
    out[:len(lead)] = lead
    phase = max(offset - period, 0)
    end = phase + n - len(lead)  # where the segment ends in the unrolled cycle
    out[len(lead):] = np.take(cycle, np.arange(phase, end), mode="wrap")
    in_last_fade = end - (end - 1) // period * period
    if in_last_fade <= crossfade:  # no wrap follows that fade: the noise's tail, unfaded
        out[n - in_last_fade:] = noise[period:period + in_last_fade]
    return out


def offset_span(length: int, n: int) -> int:
    """How many start offsets a segment of ``n`` samples is drawn from in a noise of ``length``.

    A noise longer than the segment: ``length - n`` (the last start, ``length - n``, is
    never drawn; drawing it would change every mixture made so far). A noise not
    longer than the segment loops anyway, so every sample of it can be the start.
    """
    return length - n if length > n else length


def choose_noise(clip_id: str, condition: str, seed: int, lengths: dict[str, int], n: int) -> tuple[str, int]:
    """Noise type and start offset for one mixture, from a hash of its identity."""
    digest = hashlib.sha256(f"{seed}|{clip_id}|{condition}".encode()).digest()
    names = sorted(lengths)
    name = names[int.from_bytes(digest[:8], "little") % len(names)]
    offset = int.from_bytes(digest[8:16], "little") % offset_span(lengths[name], n)
    return name, offset


def mix_with_noise(clean: np.ndarray, noise: np.ndarray, offset: int, snr_db: float, crossfade: int,
                   what: str) -> tuple[np.ndarray, float]:
    """``mix_at_snr`` of ``clean`` with the noise segment from ``offset``.

    A segment that is silent (a silent stretch in an otherwise usable noise) is a
    :class:`MixError` starting with ``what`` (which mixture, which noise) and the offset.
    """
    segment = noise_segment(noise, len(clean), offset, crossfade)
    if power(segment) == 0.0:
        raise MixError(f"{what}: the noise is silent over the {len(clean)} samples from offset {offset} "
                       "(a silent stretch in the noise file; trim or replace it)")
    return mix_at_snr(clean, segment, snr_db)


def build_mixtures(manifest: pd.DataFrame, noise_dir: Path, out_dir: Path, work_dir: Path,
                   settings: MixSettings, parallel: ParallelSettings,
                   read_clip: ReadClip = ClipReader()) -> pd.DataFrame:
    """Mix every clip of the chosen splits at every condition; return the mixture manifest.

    Shards: ``out_dir/<machine_type>/<condition>.h5`` (the ``clean`` condition holds
    the clean clip itself, so every later stage reads mixtures the same way).
    ``read_clip(row)`` reads a corpus clip (it runs in the workers, so it must be
    picklable); the resume fingerprint holds its fields when it is a dataclass
    (:class:`ClipReader`), so any other reader must depend on the row alone.
    Silent clips are left out with a logged warning.
    """
    names = _noise_names(noise_dir, settings.noise_names)
    bank_identity = noise_bank_identity(noise_dir, names)
    identity = [to_dict(settings), bank_identity, _reader_identity(read_clip)]
    job = _MixJob(str(noise_dir), names, settings, read_clip, bank_key=fingerprint(bank_identity))
    rows = manifest[manifest["split"].isin(settings.splits)]
    if rows.empty:
        raise ValueError(f"no clips in splits {settings.splits}")
    return _run_shards(rows, list(settings.conditions), job, Path(out_dir), Path(work_dir), identity,
                       parallel, "mixing")


def store_native(manifest: pd.DataFrame, out_dir: Path, work_dir: Path, settings: MixSettings,
                 parallel: ParallelSettings, read_clip: ReadClip = ClipReader()) -> pd.DataFrame:
    """For corpora recorded noisy (MIMII: rows carry ``condition`` and ``snr_db``): store each
    clip as it is, under its own condition, with the same manifest columns as mixtures
    (``read_clip`` as for :func:`build_mixtures`)."""
    rows = manifest[manifest["split"].isin(settings.splits)]
    absent = sorted(set(settings.conditions) - set(rows["condition"]))
    if absent:
        raise ValueError(f"conditions {absent} are not in this corpus (it has {sorted(set(rows['condition']))})")
    frames = []
    for condition, group in rows[rows["condition"].isin(settings.conditions)].groupby("condition", sort=True):
        job = _MixJob("", (), settings, read_clip, native=True)
        identity = [to_dict(settings), "native", _reader_identity(read_clip)]
        mixed = _run_shards(group.drop(columns=["condition", "snr_db"]), [str(condition)], job,
                            Path(out_dir), Path(work_dir), identity, parallel, f"storing {condition}")
        mixed["snr_db"] = mixed["source_clip_id"].map(group.set_index("clip_id")["snr_db"])
        mixed["snr_target_db"] = mixed["snr_db"]
        frames.append(mixed)
    return pd.concat(frames, ignore_index=True)


def _noise_names(noise_dir: Path, chosen: list[str]) -> tuple[str, ...]:
    """The noises to draw from: ``chosen`` (each must be in the bank), else the whole bank."""
    available = noise_bank_names(noise_dir)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise NoiseBankError(f"noise_names lists {unknown}, not in the noise bank {noise_dir} "
                             f"(it has: {', '.join(available) or 'no noises'})")
    return tuple(chosen) or tuple(available)


def _reader_identity(read_clip: ReadClip) -> Any:
    """What the resume fingerprint records of a clip reader: a dataclass's fields, else nothing."""
    if is_dataclass(read_clip) and not isinstance(read_clip, type):
        return [type(read_clip).__qualname__, to_dict(read_clip)]
    return None


@dataclass(frozen=True)
class _MixJob:
    """What a worker needs (picklable): where the noise bank is and which version of it
    (``bank_key``), the settings, the clip reader."""

    noise_dir: str
    names: tuple[str, ...]
    settings: MixSettings
    read_clip: ReadClip
    native: bool = False
    bank_key: str = ""


_banks: dict[tuple[str, tuple[str, ...], str], dict[str, np.ndarray]] = {}


def _bank(job: _MixJob) -> dict[str, np.ndarray]:
    """The noise bank, read once per worker process and again when its files changed
    (``bank_key``, their digest); only the latest bank is kept."""
    key = (job.noise_dir, job.names, job.bank_key)
    if key not in _banks:
        _banks.clear()
        _banks[key] = read_noise_bank(job.noise_dir, job.names)
    return _banks[key]


def _mix_batch(task: tuple[_MixJob, list[dict], list[str]]) -> list[tuple[str, dict | None]]:
    """Worker: each clip of the batch at every condition: {condition: (audio, attrs)}, None if silent."""
    job, records, conditions = task
    out: list[tuple[str, dict | None]] = []
    for record in records:
        clean = job.read_clip(pd.Series(record))
        check_finite(clean, f"clip {record['clip_id']} ({record['path']})")
        if power(clean) == 0.0:
            out.append((record["clip_id"], None))
            continue
        out.append((record["clip_id"], {c: _mix_one(job, record["clip_id"], clean, c) for c in conditions}))
    return out


def _mix_one(job: _MixJob, clip_id: str, clean: np.ndarray, condition: str) -> tuple[np.ndarray, dict]:
    snr = None if job.native else parse_condition(condition)
    attrs: dict = {"source_clip_id": clip_id, "condition": condition}
    if snr is None:
        return clean.astype(np.float32), attrs
    bank = _bank(job)
    name, offset = choose_noise(clip_id, condition, job.settings.seed, {k: len(v) for k, v in bank.items()},
                                len(clean))
    crossfade = int(round(job.settings.crossfade_ms * SAMPLE_RATE / 1000.0))
    what = f"clip {clip_id} at {condition}, noise {name} ({job.noise_dir})"
    mixture, achieved = mix_with_noise(clean, bank[name], offset, snr, crossfade, what)
    attrs.update(noise_type=name, noise_offset=offset, snr_target_db=snr, snr_db=round(achieved, 6))
    return mixture, attrs


def _run_shards(rows: pd.DataFrame, conditions: list[str], job: _MixJob, out_dir: Path, work_dir: Path,
                identity: list, parallel: ParallelSettings, desc: str) -> pd.DataFrame:
    """Compute every (clip, condition); write a shard per (type, condition); return the mixture rows."""
    builders: dict[tuple[str, str], ShardBuilder] = {}
    for machine_type, group in rows.groupby("machine_type", sort=True):
        sources = [_source_identity(row) for row in group.to_dict("records")]
        for condition in conditions:
            builders[(machine_type, condition)] = ShardBuilder(
                out_dir / machine_type / f"{condition}.h5", fingerprint(identity, condition, sources),
                work_dir / machine_type, part_size=PART_SIZE)
    done_keys = {key for builder in builders.values() for key in builder.done_keys()}
    todo = rows[[not all(f"{cid}@{c}" in done_keys for c in conditions) for cid in rows["clip_id"]]]
    types = dict(zip(rows["clip_id"], rows["machine_type"]))
    tasks = list(_batches(todo, conditions, job))
    silent: set[str] = set()
    try:
        for batch in parallel_map(_mix_batch, tasks, parallel, desc=desc, total=len(tasks)):
            for clip_id, mixes in batch:
                if mixes is None:
                    log.warning("clip %s is silent (SNR undefined): left out of the mixtures", clip_id)
                    silent.add(clip_id)
                    continue
                for condition, (audio, attrs) in mixes.items():
                    builders[(types[clip_id], condition)].add(f"{clip_id}@{condition}", audio, attrs)
    finally:
        for builder in builders.values():
            builder.flush()  # a failed or killed run keeps every clip it finished, for the rerun
    kept = rows[~rows["clip_id"].isin(silent)]
    if kept.empty:
        raise MixError(f"all {len(rows)} clips are silent (power 0: SNR undefined), nothing to store; "
                       f"e.g. {rows['clip_id'].iloc[0]} ({rows['path'].iloc[0]})")
    for (machine_type, condition), builder in builders.items():
        ids = kept.loc[kept["machine_type"] == machine_type, "clip_id"]
        builder.finish([f"{cid}@{condition}" for cid in ids], compression=job.settings.compression)
    return _mixture_rows(kept, conditions, builders)


def _batches(rows: pd.DataFrame, conditions: list[str], job: _MixJob) -> Iterator[tuple]:
    records = iter(rows.to_dict("records"))
    while batch := list(islice(records, BATCH)):
        yield job, batch, conditions


def _source_identity(row: Mapping) -> tuple:
    """What a clip's audio depends on in its manifest row, for resuming: clip id, file (path,
    size, modification time) and the ``num_samples`` and ``channel`` it is read with."""
    info = os.stat(row["path"])
    return (row["clip_id"], row["path"], info.st_size, info.st_mtime_ns, read_length(row),
            int(row["channel"]))


def _mixture_rows(rows: pd.DataFrame, conditions: list[str],
                  builders: dict[tuple[str, str], ShardBuilder]) -> pd.DataFrame:
    """One manifest row per mixture, with the provenance stored in the shards."""
    frames = []
    for (machine_type, condition), builder in sorted(builders.items()):
        group = rows[rows["machine_type"] == machine_type]
        if group.empty:
            continue
        with ShardReader(builder.path) as reader:
            attrs = [reader.attrs(f"{cid}@{condition}") for cid in group["clip_id"]]
        frame = group.copy()
        frame["source_clip_id"] = group["clip_id"]
        frame["clip_id"] = [f"{cid}@{condition}" for cid in group["clip_id"]]
        frame["condition"] = condition
        frame["snr_target_db"] = [a.get("snr_target_db", np.nan) for a in attrs]
        frame["snr_db"] = [a.get("snr_db", np.nan) for a in attrs]
        frame["noise_type"] = [a.get("noise_type", "") for a in attrs]
        frame["noise_offset"] = [a.get("noise_offset", -1) for a in attrs]
        frame["store"] = str(builder.path)
        frame["key"] = frame["clip_id"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True).sort_values("clip_id", kind="stable").reset_index(drop=True)
