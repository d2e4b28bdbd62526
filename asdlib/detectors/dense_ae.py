"""The DCASE 2020 Task 2 baseline detector: a dense autoencoder per machine type.

Front end: Slaney-scale, area-normalised log-mel (as the baseline's librosa call),
5 consecutive frames stacked into 640-d vectors with stride 1. One
:class:`~asdlib.models.DenseAE` per machine type, trained with MSE on the vectors of
the type's training normals (Adam, lr 1e-3, batch 512; published: 100 epochs). The
score of a clip is the mean reconstruction MSE over its vectors.

Vectors are centred by the training mean vector and divided by one global standard
deviation. The baseline fed raw dB values; centring only moves a bias the network
would otherwise spend most of a short CPU training learning, and a single scale
factor multiplies every score alike, so rankings (AUC) mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from asdlib.config import to_dict
from asdlib.datasets import LoadFn, clip_ids_hash, split_train_val
from asdlib.detectors.common import (MODEL_FILE, DetectorError, check_training_rows,
                                     clip_logmel, data_digest, iter_rows, model_for, model_files, scores_frame,
                                     training_scores_of, unit_dir)
from asdlib.features import LogMel, SlaneyLogMelSettings, stack_frames
from asdlib.models.dense_ae import DenseAE
from asdlib.training import (FitResult, TrainSettings, fit, load_weights, resolve_device, save_checkpoint,
                             seed_everything)


@dataclass(frozen=True)
class DenseAETrainSettings(TrainSettings):
    """The baseline's optimisation (Adam lr 1e-3, batch 512); published: 100 epochs,
    10 by default so the built-in pipeline trains in minutes on a CPU."""

    epochs: int = 10
    batch_size: int = 512
    lr: float = 1e-3


@dataclass(frozen=True)
class DenseAEDetectorSettings:
    """Front end, sizes and training of the baseline."""

    logmel: SlaneyLogMelSettings = field(default_factory=SlaneyLogMelSettings)
    n_frames: int = 5
    hidden: int = 128
    bottleneck: int = 8
    n_hidden_layers: int = 4
    train: DenseAETrainSettings = field(default_factory=DenseAETrainSettings)

    def __post_init__(self) -> None:
        for name in ("n_frames", "hidden", "bottleneck", "n_hidden_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def input_dim(self) -> int:
        return self.n_frames * self.logmel.n_mels

    def config(self) -> dict:
        """What a trained model file must agree on to be scored with these settings."""
        return {"logmel": to_dict(self.logmel), "n_frames": self.n_frames, "hidden": self.hidden,
                "bottleneck": self.bottleneck, "n_hidden_layers": self.n_hidden_layers}


def _loss(model: torch.nn.Module, batch: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    x = batch[0].to(device)
    return F.mse_loss(model(x), x)


class DenseAEDetector:
    """Fit one dense AE per machine type; score clips by mean reconstruction MSE."""

    name = "dense_ae"

    def __init__(self, settings: DenseAEDetectorSettings = DenseAEDetectorSettings()) -> None:
        self.settings = settings
        self.device = resolve_device(settings.train.device)
        self.logmel = LogMel(settings.logmel).to(self.device)
        self.models: dict[str, tuple[DenseAE, torch.Tensor, torch.Tensor]] = {}
        self._training_scores: list[pd.DataFrame] = []

    def fit(self, train_rows: pd.DataFrame, load: LoadFn, run_dir: str | Path) -> dict[str, FitResult]:
        """Train (or resume) a model per machine type in ``run_dir/<type>/``."""
        check_training_rows(train_rows, self.name)
        self.models = {}  # a second fit replaces the first's models, never adds to them
        s = self.settings
        results = {}
        self._training_scores = []
        for machine_type, rows in train_rows.groupby("machine_type", sort=True):
            machine_type = str(machine_type)
            train, val = split_train_val(rows, s.train.val_fraction, s.train.seed)
            vectors, counts = self._vectors(train, load, f"{self.name}/{machine_type} features")
            # one scale for all inputs, taken before centring (so it holds the spread between bands too)
            centre, scale = vectors.mean(dim=0), vectors.std().clamp(min=1e-3)
            train_set = TensorDataset((vectors - centre) / scale)
            del vectors  # features can be gigabytes on real corpora: keep only the normalised copy
            val_set, val_counts = None, []
            if len(val):
                val_vectors, val_counts = self._vectors(val, load, f"{self.name}/{machine_type} val")
                val_set = TensorDataset((val_vectors - centre) / scale)
            seed_everything(s.train.seed)
            model = self._new_model()
            extra = {"config": s.config(), "machine_type": machine_type, "train_clips": clip_ids_hash(rows),
                     "centre": centre, "scale": scale}
            folder = unit_dir(Path(run_dir), machine_type)
            # resume identity only (model.pt keeps what scoring needs): the vectors, which the clip ids do not tell
            vectors = data_digest(ds.tensors[0] for ds in (train_set, val_set) if ds is not None)
            results[machine_type] = fit(model, train_set, _loss, s.train, folder, val_set=val_set,
                                        name=f"{self.name}/{machine_type}", extra={**extra, "vectors": vectors})
            save_checkpoint(folder / MODEL_FILE, model, extra=extra)
            self.models[machine_type] = (model.eval(), centre, scale)
            clips = pd.concat([train, val])
            clip_vectors = train_set.tensors[0].split(counts)  # views, per clip
            if val_set is not None:
                clip_vectors += val_set.tensors[0].split(val_counts)
            errors = [self._error(model, v) for v in clip_vectors]
            self._training_scores.append(scores_frame(list(map(str, clips["clip_id"])), {"score": errors}))
        return results

    def training_scores(self) -> pd.DataFrame:
        """Columns clip_id, score of the last fit's training normals (see :class:`Detector`)."""
        return training_scores_of(self._training_scores, self.name)

    def restore(self, run_dir: str | Path) -> None:
        """Load the trained model of every machine type found in ``run_dir`` (and only those:
        models loaded or fitted before are dropped)."""
        self.models = {}
        for path in model_files(run_dir, self.name):
            model = self._new_model()
            extra = load_weights(path, model)
            if extra.get("config") != self.settings.config():
                raise DetectorError(f"{path}: trained with other front-end or model settings than these")
            self.models[str(extra["machine_type"])] = (model.to(self.device).eval(), extra["centre"], extra["scale"])

    @torch.no_grad()
    def score(self, test_rows: pd.DataFrame, load: LoadFn) -> pd.DataFrame:
        """Columns clip_id, score (mean reconstruction MSE of the clip's vectors), in row order."""
        for model, *_ in self.models.values():  # once, not per clip (a walk over every module)
            model.eval()
        scores = []
        for row in iter_rows(test_rows, f"{self.name} scoring"):
            model, centre, scale = model_for(self.models, row, self.name)
            scores.append(self._error(model, (self._clip_vectors(row, load) - centre) / scale))
        return scores_frame(list(map(str, test_rows["clip_id"])), {"score": scores})

    def _clip_vectors(self, row: pd.Series, load: LoadFn) -> torch.Tensor:
        mel = clip_logmel(row, load, self.logmel, self.device)
        if mel.shape[-1] < self.settings.n_frames:
            raise DetectorError(f"clip {row['clip_id']}: {mel.shape[-1]} frames, fewer than the "
                                f"{self.settings.n_frames} stacked per vector")
        return stack_frames(mel, self.settings.n_frames)

    def _vectors(self, rows: pd.DataFrame, load: LoadFn, desc: str) -> tuple[torch.Tensor, list[int]]:
        """Every clip's vectors, concatenated, and how many each clip has."""
        clips = [self._clip_vectors(row, load) for row in iter_rows(rows, desc)]
        return torch.cat(clips), [len(c) for c in clips]

    @torch.no_grad()
    def _error(self, model: DenseAE, vectors: torch.Tensor) -> float:
        """A clip's score: the mean reconstruction MSE of its normalised vectors."""
        return float(model.reconstruction_error(vectors.to(self.device)).mean())

    def _new_model(self) -> DenseAE:
        s = self.settings
        return DenseAE(s.input_dim, s.hidden, s.bottleneck, s.n_hidden_layers)
