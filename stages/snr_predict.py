"""Stage `snr_predict`: estimate every mixture's SNR; report errors on the test mixtures.

Writes data/snr/estimates.csv (clip_id, snr_est_db) for the `mse` stage,
metrics/snr.json (MAE and bias per condition and machine type), the scatter
data metrics/snr_estimates.csv and the plot metrics/plots/snr_scatter.png.
"""

from __future__ import annotations

import pandas as pd

from asdlib.fileio import atomic_path, write_json
from asdlib.manifest import read_manifest
from asdlib.snr_estimation import SnrEstimator, plot_snr_scatter, snr_report, stored_estimates
from asdlib.store import read_row

from stages.common import DATA, METRICS, run

CHUNK = 256  # clips read and estimated at a time: memory stays bounded


def main() -> None:
    estimator = SnrEstimator.load(DATA / "snr" / "model" / "model.pt")
    mixtures = read_manifest(DATA / "mix" / "manifest.csv")
    estimates = []
    for start in range(0, len(mixtures), CHUNK):
        part = mixtures.iloc[start:start + CHUNK]
        estimates.extend(estimator.predict([read_row(row) for _, row in part.iterrows()],
                                           names=list(part["clip_id"])))
    table = mixtures[["clip_id", "split", "condition", "machine_type", "snr_db"]].assign(
        snr_est_db=stored_estimates(estimates))
    with atomic_path(DATA / "snr" / "estimates.csv") as tmp:
        table[["clip_id", "snr_est_db"]].to_csv(tmp, index=False, lineterminator="\n")
    test = table[(table["split"] == "test") & table["snr_db"].notna()]
    report = snr_report(test)
    write_json(METRICS / "snr.json", report)
    with atomic_path(METRICS / "snr_estimates.csv") as tmp:
        test[["condition", "machine_type", "snr_db", "snr_est_db"]].to_csv(
            tmp, index=False, float_format="%.4f", lineterminator="\n")
    plot_snr_scatter(test, METRICS / "plots" / "snr_scatter.png")
    print(pd.DataFrame(report["by_condition"]).T.to_string())


if __name__ == "__main__":
    run(main)
