"""Stage `mse`: the SNR estimates it stops each clip at are checked, and errors name the table."""

import pandas as pd
import pytest

from asdlib.extraction import MseInput
from stages.mse import snr_targets

MIXTURES = pd.DataFrame({"clip_id": ["a@0dB", "b@0dB"], "snr_db": [0.1, -0.2]})


def targets(tmp_path, text):
    path = tmp_path / "estimates.csv"
    path.write_text(text)
    return snr_targets(MIXTURES, MseInput(), path)


def test_estimates_are_mapped_to_the_mixtures(tmp_path):
    assert targets(tmp_path, "clip_id,snr_est_db\nb@0dB,-1.5\na@0dB,2.25\n").tolist() == [2.25, -1.5]


@pytest.mark.parametrize("text,problem", [
    ("clip_id,snr\na@0dB,1\nb@0dB,2\n", r"missing columns \['snr_est_db'\]"),
    ("clip_id,snr_est_db\na@0dB,1\na@0dB,2\nb@0dB,3\n", r"clip_id repeated: \['a@0dB'\]"),
    ("clip_id,snr_est_db\na@0dB,oops\nb@0dB,3\n", r"snr_est_db is not a finite number for clip_id \['a@0dB'\]"),
    ("clip_id,snr_est_db\na@0dB,inf\nb@0dB,3\n", r"snr_est_db is not a finite number for clip_id \['a@0dB'\]"),
    ("clip_id,snr_est_db\na@0dB,1\n", r"no estimate for 1 mixtures, e.g. \['b@0dB'\]"),
    ("", "not a readable CSV"),
])
def test_a_bad_estimates_table_is_an_error_naming_it(tmp_path, text, problem):
    with pytest.raises(ValueError, match=f"estimates.csv: {problem}"):
        targets(tmp_path, text)


def test_oracle_and_fixed_targets_read_no_table(tmp_path):
    absent = tmp_path / "absent.csv"
    assert snr_targets(MIXTURES, MseInput(snr_source="fixed", fixed_snr_db=3.0), absent).tolist() == [3.0, 3.0]
    assert snr_targets(MIXTURES, MseInput(snr_source="oracle"), absent).tolist() == [0.1, -0.2]
