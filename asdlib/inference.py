"""Score recordings with a detector the pipeline trained: the deployment side.

A trained model folder (``data/models/<model>/<input>/<condition>``) holds all that
scoring needs: the weights, the front-end and model settings they were trained
with, and the normalisation or the training embeddings. :func:`load_detector`
rebuilds the detector from those files alone, and its model card
(:mod:`asdlib.model_card`) says what audio it was trained on. A detector trained on
MSE output must be given MSE output: with an :class:`Extraction`, :func:`score_recordings`
first does to each clip what the pipeline's ``snr_predict`` and ``mse`` stages do
(the BLSTM's SNR estimate at the precision ``snr_predict`` stores, or one fixed
target; then :func:`asdlib.mse.extract`), so the pipeline's own test clips get the
pipeline's scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from asdlib.config import parse
from asdlib.datasets import LoadFn, load_clip
from asdlib.decisions import DecisionError, decide, fit_thresholds
from asdlib.detectors.common import MODEL_FILE, Detector, DetectorError
from asdlib.detectors.registry import DETECTORS
from asdlib.manifest import read_clip
from asdlib.metrics import CLIP_COLUMNS, NORMAL_SCORES_FILE, MetricsError, read_scores, score_table
from asdlib.model_card import MODEL_CARD_FILE, read_model_card
from asdlib.mse import MseSettings, extract
from asdlib.parallel import ParallelSettings, parallel_map
from asdlib.snr_estimation import SnrEstimator, stored_estimates
from asdlib.store import read_row
from asdlib.training import read_checkpoint

CHUNK = 256  # clips read (and extracted) at a time: memory stays bounded
DETECTOR_OF_MODEL = {  # checkpoint model_class -> detector name
    "asdlib.models.dense_ae.DenseAE": "dense_ae",
    "asdlib.models.conformer_ae.ConformerAE": "conformer_ae",
    "asdlib.models.stgram_mfn.STgramMFN": "stgram_mfn",
}
AUDIO_SUFFIXES = (".wav", ".flac")
EMBEDDING_SCORER_OPTIONS = ("knn_k", "mahalanobis_shrinkage")  # change training normals' scores too


def load_detector(model_dir: str | Path, detectors: Optional[Mapping[str, Any]] = None,
                  device: Optional[str] = None) -> tuple[str, Detector]:
    """The detector trained into ``model_dir`` (its name and the restored detector).

    ``model_dir`` holds ``model.pt`` (STgram-MFN: one model for all machine types) or
    ``<machine type>/model.pt`` (the autoencoders). Its settings are those stored in
    the model file (front end and model) with, on top, the entry for it in
    ``detectors`` (a params.yaml's ``detectors`` section) when given, else the
    settings on the folder's model card (:mod:`asdlib.model_card`) when it has one:
    STgram-MFN's scorer options live only there. ``device`` overrides ``train.device``.
    """
    model_dir = Path(model_dir)
    if model_dir.is_file():
        raise DetectorError(f"{model_dir}: a file, not a model folder; give the folder it is in "
                            f"({model_dir.parent})")
    if not model_dir.is_dir():
        raise DetectorError(f"{model_dir}: no such model folder")
    top = model_dir / MODEL_FILE
    files = [top] if top.is_file() else sorted(model_dir.glob(f"*/{MODEL_FILE}"))
    if not files:
        raise DetectorError(f"{model_dir}: no trained model ({MODEL_FILE} or <machine type>/{MODEL_FILE})")
    payload = read_checkpoint(files[0])
    name = DETECTOR_OF_MODEL.get(str(payload.get("model_class")))
    if name is None:
        raise DetectorError(f"{files[0]}: holds a {payload.get('model_class')}, not a detector "
                            f"({', '.join(DETECTOR_OF_MODEL.values())})")
    extra = payload.get("extra", {})
    if extra.get("role") == "pretrained":
        raise DetectorError(f"{files[0]}: pre-trained weights, not a fine-tuned detector")
    if files[0] == top and "machine_type" in extra:
        raise DetectorError(f"{top}: the {name} of machine type {extra['machine_type']} alone; give the "
                            f"folder above ({model_dir.parent}), which holds every machine type's")
    if files[0] != top and "machine_type" not in extra:
        raise DetectorError(f"{model_dir}: no {MODEL_FILE} here; give the folder of {files[0]}")
    card = read_model_card(model_dir)
    if card is not None and card.detector != name:
        raise DetectorError(f"{model_dir / MODEL_CARD_FILE}: a card of a {card.detector}, but {files[0]} "
                            f"holds a {name}")
    settings_cls, detector_cls = DETECTORS[name]
    settings = parse(settings_cls, extra.get("config"), f"{files[0]}: stored settings")
    if detectors is not None:
        settings = parse(settings_cls, detectors.get(name), f"detectors.{name}", base=settings)
    elif card is not None:
        settings = parse(settings_cls, card.settings, f"{model_dir / MODEL_CARD_FILE}: settings", base=settings)
    if device is not None:
        settings = parse(settings_cls, {"train": {"device": device}}, "device", base=settings)
    detector = detector_cls(settings)
    detector.restore(model_dir)
    return name, detector


@dataclass(frozen=True)
class Extraction:
    """MSE before scoring, as the pipeline's ``mse`` stage: ``settings`` (its
    ``mse.settings``) and each clip's stop target, from the BLSTM in ``estimator``
    (``snr_source: estimated``) or one ``snr_db`` for every clip (``fixed``)."""

    settings: MseSettings
    estimator: Optional[Path] = None
    snr_db: Optional[float] = None

    def __post_init__(self) -> None:
        if (self.estimator is None) == (self.snr_db is None):
            raise ValueError("extraction needs exactly one of an SNR estimator file and a fixed snr_db")


def score_recordings(detector: Detector, rows: pd.DataFrame, load: LoadFn, extraction: Optional[Extraction] = None,
                     parallel: ParallelSettings = ParallelSettings(), chunk: int = CHUNK) -> pd.DataFrame:
    """The detector's scores of ``rows`` (columns clip_id and its score columns, row
    order), ``chunk`` clips at a time; with ``extraction``, of each clip's MSE output
    (extracted on ``parallel`` workers, which return arrays)."""
    duplicated = rows["clip_id"][rows["clip_id"].duplicated()]
    if len(duplicated):
        raise DetectorError(f"clip {duplicated.iloc[0]} is listed twice")
    estimator = SnrEstimator.load(extraction.estimator) if extraction and extraction.estimator else None
    parts = []
    for start in range(0, len(rows), chunk):
        part = rows.iloc[start:start + chunk]
        waves = [load_clip(row, load) for _, row in part.iterrows()]
        if extraction is not None:
            targets = (stored_estimates(estimator.predict(waves, names=list(part["clip_id"])))
                       if estimator is not None
                       else [float(extraction.snr_db)] * len(waves))
            jobs = [(wave, float(target), str(clip_id))
                    for wave, target, clip_id in zip(waves, targets, part["clip_id"])]
            waves = list(parallel_map(partial(_extracted, settings=extraction.settings), jobs, parallel,
                                      desc="MSE", total=len(jobs)))
        by_clip = dict(zip(part["clip_id"], waves))
        parts.append(detector.score(part, lambda row: by_clip[row["clip_id"]]))
    return pd.concat(parts, ignore_index=True)


def _extracted(job: tuple[np.ndarray, float, str], settings: MseSettings) -> np.ndarray:
    """Worker side: one clip's mechanical sound, float32 as the ``mse`` stage stores it."""
    wave, snr_db, name = job
    return extract(wave, snr_db, settings, name=name).signal.astype(np.float32)


def read_recording(row: pd.Series, resample: bool = False) -> np.ndarray:
    """A row's audio: from its HDF5 shard (the pipeline's manifests) or its file
    (a corpus manifest, or :func:`recording_rows`)."""
    if pd.notna(row.get("store")):
        return read_row(row)
    return read_clip(row, resample)


def recording_rows(paths: Sequence[str | Path], machine_type: str, machine_id: str,
                   channel: int = 0) -> pd.DataFrame:
    """Rows of audio files of one machine (folders give every .wav / .flac under them,
    sorted, but for hidden ones: names starting with ``.``, as macOS's ``._`` copies and
    ``.ipynb_checkpoints``), to be read at ``channel``; the clip id is the file's path, the label
    ``unknown``. A file named with another ``id_XX`` than ``machine_id`` is an error."""
    if channel < 0:
        raise ValueError(f"channel {channel}: channels are numbered from 0")
    if not machine_type or "/" in machine_type:
        raise ValueError(f"machine type {machine_type!r}: give a name without '/'")
    if not re.fullmatch(r"id_\d+", machine_id):
        raise ValueError(f"machine ID {machine_id!r}: write it as the manifests do, e.g. id_00")
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise ValueError(f"{path}: no {' or '.join(AUDIO_SUFFIXES)} files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such file or folder")
    for path in files:  # DCASE-style names carry the ID: a folder of several IDs is a mistake
        named = re.search(r"(?<![a-z])id_\d+", path.name)
        if named and named.group() != machine_id:
            raise ValueError(f"{path}: named {named.group()}, but the machine ID given is {machine_id}")
    return pd.DataFrame({"clip_id": [p.as_posix() for p in files], "path": [str(p) for p in files],
                         "channel": channel, "machine_type": machine_type, "machine_id": machine_id,
                         "split": "test", "label": "unknown"})


def recording_table(rows: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """A score table as the pipeline writes (``asdlib.metrics.CLIP_COLUMNS``, then the
    scores) for any rows: a clip that was not mixed is its own source, ``clean``,
    without an SNR."""
    filled = rows.copy()
    if "source_clip_id" not in filled:
        filled["source_clip_id"] = filled["clip_id"]
    for column, value in (("condition", "clean"), ("snr_db", np.nan)):
        if column not in filled:
            filled[column] = value
    return score_table(filled[CLIP_COLUMNS], scores)


def training_normals(model_dir: str | Path, detector: Detector) -> tuple[Optional[pd.DataFrame], str]:
    """The training normals' scores that decision thresholds are fitted to, and a note
    (empty when there is nothing to say): the folder's :data:`NORMAL_SCORES_FILE` (None
    for a folder without one), except for a detector scoring with embedding scorer
    options (STgram-MFN's ``knn_k``, ``mahalanobis_shrinkage``) other than those on the
    folder's model card, the ones that file was scored with: its Mahalanobis and kNN
    columns are then recomputed from the training embeddings under the options in use
    (also without a card, which leaves the file's options unknown). A file without rows,
    without the columns :func:`decisions` reads or with non-numeric scores is an error
    naming it, raised here, before any clip is scored."""
    model_dir = Path(model_dir)
    path = model_dir / NORMAL_SCORES_FILE
    if not path.is_file():
        return None, ""
    column = threshold_column(getattr(detector.settings, "score", ""))
    normals = read_scores(path, required=("machine_type", "machine_id", column))
    if normals.empty:
        raise MetricsError(f"{path}: no rows (a model folder's training normals' scores)")
    if not pd.api.types.is_numeric_dtype(normals[column]):
        raise MetricsError(f"{path}: column {column} holds values that are not numbers")
    recompute = getattr(detector, "embedding_training_scores", None)
    if recompute is None:
        return normals, ""
    options = {name: getattr(detector.settings, name) for name in EMBEDDING_SCORER_OPTIONS}
    card = read_model_card(model_dir)
    trained = {name: card.settings.get(name) for name in options} if card is not None else None
    if trained == options:
        return normals, ""
    recomputed = recompute()
    said = (f"{model_dir / MODEL_CARD_FILE} has {trained}" if trained is not None
            else f"{model_dir} has no {MODEL_CARD_FILE} to say which it was scored with")
    return recomputed, (f"the training normals' Mahalanobis and kNN scores, to which thresholds are fitted, "
                        f"recomputed from the model's training embeddings with {options} ({said})")


def threshold_column(scorer: str = "") -> str:
    """The training normals' score column that thresholds are fitted to: ``score``, or
    STgram-MFN's ``score_<scorer>`` (the score that a table's ``score`` repeats)."""
    return f"score_{scorer}" if scorer else "score"


def decisions(normals: Optional[pd.DataFrame], table: pd.DataFrame, quantile: float, scorer: str = "",
              source: str | Path = NORMAL_SCORES_FILE) -> Optional[pd.DataFrame]:
    """Columns threshold and decision (1 = anomalous) for a score table's ``score``, by
    the evaluate stage's rule (:mod:`asdlib.decisions`) on the training normals' scores
    ``normals`` (:func:`training_normals`; None: no decisions). ``scorer`` names the score
    that ``score`` repeats (STgram-MFN's ``score_<scorer>``, which ``--params`` may choose
    otherwise than training did), so the threshold is fitted to that same score; only the
    table's machine IDs get one. A clip of a machine ID absent in training (an
    autoencoder scores any ID of its type) gets neither. Errors name ``source``."""
    if normals is None:
        return None
    column = threshold_column(scorer)
    keys = pd.Series(list(zip(table["machine_type"].astype(str), table["machine_id"].astype(str))),
                     index=table.index)
    wanted = pd.Series(list(zip(normals["machine_type"].astype(str), normals["machine_id"].astype(str))),
                       index=normals.index).isin(set(keys))
    try:
        thresholds = fit_thresholds(normals[wanted], column, quantile)
    except DecisionError as exc:
        raise DecisionError(f"{source}: {exc}") from exc
    known = keys.isin(list(thresholds))
    out = pd.DataFrame({"threshold": np.nan, "decision": pd.array([pd.NA] * len(table), dtype="Int64")},
                       index=table.index)
    if known.any():
        decided = decide(table[known], "score", thresholds)
        out.loc[known, "threshold"] = decided["threshold"]
        out.loc[known, "decision"] = decided["decision"].astype("Int64")
    return out
