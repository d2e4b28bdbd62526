"""The body of the `train_<model>@<input>` stages: per SNR condition, fit a detector and
score the test clips.

Each detector has its own stage script (`stages/train_dense_ae.py`,
`stages/train_conformer_ae.py`, `stages/train_stgram_mfn.py`) that imports only its
detector, so editing one detector's code re-runs that detector's training alone.
Usage: python -m stages.train_<model> <input>   (raw = the mixtures, mse = MSE output)

Checkpoints live in data/.work/train/ so an interrupted run resumes; the stage's
outputs are the selected model files (data/models/<model>/<input>/<condition>/...),
the scores table data/scores/<model>/<input>.csv and the per-epoch training
history metrics/training/<model>.<input>.csv (a DVC plot).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd

from asdlib.config import load_yaml, parse
from asdlib.detectors.common import Detector
from asdlib.fileio import atomic_path
from asdlib.manifest import read_manifest
from asdlib.store import file_digest, read_row

from stages.common import DATA, METRICS, PARAMS_FILE, params_section
from stages.work import work_dir

INPUTS = {"raw": DATA / "mix" / "manifest.csv", "mse": DATA / "mse" / "manifest.csv"}
SCORE_COLUMNS = ["clip_id", "source_clip_id", "machine_type", "machine_id", "split", "label",
                 "condition", "snr_db"]


@dataclass(frozen=True)
class TrainParams:
    """conditions: SNR conditions to train and score (each must exist in the mixtures).
    score_splits: manifest splits scored (test; eval for labelled evaluation data)."""

    conditions: list[str] = field(default_factory=lambda: ["clean", "-6dB", "0dB", "6dB"])
    score_splits: list[str] = field(default_factory=lambda: ["test"])

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError("conditions must list at least one condition")


def train_stage(model: str, settings_cls: type, detector_cls: Callable[..., Detector],
                pretrained: Optional[Path] = None) -> None:
    """Fit ``detector_cls`` (settings from ``detectors.<model>``) on the input named in argv.

    ``pretrained``: weights file the detector starts from (its bytes key the checkpoints).
    """
    if len(sys.argv) != 2 or sys.argv[1] not in INPUTS:
        raise ValueError(f"usage: python -m stages.train_{model} {{{','.join(INPUTS)}}}")
    input_name = sys.argv[1]
    cfg = params_section("train", TrainParams)
    detector_params = load_yaml(PARAMS_FILE).get("detectors", {}).get(model)
    settings = parse(settings_cls, detector_params, f"{PARAMS_FILE}: detectors.{model}")  # before any work
    options: dict[str, Any] = {"pretrained_weights": pretrained} if pretrained is not None else {}
    manifest = read_manifest(INPUTS[input_name])
    absent = sorted(set(cfg.conditions) - set(manifest["condition"]))
    if absent:
        raise ValueError(f"{PARAMS_FILE}: train.conditions: {absent} not in {INPUTS[input_name]} "
                         f"(it has {sorted(set(manifest['condition']))})")
    models_out = DATA / "models" / model / input_name
    shutil.rmtree(models_out, ignore_errors=True)
    work_root = _work_root(model, input_name, manifest, detector_params, pretrained)
    scores, histories = [], []
    for condition in cfg.conditions:
        rows = manifest[manifest["condition"] == condition]
        train = rows[(rows["split"] == "train") & (rows["label"] == "normal")]
        test = rows[rows["split"].isin(cfg.score_splits)]
        detector = detector_cls(settings, **options)
        work = work_root / condition
        print(f"{model}/{input_name}/{condition}: {len(train)} training clips, {len(test)} test clips")
        detector.fit(train, read_row, work)
        result = detector.score(test, read_row)
        scores.append(test[SCORE_COLUMNS].reset_index(drop=True).merge(result, on="clip_id", validate="1:1"))
        histories += _histories(work, condition)
        _copy_models(work, models_out / condition)
    with atomic_path(DATA / "scores" / model / f"{input_name}.csv") as tmp:
        pd.concat(scores).to_csv(tmp, index=False, float_format="%.8g", lineterminator="\n")
    with atomic_path(METRICS / "training" / f"{model}.{input_name}.csv") as tmp:
        pd.concat(histories).to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")


def _work_root(model: str, input_name: str, manifest: pd.DataFrame, detector_params: object,
               pretrained: Optional[Path]) -> Path:
    """Checkpoint folder keyed by everything the training sees (and the code), so a resume
    never mixes data; folders of other keys for this model and input are removed."""
    parts = [detector_params, INPUTS[input_name].read_bytes().decode()]
    parts += [file_digest(Path(store)) for store in sorted(set(manifest["store"]))]
    if pretrained is not None and pretrained.exists():
        parts.append(file_digest(pretrained))
    return work_dir(f"train/{model}/{input_name}", *parts)


def _histories(work: Path, condition: str) -> list[pd.DataFrame]:
    """Per-epoch histories of every model trained under ``work`` (one per machine type, or one)."""
    frames = []
    for path in sorted(work.rglob("history.csv")):
        frame = pd.read_csv(path).drop(columns=["seconds"], errors="ignore")
        frame.insert(0, "unit", path.parent.relative_to(work).as_posix())
        frame.insert(0, "condition", condition)
        frames.append(frame)
    return frames


def _copy_models(work: Path, target: Path) -> None:
    """Copy the selected weights (model.pt files), not the resumable checkpoints."""
    for path in sorted(work.rglob("model.pt")):
        dest = target / path.relative_to(work)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


if __name__ == "__main__":
    sys.exit("stages/train.py is the shared body of the train stages; run "
             "python -m stages.train_{dense_ae,conformer_ae,stgram_mfn} {raw,mse}")
