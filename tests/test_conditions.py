"""Condition names: one parser for params, tables and figures; the order and SNR-axis place
of each, shared by the AUC-vs-SNR table and figure."""

from __future__ import annotations

import pandas as pd
import pytest

from asdlib.conditions import condition_order, condition_positions, parse_condition
from asdlib.reporting import auc_vs_snr_table


def test_parse_condition():
    assert parse_condition("clean") is None
    assert parse_condition("-6dB") == -6.0 and parse_condition("2.5dB") == 2.5
    for bad in ("6 dB", "6db", "6", "Clean", "noisy"):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_condition(bad)
    for other, name in (("6.0dB", "6dB"), ("06dB", "6dB"), ("-0dB", "0dB"), ("2.50dB", "2.5dB")):
        with pytest.raises(ValueError, match=f"condition '{other}': write it {name}$"):  # one name per SNR
            parse_condition(other)


def test_order_and_positions():
    conditions = ["clean", "6dB", "-6dB", "0dB"]
    assert condition_order(conditions) == ["-6dB", "0dB", "6dB", "clean"]
    assert condition_positions(conditions) == {"-6dB": -6.0, "0dB": 0.0, "6dB": 6.0, "clean": 12.0}
    assert condition_positions(["-5dB", "clean"]) == {"-5dB": -5.0, "clean": 1.0}  # one SNR: 6 dB step
    assert condition_positions(["clean"]) == {"clean": 0.0}
    assert condition_positions(["-6dB", "0dB", "12dB", "clean"])["clean"] == 18.0  # the smallest gap
    assert condition_positions(["0dB", "10dB", "5dB", "0dB"]) == {"0dB": 0.0, "5dB": 5.0, "10dB": 10.0}


def test_auc_vs_snr_table_is_long_and_in_snr_order():
    tidy = pd.DataFrame({"model": ["b", "a", "a", "a", "b", "b"], "input": ["raw"] * 6,
                         "condition": ["clean", "clean", "-6dB", "6dB", "6dB", "-6dB"],
                         "auc": [0.9, 0.8, 0.5, 0.7, 0.6, 0.55]})
    table = auc_vs_snr_table(tidy)
    assert list(table.columns) == ["model", "input", "condition", "snr_db", "auc"]
    assert list(zip(table["model"], table["condition"])) == [
        ("a", "-6dB"), ("a", "6dB"), ("a", "clean"), ("b", "-6dB"), ("b", "6dB"), ("b", "clean")]
    assert table["snr_db"].tolist() == [-6.0, 6.0, 18.0] * 2  # clean: one 12 dB step right of 6 dB
    assert table["auc"].tolist() == [0.5, 0.7, 0.8, 0.55, 0.6, 0.9]
