"""STgram-MFN detector: one ID classifier over all machine types, three anomaly scores.

Classes are the ``machine_type/machine_id`` pairs of the training clips (sorted;
stored in the model file). Training: ArcFace (m 0.7, s 30) cross-entropy on whole
clips; Adam lr 1e-4, cosine annealing after epoch 20 to 1e-5 (published: batch 128,
300 epochs; the defaults here are smaller for CPUs).

Scores of a test clip, side by side:

* ``score_published``: ``-log_softmax(logits)[own class]`` with the ArcFace margin
  applied to the clip's own class, as in the published code;
* ``score_mahalanobis``: Mahalanobis distance of its embedding to the training
  embeddings of its class (Ledoit-Wolf covariance);
* ``score_knn``: mean cosine distance to its ``knn_k`` nearest training embeddings
  of its class.

``score`` repeats the one chosen by the ``score`` setting. A test clip whose class
was absent in training raises a :class:`DetectorError` naming it (``class_columns``
lets a caller find such clips before training). Training refuses, before it starts,
classes with fewer clips than the cross-fitted Mahalanobis scorer needs (3), and
fewer than two clips left for training (BatchNorm needs two per batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from asdlib.config import to_dict
from asdlib.datasets import (CLASS_COLUMNS, LoadFn, WaveformDataset, class_labels, class_names, clip_ids_hash,
                             split_train_val)
from asdlib.detectors.common import (MODEL_FILE, DetectorError, check_training_rows, data_digest, scores_frame,
                                     training_scores_of)
from asdlib.features import LogMelSettings
from asdlib.models.stgram_mfn import STgramMFN, STgramMFNSettings
from asdlib.scoring import (MAHALANOBIS_MIN_EMBEDDINGS, KNNScorer, MahalanobisScorer, cross_fit_min_clips,
                            cross_fitted_scores)
from asdlib.training import (FitResult, TrainSettings, fit, load_weights, read_checkpoint, resolve_device,
                             save_checkpoint, seed_everything)

ScoreKind = Literal["published", "mahalanobis", "knn"]


@dataclass(frozen=True)
class STgramMFNTrainSettings(TrainSettings):
    """Published optimisation (Adam lr 1e-4, cosine after epoch 20 to 1e-5) with a
    CPU-sized batch and epoch count (published: batch 128, 300 epochs)."""

    epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-4
    scheduler: Literal["none", "cosine"] = "cosine"
    cosine_start_epoch: int = 20
    lr_min: float = 1e-5


@dataclass(frozen=True)
class STgramMFNDetectorSettings:
    """Front end (HTK log-mel, as published), architecture, training and scorer settings.

    score: which column ``score`` repeats. knn_k: neighbours of the kNN scorer.
    mahalanobis_shrinkage: ``None`` estimates it (Ledoit-Wolf); a number in [0, 1] fixes it.
    ``train.batch_size`` must be 2 or more: BatchNorm cannot train on single clips.
    """

    logmel: LogMelSettings = field(default_factory=LogMelSettings)  # HTK, no norm: as published
    model: STgramMFNSettings = field(default_factory=STgramMFNSettings)
    train: STgramMFNTrainSettings = field(default_factory=STgramMFNTrainSettings)
    score: ScoreKind = "published"
    knn_k: int = 1
    mahalanobis_shrinkage: Optional[float] = None

    def __post_init__(self) -> None:
        if self.model.n_mels != self.logmel.n_mels:
            raise ValueError(f"model.n_mels ({self.model.n_mels}) must equal logmel.n_mels ({self.logmel.n_mels})")
        if self.logmel.win_length % 2 or self.logmel.n_fft % 2:
            raise ValueError(f"logmel.win_length ({self.logmel.win_length}) and logmel.n_fft ({self.logmel.n_fft}) "
                             "must be even: only then are the Tgram's frames centred where the log-mel's are")
        if self.score not in ("published", "mahalanobis", "knn"):
            raise ValueError(f"score must be 'published', 'mahalanobis' or 'knn', got {self.score!r}")
        if self.knn_k < 1:
            raise ValueError(f"knn_k must be >= 1, got {self.knn_k}")
        if self.train.batch_size < 2:
            raise ValueError(f"train.batch_size must be >= 2 (BatchNorm cannot train on a batch of one clip), "
                             f"got {self.train.batch_size}")
        if self.mahalanobis_shrinkage is not None and not 0 <= self.mahalanobis_shrinkage <= 1:
            raise ValueError(f"mahalanobis_shrinkage must be in [0, 1], got {self.mahalanobis_shrinkage}")

    def config(self) -> dict:
        """What a trained model file must agree on to be used with these settings."""
        return {"logmel": to_dict(self.logmel), "model": to_dict(self.model)}


def _loss(model: torch.nn.Module, batch: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    wave, label = (t.to(device) for t in batch)
    logits, _ = model(wave, label)
    return F.cross_entropy(logits, label)


def _check_class_sizes(rows: pd.DataFrame, detector: str) -> None:
    """Refuse, before training, classes too small for the scorers fitted after it: the
    Mahalanobis scorer needs 2 clips of a class, and 2 in each cross-fitting fold's rest."""
    minimum = cross_fit_min_clips(MAHALANOBIS_MIN_EMBEDDINGS)
    counts = pd.Series(class_names(rows)).value_counts().sort_index()
    small = counts[counts < minimum]
    if len(small):
        listed = ", ".join(f"{c} ({n})" for c, n in small.items())
        raise DetectorError(f"{detector}: too few training clips in class(es) {listed}: each machine ID needs "
                            f"{minimum} or more for the cross-fitted Mahalanobis scores; add clips or leave "
                            f"these IDs out")


def published_score(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """``-log_softmax(logits)[label]`` per row, in float64 and without cancellation.

    A well-trained ArcFace head (s 30) puts the own class 20-40 logits above the
    rest, so ``p`` rounds to exactly 1 in float32 and most normal *and* anomalous
    clips score 0: ties that hide the ranking. The same value is
    ``softplus(logsumexp_{j != label}(z_j - z_label))``, which keeps its precision.
    """
    logits = logits.double()
    own = logits.gather(1, label[:, None])
    others = logits.scatter(1, label[:, None], float("-inf"))
    return F.softplus(torch.logsumexp(others - own, dim=1), threshold=50.0)


class STgramMFNDetector:
    """One STgram-MFN over all machine types; published, Mahalanobis and kNN scores."""

    name = "stgram_mfn"
    class_columns = CLASS_COLUMNS  # it scores clips of the machine IDs it trained on (asdlib.detectors.common)
    scoring_settings = ("score", "knn_k", "mahalanobis_shrinkage")  # settings that leave the weights alone

    def __init__(self, settings: STgramMFNDetectorSettings = STgramMFNDetectorSettings()) -> None:
        self.settings = settings
        self.device = resolve_device(settings.train.device)
        self.model: Optional[STgramMFN] = None
        self.classes: list[str] = []
        self._mahalanobis = self._new_mahalanobis()
        self._knn = self._new_knn()
        self._training_scores: list[pd.DataFrame] = []
        self._embeddings: tuple[np.ndarray, list[str]] = (np.empty((0, 0), np.float32), [])

    def fit(self, train_rows: pd.DataFrame, load: LoadFn, run_dir: str | Path) -> FitResult:
        """Train (or resume) in ``run_dir``, then fit the embedding scorers on all training normals."""
        check_training_rows(train_rows, self.name)
        _check_class_sizes(train_rows, self.name)
        s = self.settings
        classes = class_labels(train_rows)
        index = {c: i for i, c in enumerate(classes)}
        train, val = split_train_val(train_rows, s.train.val_fraction, s.train.seed)
        if len(train) < 2:
            raise DetectorError(f"{self.name}: {len(train)} training clip(s) left after holding out "
                                f"train.val_fraction={s.train.val_fraction} for validation; BatchNorm needs 2 or "
                                f"more (lower val_fraction or add clips)")
        train_set = WaveformDataset(train, load, [index[c] for c in class_names(train)])
        val_set = WaveformDataset(val, load, [index[c] for c in class_names(val)]) if len(val) else None
        if val_set is not None and val_set.num_samples != train_set.num_samples:
            raise DetectorError(f"clip {val.iloc[0]['clip_id']}: {val_set.num_samples} samples, but the "
                                f"training clips have {train_set.num_samples}")
        seed_everything(s.train.seed)
        model = STgramMFN.from_settings(s.model, len(classes), train_set.num_samples, s.logmel)
        extra = {"config": s.config(), "classes": classes, "num_samples": train_set.num_samples,
                 "train_clips": clip_ids_hash(train_rows)}
        run_dir = Path(run_dir)
        # resume identity only (model.pt keeps what scoring needs): the audio, which the clip ids do not tell
        audio = data_digest(ds[i][0] for ds in (train_set, val_set) if ds is not None for i in range(len(ds)))
        result = fit(model, train_set, _loss, s.train, run_dir, val_set=val_set, name=self.name,
                     extra={**extra, "train_audio": audio})
        self.model, self.classes = model.eval(), classes
        forward = [self._forward(ds) for ds in (train_set, val_set) if ds is not None]
        embeddings = np.concatenate([e for _, e in forward])
        embedding_classes = class_names(train) + class_names(val)
        save_checkpoint(run_dir / MODEL_FILE, model,
                        extra={**extra, "embeddings": torch.from_numpy(embeddings),
                               "embedding_classes": embedding_classes})
        self._fit_scorers(embeddings, embedding_classes)
        columns = {"score_published": np.concatenate([p for p, _ in forward]).tolist(),
                   "score_mahalanobis": cross_fitted_scores(self._new_mahalanobis, embeddings,
                                                            embedding_classes).tolist(),
                   "score_knn": cross_fitted_scores(self._new_knn, embeddings, embedding_classes).tolist()}
        self._training_scores = [scores_frame(list(map(str, pd.concat([train, val])["clip_id"])),
                                              {"score": columns[f"score_{s.score}"], **columns})]
        return result

    def training_scores(self) -> pd.DataFrame:
        """The :meth:`score` columns of the last fit's training normals: the published score
        as the trained network gives them, the embedding scores each by scorers fitted to
        the other clips of its class in 5 folds (:func:`asdlib.scoring.cross_fitted_scores`)."""
        return training_scores_of(self._training_scores, self.name)

    def embedding_training_scores(self) -> pd.DataFrame:
        """Columns machine_type, machine_id, score_mahalanobis and score_knn of the training
        normals, cross-fitted as :meth:`fit` does but with *these* settings' scorer options
        (``knn_k``, ``mahalanobis_shrinkage``), from the embeddings the model file keeps: the
        data for thresholds when a restored model is scored with other options than it was
        trained with, whose training scores no longer match its test scores."""
        embeddings, classes = self._embeddings
        if not classes:
            raise DetectorError(f"{self.name}: not trained (call fit or restore first)")
        machine = [c.split("/", 1) for c in classes]
        return pd.DataFrame({"machine_type": [t for t, _ in machine], "machine_id": [i for _, i in machine],
                             "score_mahalanobis": cross_fitted_scores(self._new_mahalanobis, embeddings, classes),
                             "score_knn": cross_fitted_scores(self._new_knn, embeddings, classes)})

    def restore(self, run_dir: str | Path) -> None:
        """Load the model and training embeddings written by :meth:`fit`."""
        path = Path(run_dir) / MODEL_FILE
        extra = dict(read_checkpoint(path).get("extra", {}))
        if extra.get("config") != self.settings.config():
            raise DetectorError(f"{path}: trained with other front-end or model settings than these")
        model = STgramMFN.from_settings(self.settings.model, len(extra["classes"]), int(extra["num_samples"]),
                                        self.settings.logmel)
        load_weights(path, model)
        self.model, self.classes = model.to(self.device).eval(), list(extra["classes"])
        self._fit_scorers(extra["embeddings"].numpy(), list(extra["embedding_classes"]))

    def score(self, test_rows: pd.DataFrame, load: LoadFn) -> pd.DataFrame:
        """Columns clip_id, score, score_published, score_mahalanobis, score_knn, in row order."""
        if self.model is None:
            raise DetectorError(f"{self.name}: not trained (call fit or restore first)")
        names = class_names(test_rows)
        index = {c: i for i, c in enumerate(self.classes)}
        for clip_id, c in zip(test_rows["clip_id"], names):
            if c not in index:
                raise DetectorError(f"clip {clip_id}: class {c} was absent in training "
                                    f"(classes: {', '.join(self.classes)})")
        dataset = WaveformDataset(test_rows, load, [index[c] for c in names])
        if dataset.num_samples != self.model.num_samples:
            raise DetectorError(f"clip {test_rows.iloc[0]['clip_id']}: {dataset.num_samples} samples, but the "
                                f"model was trained on clips of {self.model.num_samples}")
        published, embeddings = self._forward(dataset)
        columns = {"score_published": published.tolist(),
                   "score_mahalanobis": self._mahalanobis.score(embeddings, names).tolist(),
                   "score_knn": self._knn.score(embeddings, names).tolist()}
        return scores_frame(list(map(str, test_rows["clip_id"])),
                            {"score": columns[f"score_{self.settings.score}"], **columns})

    @torch.no_grad()
    def _forward(self, dataset: WaveformDataset) -> tuple[np.ndarray, np.ndarray]:
        """Published scores and float32 embeddings of every clip (eval mode, margin on the own class)."""
        model = self.model.eval()
        scores, embeddings = [], []
        for wave, label in DataLoader(dataset, batch_size=self.settings.train.batch_size, shuffle=False):
            wave, label = wave.to(self.device), label.to(self.device)
            logits, embedding = model(wave, label)
            scores.append(published_score(logits, label).cpu().numpy())
            embeddings.append(embedding.cpu().numpy())
        return np.concatenate(scores).astype(np.float64), np.concatenate(embeddings)

    def _new_mahalanobis(self) -> MahalanobisScorer:
        shrinkage = self.settings.mahalanobis_shrinkage
        return MahalanobisScorer(shrinkage if shrinkage is not None else "ledoit_wolf")

    def _new_knn(self) -> KNNScorer:
        return KNNScorer(self.settings.knn_k)

    def _fit_scorers(self, embeddings: np.ndarray, classes: list[str]) -> None:
        self._embeddings = (embeddings, classes)
        self._mahalanobis.fit(embeddings, classes)
        self._knn.fit(embeddings, classes)
