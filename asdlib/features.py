"""Log-mel front end in torch (runs on CPU or GPU), with our own mel filterbank.

Both mel scales the project's models were published with are supported:

* STgram-MFN: HTK scale, no filter normalisation (:data:`STGRAM_LOGMEL`, also
  the :class:`LogMelSettings` default);
* DCASE 2020 Task 2 baseline: Slaney scale with Slaney area normalisation
  (:data:`DCASE_BASELINE_LOGMEL`).

The spectrogram is ``|STFT|**power`` with a centred, reflect-padded, periodic-Hann
STFT, so an ``N``-sample clip gives ``1 + N // hop_length`` frames (313 for 10 s at
16 kHz with hop 512). Log-mel values are ``10 * log10(max(mel, eps))`` dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch

MelScale = Literal["htk", "slaney"]
MelNorm = Literal["none", "slaney"]

_SLANEY_F_SP = 200.0 / 3.0  # Hz per mel in the linear part of the Slaney scale
_SLANEY_MIN_LOG_HZ = 1000.0  # where the Slaney scale turns logarithmic
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # = 15 mel
_SLANEY_LOGSTEP = math.log(6.4) / 27.0  # log-Hz per mel above 1 kHz


@dataclass(frozen=True)
class LogMelSettings:
    """STFT and mel filterbank parameters; defaults are STgram-MFN's (HTK, no norm)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    power: float = 2.0
    mel_scale: MelScale = "htk"
    mel_norm: MelNorm = "none"
    f_min: float = 0.0
    f_max: Optional[float] = None  # None = sample_rate / 2
    eps: float = 1e-10

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.win_length > self.n_fft:
            raise ValueError(
                f"win_length must be <= n_fft ({self.n_fft}), got {self.win_length}"
            )
        if not self.power > 0:
            raise ValueError(f"power must be > 0, got {self.power!r}")
        if self.mel_scale not in ("htk", "slaney"):
            raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {self.mel_scale!r}")
        if self.mel_norm not in ("none", "slaney"):
            raise ValueError(f"mel_norm must be 'none' or 'slaney', got {self.mel_norm!r}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        nyquist = self.sample_rate / 2
        if not 0.0 <= self.f_min < nyquist:
            raise ValueError(f"f_min must be in [0, {nyquist}), got {self.f_min!r}")
        if self.f_max is not None and not self.f_min < self.f_max <= nyquist:
            raise ValueError(
                f"f_max must be in (f_min={self.f_min}, {nyquist}], got {self.f_max!r}"
            )

    @property
    def n_freqs(self) -> int:
        """Number of one-sided STFT bins."""
        return self.n_fft // 2 + 1

    @property
    def upper_frequency(self) -> float:
        """``f_max`` with ``None`` resolved to the Nyquist frequency."""
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced by :class:`LogMel` for a clip of ``num_samples`` samples
        (``1 + num_samples // hop_length`` for even ``n_fft``)."""
        return 1 + (num_samples + 2 * (self.n_fft // 2) - self.n_fft) // self.hop_length


STGRAM_LOGMEL = LogMelSettings(mel_scale="htk", mel_norm="none")
"""Front end STgram-MFN was published with (torchaudio MelSpectrogram defaults)."""

@dataclass(frozen=True)
class SlaneyLogMelSettings(LogMelSettings):
    """The DCASE 2020 baseline's front end: Slaney mel scale with area normalisation.

    A subclass rather than an instance default, so a partial ``logmel:`` mapping in
    the parameters (say only ``n_mels``) keeps the Slaney scale.
    """

    mel_scale: MelScale = "slaney"
    mel_norm: MelNorm = "slaney"


DCASE_BASELINE_LOGMEL = SlaneyLogMelSettings()
"""Front end of the DCASE 2020 Task 2 baseline (librosa melspectrogram defaults)."""


def hz_to_mel(freq: torch.Tensor, scale: MelScale) -> torch.Tensor:
    """Frequency in Hz to mel on the HTK or Slaney (Auditory Toolbox) scale."""
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    linear = freq / _SLANEY_F_SP
    log_part = _SLANEY_MIN_LOG_MEL + torch.log(
        torch.clamp(freq, min=_SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ
    ) / _SLANEY_LOGSTEP
    return torch.where(freq >= _SLANEY_MIN_LOG_HZ, log_part, linear)


def mel_to_hz(mel: torch.Tensor, scale: MelScale) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    if scale == "htk":
        return 700.0 * (torch.pow(10.0, mel / 2595.0) - 1.0)
    linear = mel * _SLANEY_F_SP
    log_part = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (mel - _SLANEY_MIN_LOG_MEL))
    return torch.where(mel >= _SLANEY_MIN_LOG_MEL, log_part, linear)


def mel_filterbank(settings: LogMelSettings) -> torch.Tensor:
    """Triangular mel filters as a float32 ``(n_freqs, n_mels)`` matrix.

    ``n_mels + 2`` edge frequencies are spaced evenly on the mel scale between
    ``f_min`` and ``f_max``; filter ``m`` rises linearly (in Hz) from edge ``m`` to a
    peak of 1 at edge ``m + 1`` and falls back to 0 at edge ``m + 2``. With
    ``mel_norm='slaney'`` each filter is scaled by ``2 / (f_high - f_low)`` so that
    all filters have (roughly) equal area.
    """
    dtype = torch.float64
    bin_freqs = torch.arange(settings.n_freqs, dtype=dtype) * settings.sample_rate / settings.n_fft  # odd n_fft too
    mel_edges = torch.linspace(
        float(hz_to_mel(torch.tensor(settings.f_min, dtype=dtype), settings.mel_scale)),
        float(hz_to_mel(torch.tensor(settings.upper_frequency, dtype=dtype), settings.mel_scale)),
        settings.n_mels + 2,
        dtype=dtype,
    )
    hz_edges = mel_to_hz(mel_edges, settings.mel_scale)
    lower, centre, upper = hz_edges[:-2], hz_edges[1:-1], hz_edges[2:]
    f = bin_freqs[:, None]
    rising = (f - lower) / (centre - lower)
    falling = (upper - f) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if settings.mel_norm == "slaney":
        weights = weights * (2.0 / (upper - lower))
    return weights.to(torch.float32)


class LogMel(torch.nn.Module):
    """Waveform -> dB log-mel spectrogram, differentiable and device-agnostic.

    Input ``(batch, samples)`` gives ``(batch, n_mels, frames)``; a single
    ``(samples,)`` waveform gives ``(n_mels, frames)``. The filterbank and window
    are non-persistent buffers (rebuilt from the settings, not saved in state dicts),
    so they follow ``.to(device)``.
    """

    def __init__(self, settings: LogMelSettings = STGRAM_LOGMEL) -> None:
        super().__init__()
        self.settings = settings
        self.register_buffer("window", torch.hann_window(settings.win_length, periodic=True),
                             persistent=False)
        self.register_buffer("filterbank", mel_filterbank(settings).T.contiguous(),
                             persistent=False)

    def power_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """``|STFT|**power`` as ``(batch, n_freqs, frames)`` for ``(batch, samples)`` input."""
        s = self.settings
        min_samples = s.n_fft // 2 + 1
        if waveform.shape[-1] < min_samples:
            raise ValueError(
                f"waveform has {waveform.shape[-1]} samples; reflect padding needs at least "
                f"{min_samples} (n_fft // 2 + 1)"
            )
        spec = torch.stft(
            waveform,
            n_fft=s.n_fft,
            hop_length=s.hop_length,
            win_length=s.win_length,
            window=self.window.to(waveform.dtype),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        magnitude = spec.abs()
        return magnitude.square() if s.power == 2.0 else magnitude.pow(s.power)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() not in (1, 2):
            raise ValueError(
                f"waveform must be (samples,) or (batch, samples), got shape {tuple(waveform.shape)}"
            )
        if not waveform.is_floating_point():
            raise ValueError(f"waveform must be floating point, got {waveform.dtype}")
        power = self.power_spectrogram(waveform)
        mel = torch.matmul(self.filterbank.to(power.dtype), power)
        return 10.0 * torch.log10(torch.clamp(mel, min=self.settings.eps))


def stack_frames(logmel: torch.Tensor, n_frames: int = 5) -> torch.Tensor:
    """Concatenate ``n_frames`` consecutive frames into vectors (stride 1), frame-major.

    ``(batch, n_mels, frames)`` -> ``(batch, frames - n_frames + 1, n_mels * n_frames)``
    (a 2-D ``(n_mels, frames)`` input drops the batch axis likewise). Vector ``t`` is
    ``[frame t, frame t+1, ..., frame t+n_frames-1]``, each frame's ``n_mels`` values
    contiguous, as in the DCASE 2020 baseline (313 frames -> 309 vectors of 640).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if logmel.dim() not in (2, 3):
        raise ValueError(
            f"logmel must be (n_mels, frames) or (batch, n_mels, frames), got {tuple(logmel.shape)}"
        )
    if logmel.shape[-1] < n_frames:
        raise ValueError(f"need at least {n_frames} frames to stack, got {logmel.shape[-1]}")
    windows = logmel.unfold(-1, n_frames, 1)  # (..., n_mels, vectors, n_frames)
    windows = windows.movedim(-3, -1)  # (..., vectors, n_frames, n_mels)
    return windows.reshape(*windows.shape[:-2], n_frames * logmel.shape[-2])
