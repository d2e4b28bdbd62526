"""Detectors: models wrapped as fit/score objects over manifest rows.

Every detector takes its settings dataclass and offers

* ``fit(train_rows, load, run_dir)``: train on the training normals in ``train_rows``
  (checkpoints, history and the final ``model.pt`` files go to ``run_dir``; an
  interrupted run resumes);
* ``restore(run_dir)``: load what ``fit`` wrote, without training;
* ``score(test_rows, load) -> DataFrame``: columns ``clip_id``, ``score`` (higher =
  more anomalous) and any extra score columns, in the order of ``test_rows``.

``load(row) -> np.ndarray`` reads one clip's float32 waveform; detectors never open
files themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol

import pandas as pd

from asdlib.config import parse
from asdlib.datasets import LoadFn
from asdlib.detectors.common import DetectorError
from asdlib.detectors.conformer_ae import ConformerAEDetector, ConformerAEDetectorSettings
from asdlib.detectors.dense_ae import DenseAEDetector, DenseAEDetectorSettings
from asdlib.detectors.stgram_mfn import STgramMFNDetector, STgramMFNDetectorSettings


class Detector(Protocol):
    """The interface every detector implements."""

    name: str

    def fit(self, train_rows: pd.DataFrame, load: LoadFn, run_dir: str | Path) -> Any: ...

    def restore(self, run_dir: str | Path) -> None: ...

    def score(self, test_rows: pd.DataFrame, load: LoadFn) -> pd.DataFrame: ...


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
    return detector_cls(parse(settings_cls, settings, where or name), **options)


__all__ = [
    "DETECTORS",
    "ConformerAEDetector",
    "ConformerAEDetectorSettings",
    "DenseAEDetector",
    "DenseAEDetectorSettings",
    "Detector",
    "DetectorError",
    "STgramMFNDetector",
    "STgramMFNDetectorSettings",
    "build_detector",
]
