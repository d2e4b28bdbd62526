"""Every detector by name, and a builder from a settings mapping (params, benchmarks, tests)."""

from __future__ import annotations

from typing import Any, Mapping

from asdlib.config import parse
from asdlib.detectors.common import Detector, DetectorError
from asdlib.detectors.conformer_ae import ConformerAEDetector, ConformerAEDetectorSettings
from asdlib.detectors.dense_ae import DenseAEDetector, DenseAEDetectorSettings
from asdlib.detectors.stgram_mfn import STgramMFNDetector, STgramMFNDetectorSettings
from asdlib.training import DeviceUnavailable


DETECTORS: dict[str, tuple[type, type]] = {
    "dense_ae": (DenseAEDetectorSettings, DenseAEDetector),
    "conformer_ae": (ConformerAEDetectorSettings, ConformerAEDetector),
    "stgram_mfn": (STgramMFNDetectorSettings, STgramMFNDetector),
}


def build_detector(name: str, settings: Mapping[str, Any] | None = None, where: str = "",
                   **options: Any) -> Detector:
    """Detector ``name`` with settings parsed from a mapping (unknown keys rejected).

    ``options`` go to the constructor (e.g. ``pretrained_weights`` for conformer_ae).
    """
    if name not in DETECTORS:
        raise DetectorError(f"{where or 'detector'}: unknown detector {name!r} (known: {', '.join(DETECTORS)})")
    settings_cls, detector_cls = DETECTORS[name]
    parsed = parse(settings_cls, settings, where or name)
    try:
        return detector_cls(parsed, **options)
    except DeviceUnavailable as exc:
        raise DetectorError(f"{where or name}: train.device: {exc}") from exc
