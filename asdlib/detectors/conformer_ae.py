"""Conformer autoencoder detector (MSE seed): pre-train on a generic corpus, fine-tune per type.

Front end: the Slaney-scale, area-normalised log-mel of the DCASE baseline (so the
two autoencoders differ only in architecture; the seed does not say which scale it
used), centred per mel band on the training frames' mean and divided by one
standard deviation of all the centred bands (``normalise: global``; one scale as the
dense AE, which takes its standard deviation before centring, so that it also holds
the spread between band levels; on the built-in corpus it scores 0.02-0.03 AUC above ``band``, a standard deviation per
band, which blows up quiet bands' noise). The statistics are stored in each model
file, so scoring uses those the model was trained with.

:meth:`ConformerAEDetector.pretrain` trains a :class:`~asdlib.models.ConformerAE` on
a generic corpus (e.g. AudioSet music, no labels needed) and writes its weights;
:meth:`ConformerAEDetector.fit` trains one model per machine type on its training
normals, initialised from those weights (``init: pretrained``) or at random
(``init: scratch``, the ablation). Training uses random fixed-length segments of
``segment_frames`` frames for speed; scoring runs on the whole clip and the score is
the mean reconstruction MSE of its normalised log-mel frames.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal, Optional

import pandas as pd
import torch
import torch.nn.functional as F

from asdlib.config import to_dict
from asdlib.datasets import LoadFn, SegmentDataset, clip_ids_hash, segment_length, split_train_val
from asdlib.detectors.common import (MODEL_FILE, DetectorError, check_training_rows,
                                     clip_logmel, data_digest, iter_rows, logmels, model_files, model_for,
                                     scores_frame, training_scores_of, unit_dir)
from asdlib.features import LogMel, SlaneyLogMelSettings
from asdlib.models.conformer_ae import ConformerAE, ConformerAESettings
from asdlib.training import (FitResult, TrainSettings, fit, load_weights, resolve_device, save_checkpoint,
                             seed_everything)

SCORE_BATCH = 32  # clips per forward pass when scoring
STD_FLOOR = 1e-3  # dB; a constant mel band (digital silence) must not divide by zero


@dataclass(frozen=True)
class ConformerAETrainSettings(TrainSettings):
    """Optimisation of pre-training and fine-tuning (not published; sized for CPUs:
    with 2 s clips an epoch over 144 clips of a machine type is 9 steps of 16)."""

    epochs: int = 4
    batch_size: int = 16
    lr: float = 1e-3


@dataclass(frozen=True)
class ConformerAEDetectorSettings:
    """Front end, model sizes, training segments, initialisation and the two trainings.

    segment_frames: frames per training segment (64 = 2 s); clips shorter than
    that are used whole. segments_per_clip: random segments drawn from each clip
    per epoch. normalise: ``global`` (per-band mean, one scale) or ``band`` (per-band
    mean and standard deviation). init: ``pretrained`` (needs
    :meth:`ConformerAEDetector.pretrain` or a weights file) or ``scratch``.
    """

    logmel: SlaneyLogMelSettings = field(default_factory=SlaneyLogMelSettings)
    model: ConformerAESettings = field(default_factory=ConformerAESettings)
    segment_frames: int = 64
    segments_per_clip: int = 1
    normalise: Literal["global", "band"] = "global"
    init: Literal["pretrained", "scratch"] = "pretrained"
    train: ConformerAETrainSettings = field(default_factory=ConformerAETrainSettings)
    pretrain: ConformerAETrainSettings = field(default_factory=ConformerAETrainSettings)

    def __post_init__(self) -> None:
        if self.model.input_dim != self.logmel.n_mels:
            raise ValueError(f"model.input_dim ({self.model.input_dim}) must equal logmel.n_mels "
                             f"({self.logmel.n_mels})")
        for name in ("segment_frames", "segments_per_clip"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.normalise not in ("global", "band"):
            raise ValueError(f"normalise must be 'global' or 'band', got {self.normalise!r}")
        if self.init not in ("pretrained", "scratch"):
            raise ValueError(f"init must be 'pretrained' or 'scratch', got {self.init!r}")

    def config(self) -> dict:
        """What a trained model file must agree on to be used with these settings."""
        return {"logmel": to_dict(self.logmel), "model": to_dict(self.model)}


def _loss(model: torch.nn.Module, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = batch.to(device)
    return F.mse_loss(model(x), x)


class ConformerAEDetector:
    """Pre-train once, fine-tune a Conformer AE per machine type, score by reconstruction error."""

    name = "conformer_ae"

    def __init__(self, settings: ConformerAEDetectorSettings = ConformerAEDetectorSettings(),
                 pretrained_weights: Optional[str | Path] = None) -> None:
        self.settings = settings
        self.pretrained_weights = Path(pretrained_weights) if pretrained_weights is not None else None
        self.device = resolve_device(settings.train.device)
        self.logmel = LogMel(settings.logmel).to(self.device)
        self.models: dict[str, tuple[ConformerAE, torch.Tensor, torch.Tensor]] = {}
        self._training_scores: list[pd.DataFrame] = []

    def pretrain(self, generic_rows: pd.DataFrame, load: LoadFn, run_dir: str | Path) -> Path:
        """Train on a generic corpus (any labels); return and remember the weights file."""
        if len(generic_rows) == 0:
            raise DetectorError(f"{self.name}: no pre-training clips")
        s = self.settings
        train, val = split_train_val(generic_rows, s.pretrain.val_fraction, s.pretrain.seed,
                                     by=("dataset",), check_normals=False)
        seed_everything(s.pretrain.seed)
        model = ConformerAE.from_settings(s.model)
        extra = {"config": s.config(), "role": "pretrained", "train_clips": clip_ids_hash(generic_rows)}
        self._train(model, train, val, load, s.pretrain, Path(run_dir), "pretrain", extra)
        self.pretrained_weights = Path(run_dir) / MODEL_FILE
        return self.pretrained_weights

    def fit(self, train_rows: pd.DataFrame, load: LoadFn, run_dir: str | Path) -> dict[str, FitResult]:
        """Fine-tune (or train from scratch) a model per machine type in ``run_dir/<type>/``."""
        check_training_rows(train_rows, self.name)
        self.models = {}  # a second fit replaces the first's models, never adds to them
        s = self.settings
        results = {}
        self._training_scores = []
        for machine_type, rows in train_rows.groupby("machine_type", sort=True):
            machine_type = str(machine_type)
            train, val = split_train_val(rows, s.train.val_fraction, s.train.seed)
            model = self.initial_model()
            extra = {"config": s.config(), "role": "detector", "machine_type": machine_type,
                     "train_clips": clip_ids_hash(rows), "init": s.init, "pretrained": self._pretrained_hash()}
            folder = unit_dir(Path(run_dir), machine_type)
            results[machine_type] = self._train(model, train, val, load, s.train, folder, machine_type, extra)
        return results

    def training_scores(self) -> pd.DataFrame:
        """Columns clip_id, score of the last fit's training normals (see :class:`Detector`)."""
        return training_scores_of(self._training_scores, self.name)

    def initial_model(self) -> ConformerAE:
        """A new model initialised as ``init`` says: pre-trained weights or seeded random ones."""
        seed_everything(self.settings.train.seed)
        model = ConformerAE.from_settings(self.settings.model)
        if self.settings.init == "pretrained":
            if self.pretrained_weights is None:
                raise DetectorError(f"{self.name}: init is 'pretrained' but no pre-trained weights were "
                                    f"given (run pretrain first, or set init: scratch)")
            extra = load_weights(self.pretrained_weights, model)
            if extra.get("config") != self.settings.config():
                raise DetectorError(f"{self.pretrained_weights}: pre-trained with other front-end or "
                                    f"model settings than these")
        return model

    def restore(self, run_dir: str | Path) -> None:
        """Load the trained model of every machine type found in ``run_dir`` (and only those:
        models loaded or fitted before are dropped)."""
        self.models = {}
        for path in model_files(run_dir, self.name):
            model = ConformerAE.from_settings(self.settings.model)
            extra = load_weights(path, model)
            if extra.get("config") != self.settings.config() or extra.get("role") != "detector":
                raise DetectorError(f"{path}: not a {self.name} detector trained with these settings")
            self.models[str(extra["machine_type"])] = (model.to(self.device).eval(), extra["mean"], extra["std"])

    @torch.no_grad()
    def score(self, test_rows: pd.DataFrame, load: LoadFn) -> pd.DataFrame:
        """Columns clip_id, score (mean reconstruction MSE of the whole clip's frames), in row order."""
        for model, *_ in self.models.values():  # once, not per clip (a walk over every module)
            model.eval()

        def clips() -> Iterator[tuple[ConformerAE, torch.Tensor]]:
            for row in iter_rows(test_rows, f"{self.name} scoring"):
                model, mean, std = model_for(self.models, row, self.name)
                yield model, _normalise(clip_logmel(row, load, self.logmel, self.device), mean, std)

        return scores_frame(list(map(str, test_rows["clip_id"])), {"score": self._errors(clips())})

    def _train(self, model: ConformerAE, train: pd.DataFrame, val: pd.DataFrame, load: LoadFn,
               settings: TrainSettings, folder: Path, unit: str, extra: dict) -> FitResult:
        """Features, band statistics, segments, the training loop; writes ``folder/model.pt``."""
        name = f"{self.name}/{unit}"
        device = resolve_device(settings.device)  # pre-training's own device, not the detector's
        logmel = self.logmel if device == self.device else LogMel(self.settings.logmel).to(device)
        train_mels = logmels(train, load, logmel, device, f"{name} features")
        val_mels = logmels(val, load, logmel, device, f"{name} val") if len(val) else []
        frames = torch.cat(train_mels, dim=1)
        mean = frames.mean(dim=1)
        if self.settings.normalise == "band":
            std = frames.std(dim=1).clamp(min=STD_FLOOR)
        else:  # one scale, stored per band so that scoring is the same for both
            std = (frames - mean[:, None]).std().clamp(min=STD_FLOOR).expand_as(mean).clone()
        train_norm = [_normalise(m, mean, std) for m in train_mels]
        val_norm = [_normalise(m, mean, std) for m in val_mels]
        segment = segment_length(train_norm + val_norm, self.settings.segment_frames)
        train_set = SegmentDataset(train_norm, segment, epoch_passes=self.settings.segments_per_clip)
        val_set = SegmentDataset(val_norm, segment, random_offset=False) if val_norm else None
        extra = {**extra, "mean": mean, "std": std}
        # resume identity only (model.pt keeps what scoring needs): the segments drawn and the
        # features themselves, which the clip ids do not tell
        identity = {"segment_frames": self.settings.segment_frames, "normalise": self.settings.normalise,
                    "segments_per_clip": self.settings.segments_per_clip,
                    "features": data_digest(train_mels + val_mels)}
        result = fit(model, train_set, _loss, settings, folder, val_set=val_set, name=name,
                     extra={**extra, **identity})
        save_checkpoint(folder / MODEL_FILE, model, extra=extra)
        if extra["role"] == "detector":
            self.models[str(extra["machine_type"])] = (model.eval(), mean, std)
            clips = pd.concat([train, val])
            errors = self._errors((model, m) for m in train_norm + val_norm)
            self._training_scores.append(scores_frame(list(map(str, clips["clip_id"])), {"score": errors}))
        return result

    @torch.no_grad()
    def _errors(self, clips: Iterable[tuple[ConformerAE, torch.Tensor]]) -> list[float]:
        """Scores of ``(model, normalised (n_mels, frames) log-mel)`` pairs, in order: the mean
        reconstruction MSE of each clip's frames.

        Clips of one model and length go through the model ``SCORE_BATCH`` at a time (2.5x
        faster than one by one on a CPU; a clip's score then differs from its score alone by
        float32 rounding, ~1e-7). Memory: at most one unfinished batch per model and length.
        """
        scores: list[float] = []
        pending: dict[tuple[int, int], tuple[ConformerAE, list[int], list[torch.Tensor]]] = {}

        def run(key: tuple[int, int]) -> None:
            model, positions, mels = pending.pop(key)
            frames = torch.stack([mel.T for mel in mels]).to(self.device)
            for position, error in zip(positions, model.reconstruction_error(frames).mean(dim=1).tolist()):
                scores[position] = error

        for model, mel in clips:
            key = (id(model), mel.shape[1])
            _, positions, mels = pending.setdefault(key, (model, [], []))
            positions.append(len(scores))
            mels.append(mel)
            scores.append(float("nan"))
            if len(mels) == SCORE_BATCH:
                run(key)
        for key in list(pending):
            run(key)
        return scores

    def _pretrained_hash(self) -> str:
        """Identity of the initial weights (part of the fine-tuning fingerprint)."""
        if self.settings.init == "scratch":
            return ""
        if self.pretrained_weights is None or not self.pretrained_weights.exists():
            raise DetectorError(f"{self.name}: init is 'pretrained' but the pre-trained weights "
                                f"{self.pretrained_weights} are missing (run pretrain first, or set init: scratch)")
        return hashlib.sha256(self.pretrained_weights.read_bytes()).hexdigest()[:16]


def _normalise(mel: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(n_mels, frames)`` log-mel centred per band and divided by ``std`` (per band)."""
    return (mel - mean[:, None]) / std[:, None]
