"""Audio input and output: float32 mono at 16 kHz in memory, PCM-16 WAV on disk.

Every failure names the file: unreadable, empty, truncated, non-finite, or at
an unexpected sample rate (unless resampling is asked for).
"""

from __future__ import annotations

import os
from math import gcd
from pathlib import Path

import numpy as np
import scipy
import soundfile as sf

from asdlib.fileio import atomic_path

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """An audio file or array cannot be used; the message names it."""


def read_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = SAMPLE_RATE,
    channel: int = 0,
    resample: bool = False,
    num_samples: int | None = None,
) -> np.ndarray:
    """Read one channel of an audio file as float32.

    PCM samples come scaled into [-1, 1); a float file's samples come as stored, which
    may exceed full scale (only non-finite values are refused).

    ``channel`` picks a channel of a multichannel file (ignored for mono files).
    A file at another sample rate is an error unless ``resample`` is true, in
    which case it is converted with a polyphase filter. ``num_samples`` crops
    or zero-pads the result to that length.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    if info.frames == 0:
        raise AudioError(f"{path}: empty audio file (0 samples)")
    if info.format in ("WAV", "WAVEX", "RF64"):
        _check_wav_complete(path)
    if info.channels == 1:
        channel = 0
    elif not 0 <= channel < info.channels:
        raise AudioError(f"{path}: channel {channel} requested but the file has {info.channels} channels")
    if info.samplerate != sample_rate and not resample:
        raise AudioError(
            f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz "
            "(to convert it: corpus.resample in params.yaml, --resample for asd)"
        )
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"{path}: truncated or corrupt audio data ({exc})") from exc
    if data.shape[0] < info.frames:
        raise AudioError(f"{path}: truncated: header says {info.frames} samples, read {data.shape[0]}")
    x = np.ascontiguousarray(data[:, channel])
    if rate != sample_rate:
        x = resample_to(x, rate, sample_rate)
    check_finite(x, str(path))
    if num_samples is not None:
        x = crop_or_pad(x, num_samples)
    return x


def channel_count(path: str | os.PathLike) -> int:
    """Channel count of an audio file, from its header; 1 for an unreadable file (reading it
    with :func:`read_audio` names the problem), so callers can ask before deciding."""
    try:
        return sf.info(str(path)).channels
    except (RuntimeError, sf.LibsndfileError):
        return 1


def _check_wav_complete(path: Path) -> None:
    """Compare the data chunk's declared size with the bytes really present (RIFF WAVE,
    WAVE_FORMAT_EXTENSIBLE included, and RF64, whose real size is in its ``ds64`` chunk).

    libsndfile quietly reads what is there, so a copy cut short would pass. A data size
    of 0xFFFFFFFF without a ``ds64`` chunk (a streamed file whose writer never knew the
    length) is not checked.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            return
        offset, ds64_data_size = 12, None
        while offset + 8 <= size:
            fh.seek(offset)
            chunk = fh.read(8)
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"ds64":  # 64-bit RIFF size, then 64-bit data size
                ds64_data_size = int.from_bytes(fh.read(16)[8:16], "little")
            if chunk[:4] == b"data":
                if declared == 0xFFFFFFFF:
                    declared = ds64_data_size
                present = size - offset - 8
                if declared is not None and declared > present:
                    raise AudioError(
                        f"{path}: truncated: data chunk declares {declared} bytes, file holds {present}"
                    )
                return
            offset += 8 + declared + (declared & 1)


def resample_to(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling between integer rates (anti-aliased)."""
    if rate_in == rate_out:
        return x.astype(np.float32, copy=False)
    g = gcd(int(rate_in), int(rate_out))
    return scipy.signal.resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def crop_or_pad(x: np.ndarray, num_samples: int) -> np.ndarray:
    """Keep the first ``num_samples`` samples, zero-padding at the end if shorter."""
    if len(x) >= num_samples:
        return x[:num_samples]
    return np.pad(x, (0, num_samples - len(x)))


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise :class:`AudioError` naming ``name`` if ``x`` holds NaN or inf."""
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise AudioError(f"{name}: {bad} NaN or infinite samples")


def write_wav(path: str | os.PathLike, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write PCM-16 WAV atomically (temporary file in the same folder, then rename).

    Samples outside [-1, 1] are an error rather than silently clipped.
    """
    path = Path(path)
    x = np.asarray(x)
    check_finite(x, str(path))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        raise AudioError(f"{path}: peak {peak:.3f} exceeds full scale; scale the signal first")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), x, sample_rate, subtype="PCM_16", format="WAV")
