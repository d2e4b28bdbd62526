"""Anomaly scores from a classifier's embeddings, per machine-ID class.

Later work found these more robust than the ID classifier's own ``-log p(own ID)``
score when there are few classes (the classifier separates them perfectly and its
posterior says little about anomalies). Both are fitted on the embeddings of the
training normals of each class and score a clip against its own class only:

* :class:`MahalanobisScorer`: Mahalanobis distance to the class mean under a
  shrunk covariance (Ledoit-Wolf by default, or a fixed shrinkage towards the
  scaled identity), which stays well conditioned with fewer clips than dimensions;
* :class:`KNNScorer`: the mean cosine distance to the ``k`` nearest training
  embeddings of the class.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, Sequence

import numpy as np
from sklearn.covariance import LedoitWolf, ShrunkCovariance

MAHALANOBIS_MIN_EMBEDDINGS = 2  # per class: a covariance needs two points
CROSS_FIT_FOLDS = 5


class EmbeddingScorer(Protocol):
    def fit(self, embeddings: np.ndarray, classes: Sequence[str]) -> "EmbeddingScorer": ...

    def score(self, embeddings: np.ndarray, classes: Sequence[str]) -> np.ndarray: ...


class UnknownClassError(ValueError):
    """A clip's class had no training embeddings; the message names it."""


def _group(embeddings: np.ndarray, classes: Sequence[str]) -> dict[str, np.ndarray]:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or len(embeddings) != len(classes):
        raise ValueError(f"expected ({len(classes)}, dim) embeddings, got shape {embeddings.shape}")
    if not np.all(np.isfinite(embeddings)):
        raise ValueError("embeddings hold NaN or infinite values")
    labels = np.asarray(classes)
    return {str(c): embeddings[labels == c] for c in sorted(set(labels.tolist()))}


def _check_known(classes: Sequence[str], known: dict) -> None:
    for c in classes:
        if c not in known:
            raise UnknownClassError(f"class {c} was not seen in training (known: {', '.join(sorted(known))})")


class MahalanobisScorer:
    """Per-class Mahalanobis distance with shrinkage covariance.

    ``shrinkage='ledoit_wolf'`` estimates the shrinkage from the data; a number in
    [0, 1] fixes it (0 = sample covariance, 1 = scaled identity).
    """

    def __init__(self, shrinkage: str | float = "ledoit_wolf") -> None:
        if shrinkage != "ledoit_wolf" and not (isinstance(shrinkage, (int, float)) and 0 <= shrinkage <= 1):
            raise ValueError(f"shrinkage must be 'ledoit_wolf' or a number in [0, 1], got {shrinkage!r}")
        self.shrinkage = shrinkage
        self._means: dict[str, np.ndarray] = {}
        self._precisions: dict[str, np.ndarray] = {}

    def fit(self, embeddings: np.ndarray, classes: Sequence[str]) -> "MahalanobisScorer":
        """Estimate each class's mean and (shrunk) precision matrix; needs 2+ clips per class.
        Classes of an earlier fit are dropped."""
        self._means, self._precisions = {}, {}
        for name, group in _group(embeddings, classes).items():
            if len(group) < MAHALANOBIS_MIN_EMBEDDINGS:
                raise ValueError(f"class {name}: {len(group)} training embedding(s); Mahalanobis needs "
                                 f"{MAHALANOBIS_MIN_EMBEDDINGS} or more")
            estimator = (LedoitWolf() if self.shrinkage == "ledoit_wolf"
                         else ShrunkCovariance(shrinkage=float(self.shrinkage)))
            estimator.fit(group)
            self._means[name] = estimator.location_
            self._precisions[name] = estimator.get_precision()
        return self

    def score(self, embeddings: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Distance of each embedding to its class's training distribution (higher = more anomalous)."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        _check_known(classes, self._means)
        out = np.empty(len(embeddings))
        for i, (x, c) in enumerate(zip(embeddings, classes)):
            d = x - self._means[c]
            out[i] = np.sqrt(max(float(d @ self._precisions[c] @ d), 0.0))
        return out


class KNNScorer:
    """Mean cosine distance to the ``k`` nearest training embeddings of the clip's class
    (all of them when the class has fewer than ``k``)."""

    def __init__(self, k: int = 1) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self._references: dict[str, np.ndarray] = {}

    def fit(self, embeddings: np.ndarray, classes: Sequence[str]) -> "KNNScorer":
        """Keep the L2-normalised training embeddings of each class."""
        self._references = {name: _unit(group) for name, group in _group(embeddings, classes).items()}
        return self

    def score(self, embeddings: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Mean cosine distance (1 - cosine similarity) to the nearest neighbours."""
        queries = _unit(np.asarray(embeddings, dtype=np.float64))
        _check_known(classes, self._references)
        out = np.empty(len(queries))
        for i, (q, c) in enumerate(zip(queries, classes)):
            distances = 1.0 - self._references[c] @ q
            k = min(self.k, len(distances))
            out[i] = float(np.mean(np.partition(distances, k - 1)[:k]))
        return out


def cross_fitted_scores(new_scorer: Callable[[], EmbeddingScorer], embeddings: np.ndarray,
                        classes: Sequence[str], folds: int = CROSS_FIT_FOLDS) -> np.ndarray:
    """Each training embedding's score by a scorer fitted to the other folds of its class.

    What an unseen normal clip would score, unlike the scorer's own training points
    (the kNN distance of a point to itself is 0): the data of a decision threshold.
    A class's clips are dealt into ``folds`` folds in turn (one clip each when it has
    fewer), so the result does not depend on chance.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    embeddings = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(classes)
    out = np.empty(len(labels))
    for label in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == label)
        fold_of = np.arange(len(members)) % min(folds, len(members))
        for fold in np.unique(fold_of):
            held, kept = members[fold_of == fold], members[fold_of != fold]
            scorer = new_scorer().fit(embeddings[kept], [label] * len(kept))
            out[held] = scorer.score(embeddings[held], [label] * len(held))
    return out


def cross_fit_min_clips(min_fit: int, folds: int = CROSS_FIT_FOLDS) -> int:
    """Fewest clips of a class with which every scorer :func:`cross_fitted_scores` fits sees
    ``min_fit`` or more (its largest fold, ``ceil(n / min(folds, n))`` clips, is left out),
    so a detector can refuse too small a class before training rather than after."""
    n = min_fit + 1
    while n - math.ceil(n / min(folds, n)) < min_fit:
        n += 1
    return n


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
