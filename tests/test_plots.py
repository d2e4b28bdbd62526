"""Plots are readable, non-empty PNGs (bytes, equal for equal data); the SNR axis has 'clean' last."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from asdlib.metrics import evaluate_scores
from asdlib.plots import plot_auc_vs_snr, plot_roc, plot_score_histograms


def _scores(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for machine_type, shift in (("fan", 1.0), ("pump", 2.0), ("valve", 0.5), ("slider", 3.0)):
        for machine_id in ("id_00", "id_02"):
            for label, mean, n in (("normal", 0.0, 20), ("anomaly", shift, 10)):
                for k, s in enumerate(rng.normal(mean, 1.0, n)):
                    rows.append(dict(clip_id=f"{machine_type}_{machine_id}_{label}_{k}", machine_type=machine_type,
                                     machine_id=machine_id, label=label, score=s))
    return pd.DataFrame(rows)


def _check_png(png: bytes) -> np.ndarray:
    image = imread(io.BytesIO(png), format="png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert image[..., :3].std() > 0.05  # not a blank canvas
    return image


def test_roc_and_histograms():
    df = _scores()
    roc = plot_roc(df)
    _check_png(roc)
    _check_png(plot_score_histograms(df))
    assert plot_roc(df) == roc  # no timestamp: equal data, equal bytes
    assert plot_roc(_scores(seed=1)) != roc


def test_auc_vs_snr_from_metrics():
    rows = []
    for model in ("dense_ae", "stgram_mfn"):
        for input_name in ("raw", "mse"):
            for k, condition in enumerate(("clean", "-6dB", "0dB", "6dB")):
                result = evaluate_scores(_scores(seed=k))
                rows += [{"model": model, "input": input_name, "condition": condition, "machine_type": t,
                          "auc": result[t]["mean"]["auc"], "pauc": result[t]["mean"]["pauc"]}
                         for t in result if t != "overall"]
    table = pd.DataFrame(rows)
    snr = plot_auc_vs_snr(table.drop(columns="machine_type"))  # averaged over types
    _check_png(snr)
    _check_png(plot_auc_vs_snr(table, metric="pauc", reference=("dense_ae", "raw")))
    one_model = table[table["model"] == "dense_ae"]
    one = plot_auc_vs_snr(one_model, reference=("dense_ae", "raw"))
    assert _check_png(one).shape[1] < _check_png(snr).shape[1]  # a panel per model
    banded = one_model.assign(low=one_model["auc"] - 0.05, high=one_model["auc"] + 0.05)
    band = plot_auc_vs_snr(banded, reference=("dense_ae", "raw"), band=("low", "high"))
    assert _check_png(band).shape == _check_png(one).shape
    assert band != one  # shading drawn
    with pytest.raises(ValueError, match=r"lacks columns \['high'\]"):
        plot_auc_vs_snr(banded.drop(columns="high"), band=("low", "high"))


def test_missing_columns():
    with pytest.raises(ValueError, match="lacks columns"):
        plot_auc_vs_snr(pd.DataFrame({"model": ["a"]}))
