"""Stage `mse`: Mechanical Sound Extraction of every mixture into data/mse/<type>/<condition>.h5.

The stop target of each clip is its SNR as estimated by the BLSTM (`estimated`),
the true mixture SNR (`oracle`, an ablation; clean clips use `clean_snr_db`), or
one `fixed_snr_db` for all. Runs on joblib workers (or a Dask cluster, see
`parallel`); resumable through data/.work/mse. Writes the `mse` params it used, and
the digest of the SNR estimator behind `estimated` targets, to data/mse/extraction.json
for the model cards (asdlib.model_card).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from asdlib.config import to_dict
from asdlib.extraction import MseInput, MseRecord, extract_manifest, write_mse_record
from asdlib.fileio import replace_dir
from asdlib.manifest import read_manifest, write_manifest
from asdlib.model_card import EXTRACTION_FILE
from asdlib.parallel import ParallelSettings
from asdlib.store import file_digest

from stages.common import DATA, params_section, run
from stages.work import work_dir

OUT = DATA / "mse"
SNR_MODEL = DATA / "snr" / "model" / "model.pt"  # made the estimates; its digest goes on the model cards
ESTIMATES = DATA / "snr" / "estimates.csv"


def snr_targets(mixtures: pd.DataFrame, cfg: MseInput, estimates_path: Path = ESTIMATES) -> pd.Series:
    """The stop target of every mixture, indexed like ``mixtures``."""
    if cfg.snr_source == "fixed":
        return pd.Series(cfg.fixed_snr_db, index=mixtures.index)
    if cfg.snr_source == "oracle":
        return mixtures["snr_db"].astype(float).fillna(cfg.clean_snr_db)
    estimates = read_estimates(estimates_path)
    absent = ~mixtures["clip_id"].isin(estimates.index)
    if absent.any():
        raise ValueError(f"{estimates_path}: no estimate for {int(absent.sum())} mixtures, e.g. "
                         f"{mixtures.loc[absent, 'clip_id'].tolist()[:3]} (re-run snr_predict)")
    return mixtures["clip_id"].map(estimates)


def read_estimates(path: Path) -> pd.Series:
    """snr_est_db by clip_id from the ``snr_predict`` table; a malformed table is an error naming it."""
    try:
        table = pd.read_csv(path, dtype={"clip_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from exc
    missing = {"clip_id", "snr_est_db"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    repeated = table["clip_id"][table["clip_id"].duplicated()]
    if not repeated.empty:
        raise ValueError(f"{path}: clip_id repeated: {repeated.tolist()[:3]}")
    values = pd.to_numeric(table["snr_est_db"], errors="coerce")
    bad = values.isna() | ~values.abs().lt(float("inf"))
    if bad.any():
        raise ValueError(f"{path}: snr_est_db is not a finite number for clip_id {table['clip_id'][bad].tolist()[:3]}")
    return pd.Series(values.to_numpy(dtype=float), index=table["clip_id"], name="snr_est_db")


def main() -> None:
    cfg = params_section("mse", MseInput)
    parallel = params_section("parallel", ParallelSettings)
    mixtures = read_manifest(DATA / "mix" / "manifest.csv")
    tmp = OUT.with_name(".mse.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    work = work_dir("mse", to_dict(cfg))
    extracted = extract_manifest(mixtures, snr_targets(mixtures, cfg), tmp, work, cfg.settings, parallel)
    extracted["store"] = extracted["store"].str.replace(str(tmp), str(OUT), regex=False)
    write_manifest(extracted, tmp / "manifest.csv")
    estimator = file_digest(SNR_MODEL) if cfg.snr_source == "estimated" else ""
    write_mse_record(tmp / EXTRACTION_FILE, MseRecord(cfg, estimator))  # for the train stages' model cards
    replace_dir(tmp, OUT)
    shutil.rmtree(work, ignore_errors=True)  # finished shards stay there until published, for a rerun
    steps = extracted.groupby("condition")["mse_steps"].mean().round(1)
    print(f"MSE steps per clip by condition:\n{steps.to_string()}")


if __name__ == "__main__":
    run(main)
