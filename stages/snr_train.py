"""Stage `snr_train`: train the BLSTM SNR estimator on clean training clips mixed on the fly.

Writes data/snr/model/model.pt and the per-epoch history metrics/snr_training.csv.
"""

from __future__ import annotations

import shutil

import pandas as pd

from asdlib.config import to_dict
from asdlib.fileio import atomic_path, replace_dir
from asdlib.manifest import read_clip, read_length, read_manifest
from asdlib.noise_bank import noise_bank_identity, read_noise_bank
from asdlib.snr_estimation import SnrEstimatorSettings, train_snr_estimator
from asdlib.store import file_digest

from stages.common import DATA, METRICS, params_section, run
from stages.work import work_dir
from stages.corpus_params import corpus_params

OUT = DATA / "snr" / "model"
MAX_CLIPS = 2000  # clean clips held in memory to mix from (a seeded sample of larger corpora)


def main() -> None:
    settings = params_section("snr", SnrEstimatorSettings)
    resample = corpus_params().resample
    manifest = read_manifest(DATA / "manifest.csv")
    train = manifest[(manifest["split"] == "train") & (manifest["label"] == "normal")]
    if len(train) > MAX_CLIPS:
        train = train.sample(n=MAX_CLIPS, random_state=settings.train.seed).sort_values("clip_id")
    clips = [read_clip(row, resample=resample) for _, row in train.iterrows()]
    bank = read_noise_bank(DATA / "noise")
    identity = [(row["clip_id"], file_digest(row["path"]), read_length(row), int(row["channel"]))
                for _, row in train.iterrows()]
    noise = noise_bank_identity(DATA / "noise", sorted(bank))
    work = work_dir("snr", to_dict(settings), identity, noise, {"resample": resample})
    estimator, result = train_snr_estimator(clips, bank, settings, work)
    tmp = OUT.with_name(".model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    estimator.save(tmp / "model.pt")
    replace_dir(tmp, OUT)
    history = pd.DataFrame(result.history).drop(columns=["seconds"], errors="ignore")
    with atomic_path(METRICS / "snr_training.csv") as tmp:
        history.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
    validation = _validation(history, result.selected_epoch, settings.loss)
    print(f"SNR estimator: epoch {result.selected_epoch} selected, {validation}")


def _validation(history: pd.DataFrame, epoch: int, loss: str) -> str:
    """The validation loss of ``epoch`` in its unit (L1: dB, MSE: dB squared), or that there was none."""
    value = history.loc[history["epoch"] == epoch, "val_loss"]
    if value.empty or pd.isna(value.iloc[0]):
        return "no validation"
    return f"validation L1 {value.iloc[0]:.3f} dB" if loss == "l1" else f"validation MSE {value.iloc[0]:.3f} dB^2"


if __name__ == "__main__":
    run(main)
