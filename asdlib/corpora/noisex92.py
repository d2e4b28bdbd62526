"""NOISEX-92: download the 15 recordings and convert them to 16 kHz WAV.

Sources: the ``noisex92`` entries of ``archives.json`` (default: the SPIB copy at
``http://spib.linse.ufsc.br/data/noise/<name>.mat``, see
http://spib.linse.ufsc.br/noise.html); ``mirror=`` or ``manifest=`` point elsewhere
(``.wav`` mirrors work too: list them in a manifest). No checksums are
published, so the sha256 of each file is recorded on first download in
``<target>/noisex92.lock.json``; later downloads must match it. Copy that file
next to a new target (or pass ``lock=``) to pin the exact bytes you used.

Conversion: each recording (about 235 s at 19.98 kHz, 16 bit) is read from
``.mat`` (the one numeric array inside, normally a variable named after the
noise, int16 values) or ``.wav``, scaled to [-1, 1] (int16 values / 32768),
resampled to 16 kHz with ``scipy.signal.resample_poly`` and written as PCM-16
``<out>/<name>.wav``. 16000/19980 reduces exactly to 800/999, so the polyphase
filter (Kaiser window, scipy's default design) uses up=800, down=999 with no
rate approximation. A recording that would clip after the filter's overshoot is
scaled down to peak 0.99 and its ``gain`` is reported.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import resample_poly

from asdlib.audio import SAMPLE_RATE, AudioError, check_finite, write_wav
from asdlib.corpora.archives import ArchiveEntry, corpus_archives, fetch_archive
from asdlib.corpora.dcase_layout import CorpusLayoutError, check_choice
from asdlib.corpora.download import DownloadSettings

NAMES = ("white", "pink", "babble", "factory1", "factory2", "destroyerengine", "destroyerops", "f16",
         "buccaneer1", "buccaneer2", "hfchannel", "leopard", "m109", "machinegun", "volvo")
SOURCE_RATE = 19980
LOCK_NAME = "noisex92.lock.json"
PEAK_LIMIT = 0.99


def resample_ratio(rate_in: int, rate_out: int = SAMPLE_RATE) -> tuple[int, int]:
    """(up, down) of the polyphase resampler: the exact reduced fraction rate_out / rate_in."""
    ratio = Fraction(int(rate_out), int(rate_in))
    return ratio.numerator, ratio.denominator


def noisex92_entries(*, names: Sequence[str] | None = None, mirror: str | None = None,
                     manifest: Path | None = None) -> list[ArchiveEntry]:
    """The files of the chosen recordings (entry ``part`` is the noise name)."""
    chosen = check_choice("NOISEX-92 recording", names, NAMES)
    entries = {e.part: e for e in corpus_archives("noisex92", manifest=manifest, mirror=mirror)}
    missing = [n for n in chosen if n not in entries]
    if missing:
        raise ValueError(f"{manifest or 'archives.json'}: no noisex92 file listed for {', '.join(missing)}")
    return [entries[n] for n in chosen]


def download_noisex92(
    target_dir: Path,
    *,
    names: Sequence[str] | None = None,
    mirror: str | None = None,
    manifest: Path | None = None,
    lock: Path | None = None,
    settings: DownloadSettings | None = None,
) -> Path:
    """Download the recordings into ``target_dir`` (sha256 pinned in the lock file); return it."""
    target_dir = Path(target_dir)
    lock = Path(lock) if lock is not None else target_dir / LOCK_NAME
    for entry in noisex92_entries(names=names, mirror=mirror, manifest=manifest):
        fetch_archive(entry, target_dir, settings=settings, lock=lock)
    return target_dir


def prepare_noisex92(
    source_dir: Path,
    out_dir: Path,
    *,
    names: Sequence[str] | None = None,
    source_rate: int = SOURCE_RATE,
) -> pd.DataFrame:
    """Convert the recordings in ``source_dir`` to ``<out_dir>/<name>.wav`` at 16 kHz.

    ``names=None`` converts every known recording found (at least one must be);
    naming recordings makes each of them required. ``source_rate`` is the rate of
    ``.mat`` files (which carry none); ``.wav`` files use their header's rate.
    Returns a table with columns name, path, duration_s, source, source_rate, gain.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise CorpusLayoutError(f"{source_dir}: NOISEX-92 folder not found")
    sources = {n: _find_source(source_dir, n) for n in check_choice("NOISEX-92 recording", names, NAMES)}
    missing = [n for n, p in sources.items() if p is None]
    if names is not None and missing:
        raise CorpusLayoutError(f"{source_dir}: recordings not found (as .mat or .wav): {', '.join(missing[:5])}")
    found = {n: p for n, p in sources.items() if p is not None}
    if not found:
        raise CorpusLayoutError(f"{source_dir}: no NOISEX-92 recordings found (expected e.g. white.mat, babble.wav)")
    rows = []
    for name, path in found.items():
        x, rate = _read_recording(path, source_rate)
        up, down = resample_ratio(rate)
        y = resample_poly(x, up, down) if (up, down) != (1, 1) else x
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        gain = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
        y = (y * gain).astype(np.float32)
        out = out_dir / f"{name}.wav"
        write_wav(out, y, SAMPLE_RATE)
        rows.append({"name": name, "path": str(out), "duration_s": round(len(y) / SAMPLE_RATE, 6),
                     "source": str(path), "source_rate": rate, "gain": round(gain, 6)})
    return pd.DataFrame(rows, columns=["name", "path", "duration_s", "source", "source_rate", "gain"])


def _find_source(source_dir: Path, name: str) -> Path | None:
    for suffix in (".mat", ".wav"):
        if (source_dir / f"{name}{suffix}").is_file():
            return source_dir / f"{name}{suffix}"
    return None


def _read_recording(path: Path, source_rate: int) -> tuple[np.ndarray, int]:
    """Mono float64 samples in [-1, 1] and their rate."""
    if path.suffix == ".wav":
        try:
            x, rate = sf.read(str(path), dtype="float64", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise AudioError(f"{path}: not a readable WAV file ({exc})") from exc
        x = x[:, 0]
    else:
        x, rate = _read_mat(path), int(source_rate)
    if x.size == 0:
        raise AudioError(f"{path}: empty recording")
    check_finite(x, str(path))
    return x, int(rate)


def _read_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(str(path))
    except (ValueError, OSError, NotImplementedError, MatReadError, IndexError) as exc:
        # an empty file, an error page saved as .mat, ... (IndexError: scipy's reader on non-MATLAB bytes)
        raise AudioError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    arrays = {k: v for k, v in content.items()
              if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "iuf" and v.size > 1}
    preferred = arrays.get(path.stem)
    if preferred is None and len(arrays) != 1:
        raise AudioError(f"{path}: expected one numeric array (or one named {path.stem!r}), "
                         f"found {sorted(arrays) or 'none'}")
    data = preferred if preferred is not None else next(iter(arrays.values()))
    if data.ndim != 2 or min(data.shape) != 1:
        raise AudioError(f"{path}: expected a single-channel vector, got shape {data.shape}")
    x = data.reshape(-1)
    if x.dtype.kind in "iu" or np.max(np.abs(x)) > 1.0:
        return x.astype(np.float64) / 32768.0  # int16 sample values (stored as integers or doubles)
    return x.astype(np.float64)
