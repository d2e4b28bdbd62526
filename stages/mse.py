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

import pandas as pd

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


def snr_targets(mixtures: pd.DataFrame, cfg: MseInput) -> pd.Series:
    """The stop target of every mixture, indexed like ``mixtures``."""
    if cfg.snr_source == "fixed":
        return pd.Series(cfg.fixed_snr_db, index=mixtures.index)
    if cfg.snr_source == "oracle":
        return mixtures["snr_db"].astype(float).fillna(cfg.clean_snr_db)
    estimates = pd.read_csv(DATA / "snr" / "estimates.csv").set_index("clip_id")["snr_est_db"]
    return mixtures["clip_id"].map(estimates)


def main() -> None:
    cfg = params_section("mse", MseInput)
    parallel = params_section("parallel", ParallelSettings)
    mixtures = read_manifest(DATA / "mix" / "manifest.csv")
    tmp = OUT.with_name(".mse.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    extracted = extract_manifest(mixtures, snr_targets(mixtures, cfg), tmp, work_dir("mse"), cfg.settings,
                                 parallel)
    extracted["store"] = extracted["store"].str.replace(str(tmp), str(OUT), regex=False)
    write_manifest(extracted, tmp / "manifest.csv")
    estimator = file_digest(SNR_MODEL) if cfg.snr_source == "estimated" else ""
    write_mse_record(tmp / EXTRACTION_FILE, MseRecord(cfg, estimator))  # for the train stages' model cards
    replace_dir(tmp, OUT)
    steps = extracted.groupby("condition")["mse_steps"].mean().round(1)
    print(f"MSE steps per clip by condition:\n{steps.to_string()}")


if __name__ == "__main__":
    run(main)
